// Readback helper: integer images do not read back reliably, so convert.
// hi_offset > 0: a 64-bit fixed-point pair; otherwise a plain integer count.
// row0: the first accumulator row to read (a block of a taller accumulator).
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(result);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  ivec2 a = p + ivec2(0, row0);
  int lo = imageLoad(accumulator, a).x;
  float value = float(lo);
  if (hi_offset > 0) {
    value = fixed_value(lo, imageLoad(accumulator, a + ivec2(0, hi_offset)).x);
  }
  imageStore(result, p, vec4(value));
}
