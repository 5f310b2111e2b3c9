// Lit raster (fragment): maps sampled bilinearly at level 0 with texelFetch
// (the same on every backend, whatever its sampler state), then shade_lit.
void main()
{
  vec3 n = normalize(world_normal);
  vec4 map, base, mat;
  SAMPLE_BILINEAR_LIT(normal_map, uv, map);
  SAMPLE_BILINEAR_LIT(base_color, uv, base);  // linear
  SAMPLE_BILINEAR_LIT(material, uv, mat);  // roughness, metallic, specular level
  n = perturbed_normal(n, world_tangent, map.rgb, normal_strength);
  out_color = vec4(shade_lit(base.rgb, mat.r, mat.g, mat.b, n, world_position, camera_position),
                   1.0);
}
