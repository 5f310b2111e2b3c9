// R (vertex): positions come from the parameter texture, so perturbed
// positions never leave the GPU. Triangles are drawn unindexed, 3 corners each.
void main()
{
  int w = textureSize(positions, 0).x;
  vec3 position = texelFetch(positions, ivec2(vertex_index % w, vertex_index / w), 0).xyz;
  gl_Position = view_projection * vec4(position, 1.0);
  triangle_id = gl_VertexID / 3;
  uv = corner_uv;
}
