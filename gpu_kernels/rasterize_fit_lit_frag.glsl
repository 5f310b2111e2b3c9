// R, lit (fragment): the base colour as R+ and R- perturb it (shading.glsl's
// sample_albedo, linear), the other maps fixed, then shade_lit. A base-colour
// texel channel still reaches only its own colour channel (diffuse and metal
// F0 are per channel), so G's per-channel charge stays right.
void main()
{
  vec3 n = normalize(world_normal);
  vec4 map, mat;
  SAMPLE_BILINEAR_LIT(normal_map, uv, map);
  SAMPLE_BILINEAR_LIT(material, uv, mat);  // roughness, metallic, specular level
  n = perturbed_normal(n, world_tangent, map.rgb, normal_strength);
  out_color = vec4(shade_lit(sample_albedo(uv).rgb, mat.r, mat.g, mat.b, n, world_position,
                             camera_position), 1.0);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, 0.0, 1.0);
}
