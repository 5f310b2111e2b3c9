// Large Steps, Adam in u = (I + lambda L) x on the preconditioned gradient
// s, "uniform" as the paper's AdamUniform: per-coordinate moments, but every
// coordinate divided by the largest sqrt(v_hat), so the step keeps the
// smooth shape of s (a per-coordinate division would sharpen it again).
// stage 0: the moments, and the largest v into `v_max` (float bits of a
//          non-negative float order as ints: imageAtomicMax; cleared before).
// stage 1: the step du = -lr m_hat / sqrt(max v_hat), as the right-hand side
//          of (I + lambda L) dx = du (residual du, direction
//          du / (centre (1 + lambda degree)), as large_steps_gather.glsl);
//          the solve adds dx to theta.
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(moment1);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  if (i >= count_total) {
    return;
  }
  vec4 m = imageLoad(moment1, p);
  if (stage == 0) {
    vec3 s = texelFetch(preconditioned, p, 0).xyz;
    vec4 v = imageLoad(moment2, p);
    m.xyz = beta1 * m.xyz + (1.0 - beta1) * s;
    v.xyz = beta2 * v.xyz + (1.0 - beta2) * s * s;
    if (any(isnan(m.xyz)) || any(isinf(m.xyz)) || any(isnan(v.xyz)) || any(isinf(v.xyz))) {
      return;  // never let a non-finite value into the moments
    }
    imageStore(moment1, p, m);
    imageStore(moment2, p, v);
    imageAtomicMax(v_max, ivec2(0), floatBitsToInt(max(v.x, max(v.y, v.z))));
    return;
  }
  // uniform_step == 0: Adam's own per-coordinate division (an experiment's switch).
  vec3 v = uniform_step != 0 ? vec3(intBitsToFloat(imageLoad(v_max, ivec2(0)).x)) : imageLoad(moment2, p).xyz;
  vec3 du = -lr * (m.xyz * bias1) / (sqrt(v * bias2) + 1e-12);
  if (any(isnan(du)) || any(isinf(du))) {
    du = vec3(0.0);
  }
  imageStore(residual, p, vec4(du, 0.0));
  float diagonal = 1.0 + laplacian_weight * texelFetch(adjacency_range, p, 0).y;
  imageStore(direction, p, vec4(du * inv_centre / diagonal, 0.0));
}
