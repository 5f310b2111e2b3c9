// The shadow lookup on arrays of points, one invocation per texel: each
// shadowed light's visibility as shadow_begin finds it (its slot, a point
// light's cube face), for tests against engine/shadow_reference.py.
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(out_visibility);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  shadow_begin(texelFetch(in_position, p, 0).xyz, texelFetch(in_normal, p, 0).xyz);
  imageStore(out_visibility, p, shadow_kept);
}
