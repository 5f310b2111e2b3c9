// R (vertex): positions come from the parameter texture, so perturbed
// positions never leave the GPU. Triangles are drawn unindexed, 3 corners each.
void main()
{
  vec3 position = vertex_position(vertex_index);
  gl_Position = view_projection * vec4(position, 1.0);
  triangle_id = gl_VertexID / 3;
  uv = corner_uv;
}
