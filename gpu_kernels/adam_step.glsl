// Adam, one invocation per parameter texel (3 scalar parameters, RGB).
// Reads and clears the accumulators; untouched parameters are skipped
// (lazy Adam) so unseen texels and vertices keep their values and moments.

void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(theta);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  if (i >= count_total) {
    return;
  }
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
  for (int c = 0; c < 3; c++) {
    if (full_image) {
      for (int j = 0; j < substeps; j++) {
        float total = fixed_value(imageLoad(global_acc, ivec2(j, 0)).x,
                                  imageLoad(global_acc, ivec2(j, 1)).x);
        g[c] += perturbation_sign(seed, substep0 + j, salt, 3 * i + c) * total;
      }
    }
    else {
      ivec2 q = ivec2(3 * p.x + c, p.y);
      ivec2 q_hi = q + ivec2(0, size.y);
      g[c] = fixed_value(imageLoad(grad, q).x, imageLoad(grad, q_hi).x);
      imageStore(grad, q, ivec4(0));
      imageStore(grad, q_hi, ivec4(0));
    }
  }
  bool touched = full_image || n > 0;
  if ((flags & ADAM_PER_COUNT) != 0 && n > 0) {
    g /= float(n);
  }
  g *= grad_scale;
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
  v.xyz = beta2 * v.xyz + (1.0 - beta2) * g * g;
  vec3 m_hat = m.xyz / (1.0 - pow(beta1, float(t)));
  vec3 v_hat = v.xyz / (1.0 - pow(beta2, float(t)));
  vec3 next = value.xyz - lr * m_hat / (sqrt(v_hat) + 1e-12);
  if ((flags & ADAM_CLAMP01) != 0) {
    next = clamp(next, 0.0, 1.0);
  }
  // Never let a non-finite value into the parameters.
  if (any(isnan(next)) || any(isinf(next)) || any(isnan(m.xyz)) || any(isnan(v.xyz))) {
    return;
  }
  imageStore(theta, p, vec4(next, value.w));
  imageStore(moment1, p, m);
  imageStore(moment2, p, v);
}
