// R (fragment): colour, triangle ID (+1, 0 is background) and UV.
void main()
{
  out_color = shade(uv);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, 0.0, 1.0);
}
