// Shadow maps of the lit fit (issue 24): each sun or spot light that casts
// shadows has a tile of one atlas (a point light six: a cube map) (`shadow_atlas`, RGBA32F: light-space depth
// in r, coverage in a), drawn from the fit's positions by shadow_depth_*.glsl.
// engine/shadow_reference.py mirrors shadow_lookup in numpy.
//
// Depth is in world units: a sun's dot(p, direction), a spot's or point's
// distance to the lamp. The rows after the lights in the `lights` texture (layout in
// lit_shading.glsl) hold each tile's data, 2 rows of 4 texels per slot k at
// row header1.x + 2k:
//   row 0: the columns of the light's clip matrix (clip = M p)
//   row 1: t0 the tile in atlas texels (x0, y0, width, height)
//          t1 (light index, depth bias, normal offset, search radius), the
//             last three in texels
//          t2 (texel size, softness, -, kind): a sun's texel in world units and
//             tan(angle / 2); a spot's or point's texel as tan at unit
//             distance and its radius; kind 0 sun, 1 point (a cube face), 2 spot
//
// The lookup is PCSS: a blocker search on a SHADOW_SEARCH^2 grid within the
// search radius, a penumbra from the blockers' mean depth and the light's size
// (as EEVEE's soft shadows from the sun's angle or the lamp's radius), then
// SHADOW_PCF^2 bilinear depth compares over it. The receiver is offset along
// its normal (more where the light grazes) and compared with a depth bias that
// grows with the surface's slope to the light and the tap's distance, so the
// lit side has no acne.

#ifndef SHADOW_SEARCH
#define SHADOW_SEARCH 3
#endif
#ifndef SHADOW_PCF
#define SHADOW_PCF 2
#endif
#define SHADOW_MIN_RADIUS 1.0
#define SHADOW_MAX_SLOPE 4.0

// 1 where atlas texel t (clamped to the tile lo..hi) holds a surface nearer than d.
float shadow_occludes(ivec2 t, ivec2 lo, ivec2 hi, float d)
{
  vec4 s = texelFetch(shadow_atlas, clamp(t, lo, hi), 0);
  return (s.a > 0.5 && s.r < d) ? 1.0 : 0.0;
}

// The fraction of light `slot` that reaches point p with unit normal n.
float shadow_lookup(int slot, vec3 p, vec3 n)
{
  int row = int(texelFetch(lights, ivec2(1, 0), 0).x + 0.5) + 2 * slot;
  mat4 m = mat4(texelFetch(lights, ivec2(0, row), 0), texelFetch(lights, ivec2(1, row), 0),
                texelFetch(lights, ivec2(2, row), 0), texelFetch(lights, ivec2(3, row), 0));
  vec4 rect = texelFetch(lights, ivec2(0, row + 1), 0);
  vec4 s1 = texelFetch(lights, ivec2(1, row + 1), 0);
  vec4 s2 = texelFetch(lights, ivec2(2, row + 1), 0);
  int light = int(s1.x + 0.5);
  vec4 l1 = texelFetch(lights, ivec2(1, light + 1), 0);
  vec4 l2 = texelFetch(lights, ivec2(2, light + 1), 0);
  bool spot = s2.w > 0.5;
  vec3 to_light = l1.xyz - p;
  float dist = spot ? length(to_light) : 1.0;
  vec3 L = spot ? to_light / max(dist, 1e-6) : -l2.xyz;
  float texel = s2.x * dist;  // one texel's world size at p
  if (dot(n, L) <= 0.0) {
    return 0.0;  // facing away: its own surface shadows it (and shade_lit gives it no light)
  }
  float NL = min(dot(n, L), 1.0);
  float sine = sqrt(1.0 - NL * NL);
  float slope = min(sine / max(NL, 1e-3), SHADOW_MAX_SLOPE);
  vec3 q = p + n * (s1.z * texel * sine);
  vec4 c = m * vec4(q, 1.0);
  if (c.w <= 0.0) {
    return 1.0;
  }
  vec2 st = c.xy / c.w * 0.5 + 0.5;
  if (any(lessThan(st, vec2(0.0))) || any(greaterThan(st, vec2(1.0)))) {
    return 1.0;
  }
  vec2 xy = rect.xy + st * rect.zw;  // atlas texel units (texel centres at +0.5)
  ivec2 lo = ivec2(rect.xy);
  ivec2 hi = lo + ivec2(rect.zw) - 1;
  float d = spot ? length(q - l1.xyz) : dot(q, l2.xyz);
  float bias = texel * (s1.y + slope);
  float radius = s1.w;
  float blockers = 0.0, found = 0.0;
  for (int j = 0; j < SHADOW_SEARCH; j++) {
    for (int i = 0; i < SHADOW_SEARCH; i++) {
      vec2 o = (vec2(i, j) * (2.0 / float(SHADOW_SEARCH - 1)) - 1.0) * radius;
      vec4 s = texelFetch(shadow_atlas, clamp(ivec2(floor(xy + o)), lo, hi), 0);
      if (s.a > 0.5 && s.r < d - bias - texel * slope * length(o)) {
        blockers += s.r;
        found += 1.0;
      }
    }
  }
  if (found == 0.0) {
    return 1.0;
  }
  float blocker = blockers / found;
  float penumbra = s2.y * (d - blocker) / (spot ? max(blocker, 1e-4) : 1.0) / max(texel, 1e-12);
  float r = clamp(penumbra, SHADOW_MIN_RADIUS, max(radius, SHADOW_MIN_RADIUS));
  float visible = 0.0;
  for (int j = 0; j < SHADOW_PCF; j++) {
    for (int i = 0; i < SHADOW_PCF; i++) {
      vec2 o = ((vec2(i, j) + 0.5) * (2.0 / float(SHADOW_PCF)) - 1.0) * r;
      vec2 f = xy + o - 0.5;
      vec2 fl = floor(f);
      vec2 w = f - fl;
      ivec2 t = ivec2(fl);
      float dd = d - bias - texel * slope * length(o);
      float a = shadow_occludes(t, lo, hi, dd);
      float b = shadow_occludes(t + ivec2(1, 0), lo, hi, dd);
      float e = shadow_occludes(t + ivec2(0, 1), lo, hi, dd);
      float g = shadow_occludes(t + ivec2(1, 1), lo, hi, dd);
      visible += 1.0 - mix(mix(a, b, w.x), mix(e, g, w.x), w.y);
    }
  }
  return visible / float(SHADOW_PCF * SHADOW_PCF);
}

