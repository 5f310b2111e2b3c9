// shade_lit and perturbed_normal on arrays of inputs packed in textures, one
// invocation per texel: tests compare it with engine/lit_reference.py.
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(out_color);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  vec4 material = texelFetch(in_material, p, 0);  // base rgb, roughness
  vec4 normal = texelFetch(in_normal, p, 0);      // n, metallic
  vec4 position = texelFetch(in_position, p, 0);  // position, specular level
  vec4 map = texelFetch(in_map, p, 0);            // normal-map rgb, strength
  vec3 color = shade_lit(material.rgb, material.a, normal.w, position.w, normal.xyz, position.xyz,
                         camera_position);
  imageStore(out_color, p, vec4(color, 1.0));
  imageStore(out_normal, p, vec4(perturbed_normal(normal.xyz, texelFetch(in_tangent, p, 0), map.rgb,
                                                  map.a), 0.0));
}
