// Lit raster (vertex): world-space corners, drawn unindexed.
void main()
{
  gl_Position = view_projection * vec4(position, 1.0);
  world_position = position;
  world_normal = normal;
  world_tangent = tangent;
  uv = corner_uv;
}
