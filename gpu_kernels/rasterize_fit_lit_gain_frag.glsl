// R for a lit SART visit's charge (fragment): the lit colour, and what the
// charge needs to turn a pixel's residual into a base-colour one. A lit pixel
// is affine in the linear base colour, c = D * a + S per channel, so the
// gain D = shade(1) - shade(0) (exact for dielectrics; the secant for
// metals) and the base colour a here go to color_minus (D, a.r) and uv.zw (a.g, a.b).
void main()
{
  shadow_begin(world_position, normalize(world_normal));
  vec4 map, mat;
  SAMPLE_THROUGH(normal_map, normal_texel, uv, map);
  SAMPLE_THROUGH(material, material_texel, uv, mat);
  vec3 base = sample_albedo(uv).rgb;
  vec3 n = perturbed_normal(normalize(world_normal), world_tangent, map.rgb, lit_draw.camera.w);
  float rough = clamp(mat.r, 0.0, 1.0), metal = clamp(mat.g, 0.0, 1.0), level = max(mat.b, 0.0);
  vec3 gain = shade_lit(vec3(1.0), rough, metal, level, n, world_position, lit_draw.camera.xyz)
              - shade_lit(vec3(0.0), rough, metal, level, n, world_position, lit_draw.camera.xyz);
  out_color = vec4(shade_lit(base, rough, metal, level, n, world_position, lit_draw.camera.xyz), 1.0);
  out_color_minus = vec4(gain, base.r);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, base.g, base.b);
}
