// R, lit (fragment): one render, R+ or R- (lit_color in rasterize_fit_lit_frag.glsl).
void main()
{
  shadow_begin(world_position, normalize(world_normal));
  out_color = lit_color(false);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, 0.0, 1.0);
}
