// R+ and R- of a lit fit in one draw (fragment): positions are never
// perturbed in a lit fit, so both renders share coverage, IDs and UVs.
void main()
{
  shadow_begin(world_position, normalize(world_normal));
  out_color = lit_color(false);
  out_color_minus = lit_color(true);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, 0.0, 1.0);
}