// shade_lit's visibility of each shadowed light at the fragment being
// shaded, looked up once per fragment (shadow_begin: R's pair and gain
// variants shade a fragment 2-3 times). At most SHADOW_LIGHTS of them
// (engine/shadows.py), kept in a vec4: llvmpipe runs both sides of a branch,
// so a lookup left in shade_lit's light loop (or a per-fragment array, spilled
// to memory) made every lit draw 3-4x slower.
#define SHADOW_LIGHTS 4
vec4 shadow_kept;

// The slot of shadowed light k that holds p: its only one, or the cube face
// of p's major axis from the lamp (+x, -x, +y, -y, +z, -z).
int shadow_slot_of(int k, vec3 p)
{
  int slot = int(texelFetch(lights, ivec2(2, 0), 0)[k] + 0.5);
  if (texelFetch(lights, ivec2(3, 0), 0)[k] > 1.5) {
    int row = int(texelFetch(lights, ivec2(1, 0), 0).x + 0.5) + 2 * slot;
    int light = int(texelFetch(lights, ivec2(1, row + 1), 0).x + 0.5);
    vec3 d = p - texelFetch(lights, ivec2(1, light + 1), 0).xyz;
    vec3 a = abs(d);
    int axis = (a.x >= a.y && a.x >= a.z) ? 0 : (a.y >= a.z ? 1 : 2);
    slot += 2 * axis + (d[axis] < 0.0 ? 1 : 0);
  }
  return slot;
}

// Compiled in with LIT_SHADOWS only (the _shadowed kernels): even a loop of no
// turns costs a lookup on llvmpipe.
void shadow_begin(vec3 p, vec3 n)
{
  shadow_kept = vec4(1.0);
#ifdef LIT_SHADOWS
  int count = int(texelFetch(lights, ivec2(1, 0), 0).w + 0.5);
  for (int k = 0; k < min(count, SHADOW_LIGHTS); k++) {
    shadow_kept[k] = shadow_lookup(shadow_slot_of(k, p), p, n);
  }
#endif
}

// A shadowed light's row holds its index + 1 in t3.x (0: it casts none; the
// axis there is an area light's only).
float light_visibility(vec4 t3)
{
  int k = clamp(int(t3.x + 0.5) - 1, -1, SHADOW_LIGHTS - 1);
  return k < 0 ? 1.0 : shadow_kept[k];
}
