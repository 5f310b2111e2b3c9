// Large Steps (Nicolet et al. 2021), pass 1: the vertex gradient g from G's
// fixed-point sums (cleared here, as adam_step clears them), plus the
// smoothness term's, as the right-hand side of (I + lambda L) s = g. Starts
// the Chebyshev solve (large_steps_solve.glsl) at s = 0: residual g,
// direction g / (centre (1 + lambda degree)) (centre: the middle of the
// preconditioned spectrum's bounds).
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(residual);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  vec3 g = vec3(0.0);
  if (i < count_total) {
    if (imageLoad(count, p).x != 0) {
      imageStore(count, p, ivec4(0));
    }
    for (int c = 0; c < 3; c++) {
      TAKE_FIXED(grad, ivec2(3 * p.x + c, p.y), size.y, g[c]);
    }
    g = g * grad_scale + reg_weight * texelFetch(regularizer_grad, p, 0).xyz;
    if (any(isnan(g)) || any(isinf(g))) {
      g = vec3(0.0);
    }
  }
  imageStore(solution, p, vec4(0.0));
  imageStore(residual, p, vec4(g, 0.0));
  float diagonal = 1.0 + laplacian_weight * texelFetch(adjacency_range, p, 0).y;
  imageStore(direction, p, vec4(g * inv_centre / diagonal, 0.0));
}
