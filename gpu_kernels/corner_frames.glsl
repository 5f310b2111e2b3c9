// Shading frames from the positions (engine/frames.py, its numpy reference):
// one invocation per corner. Its normal: the corner-angle-weighted face
// normals of its fan (fan_range.xy in `fan`); its tangent: the faces' UV
// tangents, each made orthogonal to that normal, over its tangent fan
// (fan_range.zw), then orthogonal to the normal; the sign as stored.
// Written as corner c's normal at texel 2c, tangent at 2c + 1.

vec3 corner_position(int corner)
{
  int t = corner / 3;
  vec4 tri = texelFetch(triangles, texel_of(t, textureSize(triangles, 0).x), 0);
  int k = corner - 3 * t;
  int v = int(k == 0 ? tri.x : (k == 1 ? tri.y : tri.z));
  return texelFetch(positions, texel_of(v, textureSize(positions, 0).x), 0).xyz;
}

// Corner i of triangle t's polygon.
vec3 face_vertex(int start, int i)
{
  int v = int(texelFetch(face_vertices, texel_of(start + i, textureSize(face_vertices, 0).x), 0).x);
  return texelFetch(positions, texel_of(v, textureSize(positions, 0).x), 0).xyz;
}

vec3 unit_or_zero(vec3 v)
{
  float l = length(v);
  return l > 1e-30 ? v / l : vec3(0.0);
}

// The face of corner `e`: its unit normal (its polygon's, Newell's sum about
// the first vertex, as Blender's; `winding` -1 under a mirroring transform),
// its triangle's UV tangent (unnormalised) and the corner's angle.
void face_terms(int e, int width, out vec3 normal, out vec3 tangent, out float angle)
{
  int first = 3 * (e / 3);
  int k = e - first;
  vec3 p0 = corner_position(first);
  vec3 p1 = corner_position(first + 1);
  vec3 p2 = corner_position(first + 2);
  vec2 w0 = texelFetch(corner_data, texel_of(first, width), 0).xy;
  vec2 d1 = texelFetch(corner_data, texel_of(first + 1, width), 0).xy - w0;
  vec2 d2 = texelFetch(corner_data, texel_of(first + 2, width), 0).xy - w0;
  vec3 e1 = p1 - p0;
  vec3 e2 = p2 - p0;
  vec2 face = texelFetch(face_range, texel_of(e / 3, textureSize(face_range, 0).x), 0).xy;
  int start = int(face.x);
  vec3 origin = face_vertex(start, 0);
  normal = vec3(0.0);
  vec3 a = face_vertex(start, 1) - origin;
  for (int i = 2; i < int(face.y); i++) {
    vec3 b = face_vertex(start, i) - origin;
    normal += cross(a, b);
    a = b;
  }
  normal = winding * unit_or_zero(normal);
  float det = d1.x * d2.y - d2.x * d1.y;
  tangent = (e1 * d2.y - e2 * d1.y) * (det < 0.0 ? -1.0 : 1.0);
  vec3 here = k == 0 ? p0 : (k == 1 ? p1 : p2);
  vec3 next = k == 0 ? p1 : (k == 1 ? p2 : p0);
  vec3 prev = k == 0 ? p2 : (k == 1 ? p0 : p1);
  angle = acos(clamp(dot(unit_or_zero(next - here), unit_or_zero(prev - here)), -1.0, 1.0));
}

void main()
{
  int width = textureSize(fan_range, 0).x;
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  int c = p.y * width + p.x;
  if (p.x >= width || c >= corner_count) {
    return;
  }
  int fan_width = textureSize(fan, 0).x;
  vec4 range = texelFetch(fan_range, texel_of(c, width), 0);
  vec3 fn, ft;
  float angle;
  vec3 n = vec3(0.0);
  for (int i = 0; i < int(range.y); i++) {
    int e = int(texelFetch(fan, texel_of(int(range.x) + i, fan_width), 0).x);
    face_terms(e, width, fn, ft, angle);
    n += angle * fn;
  }
  n = unit_or_zero(n);
  vec3 t = vec3(0.0);
  for (int i = 0; i < int(range.w); i++) {
    int e = int(texelFetch(fan, texel_of(int(range.z) + i, fan_width), 0).x);
    face_terms(e, width, fn, ft, angle);
    t += angle * unit_or_zero(ft - n * dot(n, ft));
  }
  t = unit_or_zero(t - n * dot(n, t));
  float sign = texelFetch(corner_data, texel_of(c, width), 0).z;
  int frames_width = imageSize(frames).x;
  imageStore(frames, texel_of(2 * c, frames_width), vec4(n, 0.0));
  imageStore(frames, texel_of(2 * c + 1, frames_width), vec4(t, sign));
}
