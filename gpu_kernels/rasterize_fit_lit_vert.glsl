// R, lit (vertex): positions from the parameter texture, as rasterize_vert;
// each corner's world-space normal and tangent come with it (fixed in a lit fit).
void main()
{
  vec3 position = vertex_position(vertex_index);
  gl_Position = view_projection * vec4(position, 1.0);
  triangle_id = gl_VertexID / 3;
  uv = corner_uv;
  world_position = position;
  world_normal = corner_normal;
  world_tangent = corner_tangent;
}
