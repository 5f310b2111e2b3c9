// R, lit (vertex): positions from the parameter texture, as rasterize_vert;
// each corner's world-space normal and tangent from `corner_frames` (texels
// 2c and 2c + 1: engine/frames.py pack_frames), which follow the positions
// drawn when a lit fit moves them.
void main()
{
  vec3 position = vertex_position(vertex_index);
  gl_Position = view_projection * vec4(position, 1.0);
  triangle_id = gl_VertexID / 3;
  uv = corner_uv;
  world_position = position;
  int width = textureSize(corner_frames, 0).x;
  world_normal = texelFetch(corner_frames, texel_of(2 * gl_VertexID, width), 0).xyz;
  world_tangent = texelFetch(corner_frames, texel_of(2 * gl_VertexID + 1, width), 0);
}
