// Adam on parameter texels (3 scalar parameters each: xyz or RGB), or with
// FLAG_SENSITIVITY a SART-style step: the residual each texel's pixels ask of it.
// Reads and clears the accumulators; untouched parameters are skipped
// (lazy Adam) so unseen texels and vertices keep their values and moments.
// Two ways to visit texels: one invocation per texel of theta, or (with
// ADAM_WORKLIST) the entries of the worklist G filled with the texels
// touched since the last step, so the cost follows pixels, not texels.

void adam_update(ivec2 p, int i, ivec2 size)
{
  int n = imageLoad(count, p).x;
  bool full_image = (flags & FLAG_FULL_IMAGE) != 0;
  bool regularized = (flags & ADAM_REGULARIZER) != 0;
  // Untouched (count 0) means nothing was accumulated either: leave at once,
  // so the cost of a step follows the touched parameters, not all of them.
  if (n == 0 && !full_image && !regularized) {
    return;
  }
  if (n != 0) {
    imageStore(count, p, ivec4(0));
  }
  vec3 g = vec3(0.0);
  vec3 h = vec3(0.0);  // FLAG_SENSITIVITY: the summed |c+ - c-|, in G's rows 2..4 x height
  bool sensitivity = (flags & FLAG_SENSITIVITY) != 0;
  bool one_sensitivity = (flags & ADAM_SHARED_SENSITIVITY) != 0;  // channel 0's for all three
  if (full_image) {
    for (int j = 0; j < substeps; j++) {
      float total = fixed_value(imageLoad(global_acc, ivec2(j, 0)).x,
                                imageLoad(global_acc, ivec2(j, 1)).x);
      g += perturbation_signs(perturbation_key(seed, substep0 + j, salt), i) * total;
    }
  }
  else {
    for (int c = 0; c < 3; c++) {
      ivec2 q = ivec2(3 * p.x + c, p.y);
      TAKE_FIXED(grad, q, size.y, g[c]);
      if (sensitivity && one_sensitivity && c > 0) {
        h[c] = h[0];
      }
      else if (sensitivity) {
        ivec2 r = q + ivec2(0, 2 * size.y);
        int h_lo = imageLoad(grad, r).x;
        int h_hi = imageLoad(grad, r + ivec2(0, size.y)).x;
        h[c] = fixed_value(h_lo, h_hi);
        imageStore(grad, r, ivec4(0));
        imageStore(grad, r + ivec2(0, size.y), ivec4(0));
      }
    }
  }
  bool touched = full_image || n > 0;
  g *= grad_scale;
  h *= grad_scale;
  if (regularized) {
    g += reg_weight * texelFetch(regularizer_grad, p, 0).xyz;
    touched = true;
  }
  if (!touched) {
    return;
  }
  vec4 value = imageLoad(theta, p);
  vec4 m = imageLoad(moment1, p);
  vec4 v = imageLoad(moment2, p);
  m.xyz = beta1 * m.xyz + (1.0 - beta1) * g;
  vec3 next;
  if (sensitivity) {
    // g sums 2 J r and h sums |J| over the texel's pixels (J: the pixel's
    // change per unit of the texel, r: its residual), both as running means
    // with beta1: the step is the texel's sensitivity-weighted mean residual,
    // small when the fit is close, and never more than the largest residual.
    v.xyz = beta1 * v.xyz + (1.0 - beta1) * h;
    // `damping` (a visit's, Engine.adam_step) in h's units: a texel its
    // pixels barely see (h small) would take their whole residual, and
    // drift with whatever the targets cannot agree on.
    next = value.xyz - lr * m.xyz / max(2.0 * (v.xyz + damping * grad_scale), vec3(1e-30));
  }
  else {
    v.xyz = beta2 * v.xyz + (1.0 - beta2) * g * g;
    vec3 m_hat = m.xyz * bias1;  // bias corrections 1 / (1 - beta^t), from the host
    vec3 v_hat = v.xyz * bias2;
    next = value.xyz - lr * m_hat / (sqrt(v_hat) + 1e-12);
  }
  if ((flags & ADAM_CLAMP01) != 0) {
    next = clamp(next, 0.0, 1.0);
  }
  if ((flags & ADAM_UNIT_NORMAL) != 0) {
    next = unit_normal_from_xy(next.xy);  // z follows x and y (it gets no gradient)
  }
  // Never let a non-finite value into the parameters.
  if (any(isnan(next)) || any(isinf(next)) || any(isnan(m.xyz)) || any(isnan(v.xyz))) {
    return;
  }
  imageStore(theta, p, vec4(next, value.w));
  imageStore(moment1, p, m);
  imageStore(moment2, p, v);
}

void main()
{
  ivec2 size = imageSize(theta);
  if ((flags & ADAM_WORKLIST) != 0) {
    int length = imageLoad(worklist_length, ivec2(0)).x;
    int width = imageSize(worklist).x;
    // Strided, so neighbouring invocations read neighbouring entries.
    int stride = int(gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x * gl_WorkGroupSize.y);
    int invocation = int(gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x +
                         gl_GlobalInvocationID.x);
    for (int k = invocation; k < length; k += stride) {
      int i = imageLoad(worklist, texel_of(k, width)).x;
      adam_update(texel_of(i, size.x), i, size);
    }
    return;
  }
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  if (i < count_total) {
    adam_update(p, i, size);
  }
}
