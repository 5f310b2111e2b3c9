// Shading frames from the positions (engine/frames.py, its numpy reference):
// one invocation per corner. Its normal: the corner-angle-weighted face
// normals of its fan (fan_range.xy in `fan`); its tangent: MikkTSpace's
// shares over its tangent fan (fan_range.zw), then orthogonal to the
// normal; the sign as stored.
// Written as corner c's normal at texel 2c, tangent at 2c + 1.

vec3 corner_position(int corner)
{
  int t = corner / 3;
  vec4 tri = texelFetch(triangles, texel_of(t, textureSize(triangles, 0).x), 0);
  int k = corner - 3 * t;
  int v = int(k == 0 ? tri.x : (k == 1 ? tri.y : tri.z));
  return texelFetch(positions, texel_of(v, textureSize(positions, 0).x), 0).xyz;
}

// A polygon corner (`start` + i in face_vertices): (vertex, u, v).
vec4 face_corner(int start, int i)
{
  return texelFetch(face_vertices, texel_of(start + i, textureSize(face_vertices, 0).x), 0);
}

vec3 face_vertex(int start, int i)
{
  int v = int(face_corner(start, i).x);
  return texelFetch(positions, texel_of(v, textureSize(positions, 0).x), 0).xyz;
}

vec3 unit_or_zero(vec3 v)
{
  float l = length(v);
  return l > 1e-30 ? v / l : vec3(0.0);
}

// The face of corner `e`: its unit normal (its polygon's, Newell's sum about
// the first vertex, as Blender's; `winding` -1 under a mirroring transform)
// and the corner's angle.
void face_terms(int e, out vec3 normal, out float angle)
{
  int first = 3 * (e / 3);
  int k = e - first;
  vec3 p0 = corner_position(first);
  vec3 p1 = corner_position(first + 1);
  vec3 p2 = corner_position(first + 2);
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
  vec3 here = k == 0 ? p0 : (k == 1 ? p1 : p2);
  vec3 next = k == 0 ? p1 : (k == 1 ? p2 : p0);
  vec3 prev = k == 0 ? p2 : (k == 1 ? p0 : p1);
  angle = acos(clamp(dot(unit_or_zero(next - here), unit_or_zero(prev - here)), -1.0, 1.0));
}

vec3 off_normal(vec3 v, vec3 n)
{
  return unit_or_zero(v - n * dot(n, v));
}

// MikkTSpace's share of triangle (p0, p1, p2) with UVs (w0, w1, w2) at its
// corner p0: its UV tangent off the normal n, times the corner's angle
// between its edges off n (engine/frames.py _mikk_share).
vec3 mikk_share(vec3 p0, vec3 p1, vec3 p2, vec2 w0, vec2 w1, vec2 w2, vec3 n)
{
  vec3 e1 = p1 - p0;
  vec3 e2 = p2 - p0;
  vec2 d1 = w1 - w0;
  vec2 d2 = w2 - w0;
  float det = d1.x * d2.y - d2.x * d1.y;
  vec3 t = (e1 * d2.y - e2 * d1.y) * (det < 0.0 ? -1.0 : 1.0);
  float angle = acos(clamp(dot(off_normal(e1, n), off_normal(e2, n)), -1.0, 1.0));
  return angle * off_normal(t, n);
}

// Triangle (a, b, c) of a quad (corners of face_vertices from `start`), if
// it holds quad corner `mine`: its share there, from that corner on.
vec3 quad_share(int start, ivec3 tri, int mine, vec3 n)
{
  if (mine != tri.x && mine != tri.y && mine != tri.z) {
    return vec3(0.0);
  }
  ivec3 r = mine == tri.x ? tri : (mine == tri.y ? tri.yzx : tri.zxy);
  return mikk_share(face_vertex(start, r.x), face_vertex(start, r.y), face_vertex(start, r.z),
                    face_corner(start, r.x).yz, face_corner(start, r.y).yz, face_corner(start, r.z).yz, n);
}

// A tangent-fan entry's share given its owner's normal n: its loop
// triangle's, or a quad corner's in the quad's own MikkTSpace split (along
// the diagonal shorter in UV; in position on a tie).
vec3 tangent_share(int e, int width, vec3 n)
{
  int t = e / 3;
  int k = e - 3 * t;
  vec2 face = texelFetch(face_range, texel_of(t, textureSize(face_range, 0).x), 0).xy;
  if (int(face.y) == 4) {
    int start = int(face.x);
    vec4 tri = texelFetch(triangles, texel_of(t, textureSize(triangles, 0).x), 0);
    float v = k == 0 ? tri.x : (k == 1 ? tri.y : tri.z);
    int mine = 0;
    for (int i = 1; i < 4; i++) {
      mine = face_corner(start, i).x == v ? i : mine;
    }
    vec2 w02 = face_corner(start, 2).yz - face_corner(start, 0).yz;
    vec2 w13 = face_corner(start, 3).yz - face_corner(start, 1).yz;
    vec3 p02 = face_vertex(start, 2) - face_vertex(start, 0);
    vec3 p13 = face_vertex(start, 3) - face_vertex(start, 1);
    float uv02 = dot(w02, w02);
    float uv13 = dot(w13, w13);
    bool diag02 = uv02 != uv13 ? uv02 < uv13 : !(dot(p13, p13) < dot(p02, p02));
    return quad_share(start, diag02 ? ivec3(0, 1, 2) : ivec3(0, 1, 3), mine, n) +
           quad_share(start, diag02 ? ivec3(0, 2, 3) : ivec3(1, 2, 3), mine, n);
  }
  int first = 3 * t;
  int c1 = first + (k + 1) % 3;
  int c2 = first + (k + 2) % 3;
  return mikk_share(corner_position(e), corner_position(c1), corner_position(c2),
                    texelFetch(corner_data, texel_of(e, width), 0).xy,
                    texelFetch(corner_data, texel_of(c1, width), 0).xy,
                    texelFetch(corner_data, texel_of(c2, width), 0).xy, n);
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
  vec3 fn;
  float angle;
  vec3 n = vec3(0.0);
  for (int i = 0; i < int(range.y); i++) {
    int e = int(texelFetch(fan, texel_of(int(range.x) + i, fan_width), 0).x);
    face_terms(e, fn, angle);
    n += angle * fn;
  }
  n = unit_or_zero(n);
  vec3 t = vec3(0.0);
  for (int i = 0; i < int(range.w); i++) {
    int e = int(texelFetch(fan, texel_of(int(range.z) + i, fan_width), 0).x);
    t += tangent_share(e, width, n);
  }
  t = unit_or_zero(t - n * dot(n, t));
  float sign = texelFetch(corner_data, texel_of(c, width), 0).z;
  int frames_width = imageSize(frames).x;
  imageStore(frames, texel_of(2 * c, frames_width), vec4(n, 0.0));
  imageStore(frames, texel_of(2 * c + 1, frames_width), vec4(t, sign));
}
