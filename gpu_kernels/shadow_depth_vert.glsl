// Shadow maps (vertex): one draw fills every tile of the atlas. The batch
// repeats the mesh's corners once per shadow slot, so corner gl_VertexID
// belongs to slot gl_VertexID / corners; its position comes from the
// positions texture (theta, theta+ or theta-, as R binds it), projected by the
// slot's light matrix and squeezed into the slot's tile (lit_shadows.glsl).
void main()
{
  int slot = gl_VertexID / corners;
  vec4 header = texelFetch(lights, ivec2(1, 0), 0);  // first shadow row, atlas size
  int row = int(header.x + 0.5) + 2 * slot;
  mat4 m = mat4(texelFetch(lights, ivec2(0, row), 0), texelFetch(lights, ivec2(1, row), 0),
                texelFetch(lights, ivec2(2, row), 0), texelFetch(lights, ivec2(3, row), 0));
  vec4 rect = texelFetch(lights, ivec2(0, row + 1), 0);
  vec3 position = vertex_position(vertex_index);
  vec4 c = m * vec4(position, 1.0);
  // Tile NDC -> atlas NDC, in clip space (times w) so clipping and
  // perspective interpolation stay right; the fragment discards outside the tile.
  vec2 scale = rect.zw / header.yz;
  vec2 offset = (2.0 * rect.xy + rect.zw) / header.yz - 1.0;
  gl_Position = vec4(c.xy * scale + offset * c.w, c.z, c.w);
  shadow_slot = slot;
  world_position = position;
  uv = corner_uv;
}
