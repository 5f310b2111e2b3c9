// R+ and R- in one draw (fragment), for steps whose geometry is not
// perturbed (a texture step): both renders share coverage, triangle IDs and
// UVs, so one rasterization serves both. out_color at +texture_eps,
// out_color_minus at -texture_eps.
void main()
{
  out_color = shade(uv);
  out_color_minus = shade_opposite(uv);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, 0.0, 1.0);
}
