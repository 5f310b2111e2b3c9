// Scoring on the GPU (checkpoints and Engine.evaluate): a view's antialiased
// render is the weighted mean of its sample renders (of log2(c + 1) with
// SCORE_LOG_MEAN, as Workbench's TAA averages), accumulated here one sample
// at a time; the last sample (SCORE_FINISH) adds the mean's squared error
// against the target, in the loss's space (loss_space), to a fixed-point
// total, and leaves the mean itself in running_sum. A checkpoint then reads
// back one number a view, and a render one frame, not a frame a sample.
// `weight`: the sample's share (the host normalises the weights).
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  if (p.x >= image_size.x || p.y >= image_size.y) {
    return;
  }
  vec4 c = texelFetch(color, p, 0);
  if ((flags & SCORE_LOG_MEAN) != 0) {
    c = log2(max(c, vec4(0.0)) + 1.0);
  }
  vec4 mean = weight * c;
  if ((flags & SCORE_FIRST) == 0) {
    mean += imageLoad(running_sum, p);
  }
  if ((flags & SCORE_FINISH) == 0) {
    imageStore(running_sum, p, mean);
    return;
  }
  if ((flags & SCORE_LOG_MEAN) != 0) {
    mean = exp2(mean) - 1.0;
  }
  imageStore(running_sum, p, mean);  // the filtered render itself (Engine.render_color reads it)
  vec4 d = loss_space(mean, flags) - texelFetch(target, p, 0);
  ADD_FIXED(score_acc, ivec2(0, 0), 1, (flags & SCORE_COVERAGE) != 0 ? d.a * d.a : dot(d, d));
}
