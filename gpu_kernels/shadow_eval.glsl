// shadow_lookup on arrays of points, one invocation per texel: tests compare
// it with engine/shadow_reference.py.
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(out_visibility);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  vec3 position = texelFetch(in_position, p, 0).xyz;
  vec3 normal = texelFetch(in_normal, p, 0).xyz;
  imageStore(out_visibility, p, vec4(shadow_lookup(slot, position, normal), 0.0, 0.0, 0.0));
}
