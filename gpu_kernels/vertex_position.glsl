// A vertex's position, from the parameter texture (R+ and R- bind theta+ or
// theta-), so perturbed positions never leave the GPU. Shared by R and the
// shadow-map pass (shadow_depth_vert.glsl), which draw from the same texture.
vec3 vertex_position(int vertex)
{
  int w = textureSize(positions, 0).x;
  return texelFetch(positions, ivec2(vertex % w, vertex / w), 0).xyz;
}
