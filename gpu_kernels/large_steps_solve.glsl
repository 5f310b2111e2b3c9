// Large Steps, one Chebyshev iteration on (I + lambda L) x = b, L = D - A the
// combinatorial Laplacian of the vertex graph (CSR adjacency in textures, as
// laplacian.glsl), lambda: `laplacian_weight`; Jacobi-preconditioned (the
// residual over the diagonal 1 + lambda degree), so a high-degree vertex (a
// UV sphere's pole) does not stretch the spectrum. No dot products, so no
// reduction: the coefficients come from the bounds of the preconditioned
// spectrum (Update.LargeSteps):
//   x += d;  r -= (I + lambda L) d;  d' = keep d + gain r / (1 + lambda degree)
// d is read from `direction` (neighbours too) and d' written to
// `direction_next` (the host swaps them); x and r are the invocation's own.
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(residual);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  if (i >= count_total) {
    return;
  }
  int adj_width = textureSize(adjacency, 0).x;
  vec4 range = texelFetch(adjacency_range, p, 0);
  int start = int(range.x);
  int degree = int(range.y);
  vec3 d = texelFetch(direction, p, 0).xyz;
  vec3 sum = vec3(0.0);
  for (int k = 0; k < degree; k++) {
    int u = int(texelFetch(adjacency, texel_of(start + k, adj_width), 0).x);
    sum += texelFetch(direction, texel_of(u, size.x), 0).xyz;
  }
  vec3 md = d + laplacian_weight * (float(degree) * d - sum);
  vec4 x = imageLoad(solution, p);
  imageStore(solution, p, vec4(x.xyz + d, x.w));
  vec3 r = imageLoad(residual, p).xyz - md;
  imageStore(residual, p, vec4(r, 0.0));
  imageStore(direction_next, p, vec4(keep * d + gain * r / (1.0 + laplacian_weight * float(degree)), 0.0));
}
