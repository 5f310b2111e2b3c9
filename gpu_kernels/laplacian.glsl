// Uniform Laplacian on the vertex graph (CSR adjacency in textures).
// transpose == 0: result_v = x_v - mean_{u in N(v)} x_u          (delta = L x)
// transpose == 1: result_v = x_v - sum_{u in N(v)} x_u / deg(u)  (L^T x)
// `rest` is subtracted from the result: the start's L x0 in the first pass,
// so the smoothness term sum_v |L x - L x0|_v^2 keeps the start's local shape
// (zero gradient at the start) instead of shrinking it; zero otherwise.
// Its gradient is 2 L^T (L x - L x0).
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = imageSize(result);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  if (i >= count_total) {
    imageStore(result, p, vec4(0.0));
    return;
  }
  int adj_width = textureSize(adjacency, 0).x;
  vec4 range = texelFetch(adjacency_range, p, 0);
  int start = int(range.x);
  int degree = int(range.y);
  vec3 own = texelFetch(values, p, 0).xyz;
  vec3 acc = vec3(0.0);
  for (int k = 0; k < degree; k++) {
    int a = start + k;
    int u = int(texelFetch(adjacency, texel_of(a, adj_width), 0).x);
    ivec2 q = texel_of(u, size.x);
    float w = 1.0;
    if (transpose == 1) {
      w = 1.0 / max(texelFetch(adjacency_range, q, 0).y, 1.0);
    }
    acc += w * texelFetch(values, q, 0).xyz;
  }
  if (transpose == 0 && degree > 0) {
    acc /= float(degree);
  }
  imageStore(result, p, vec4(own - acc - texelFetch(rest, p, 0).xyz, 0.0));
}
