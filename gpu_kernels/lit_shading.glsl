// Lit shading (issue 9): a documented subset of Blender's Principled BSDF as
// EEVEE evaluates it, under Blender's lights and a uniform world colour.
// engine/lit_reference.py mirrors every function here in numpy.
//
// Material: base colour (linear), roughness r (alpha = r^2), metallic m,
// specular IOR level s (IOR 1.5, tint white, no coat/sheen/transmission).
//   dielectric: F0 = 0.08 s, F90 = min(1, 7.06 F0) (EEVEE 5.2's bsdf_lut), single
//          scattering: R_dielectric = F0 A + F90 B
//   metal: F0 = base colour, F90 = 1, multiple scattering (F_brdf_multi_scatter):
//          R_metal = (F0 A + B) / (1 - (1 - A - B) (F0 + (1 - F0) / 21))
//   A, B: split-sum scale and bias (a polynomial fit, split_sum below)
//   reflection colour  = m R_metal + (1 - m) R_dielectric
//   diffuse colour     = base (1 - m) (1 - max(R_dielectric))  (layering)
// Radiance = diffuse colour (sum E_i NL / pi + ambient)
//          + reflection colour (sum E_i NL D(alpha_i') Vis(alpha) / (A + B) + ambient)
// EEVEE multiplies a light's normalised GGX lobe integral (LTC) by the same
// split-sum colour as its probes: so the Fresnel is the lobe average, not
// Schlick at each light's half vector, and the lobe is divided by its albedo
// A + B. A light of angular radius t widens the lobe to alpha' = alpha + t/2
// (a normalised D, so energy is kept).
//
// Lights, Blender's units (EEVEE's shape_radiance_get, Cycles alike):
//   sun   strength S (W/m^2): irradiance E = S colour
//   point power P (W): intensity P colour / (4 pi), E = I / d^2
//   spot  as point times smoothstep(0, 1, (cos theta - cos(size/2)) / ((1 - cos(size/2)) blend))
//   area  power P (W), one-sided Lambertian emitter: radiance P colour / (pi A);
//         integrated over AREA_GRID^2 sub-rectangles (midpoints)
// Shadows: with LIT_SHADOWS #defined (the fit's R), a sun's, spot's or point's
// light is scaled by its shadow-map visibility (lit_shadows.glsl, included
// before this file). Area lights cast none; the light's influence radius (set
// the scene's light threshold low), soft falloff near the lamp and EEVEE's
// horizon scan are not modelled.
//
// The light texture (`lights`, RGBA32F, 4 texels wide, sampled with texelFetch):
//   row 0:     (ambient rgb, light count), (first shadow row, atlas width,
//              atlas height, shadowed lights), each shadowed light's first
//              slot, its slot count (1; a point light's cube 6)
//   row 1 + i: t0 (emission rgb, kind)   kind 0 sun, 1 point, 2 spot, 3 area;
//                                        emission: sun S colour, point/spot
//                                        P colour / (4 pi), area P colour / pi
//              t1 (position, radius)     radius: point/spot shape radius, sun tan(angle / 2)
//              t2 (direction, a)         direction the lamp points (its -Z);
//                                        spot a = cos(size / 2); area a = half size x
//              t3 (axis x, b)            area: unit lamp X axis, b = half size y;
//                                        spot: b = 1 / ((1 - cos(size / 2)) blend);
//                                        sun, spot, point: x = shadowed light + 1 (0: none)
//   then 2 rows per shadow slot (lit_shadows.glsl)

#define LIT_PI 3.14159265358979
#define AREA_GRID 4
#define LIGHT_SUN 0
#define LIGHT_POINT 1
#define LIGHT_SPOT 2
#define LIGHT_AREA 3
#ifdef LIT_SHADOWS
#define LIGHT_VISIBILITY(t3) light_visibility(t3)
#else
#define LIGHT_VISIBILITY(t3) 1.0
#endif

// Split-sum scale and bias (A, B) of GGX with height-correlated Smith
// masking (directional albedo F0 A + F90 B), as EEVEE's LUT holds them: a
// least-squares fit in (2r-1)^i (2sqrt(NV)-1)^j, i, j <= 5, to a Monte-Carlo table
// (max error 0.03, rms 0.003). Karis' mobile fit is ~15% low for this G.
const float SPLIT_SUM_A[36] = float[36](
  7.6158756e-01, 1.3370260e-01, 2.3823427e-01, -2.3229237e-01, -1.3852400e-01, 1.5104035e-01,
  3.5595628e-03, -9.9251422e-01, -3.7759839e-03, 1.1780532e+00, -1.5626974e-01, -4.0000505e-01,
  -9.4121493e-02, 4.3937201e-01, -1.5352083e+00, -4.8983677e-02, 1.5212261e+00, -7.2239722e-01,
  -1.9284564e-01, 5.7289812e-01, 1.6463490e+00, -2.5254335e+00, -1.2515806e+00, 1.7448502e+00,
  5.4173827e-03, -4.0616369e-01, 1.0971647e+00, 2.1958792e-01, -1.3188142e+00, 5.8832972e-01,
  1.0442076e-01, -1.4521460e-01, -1.3474947e+00, 1.4968521e+00, 1.2951332e+00, -1.3758552e+00);
const float SPLIT_SUM_B[36] = float[36](
  8.3211197e-02, -1.5998389e-01, -1.8405804e-02, 1.1737176e-01, 6.3659900e-02, -8.6276136e-02,
  -1.8974871e-01, 4.0204464e-01, 1.8297730e-01, -5.3428899e-01, -2.9409286e-01, 4.3825185e-01,
  1.4544352e-01, -6.8074167e-01, 6.1070739e-01, 6.0310665e-01, -9.2212652e-01, 2.3837570e-01,
  6.6071866e-02, 3.8834668e-01, -1.4935326e+00, 3.6760682e-01, 2.1350242e+00, -1.4715013e+00,
  -1.1263269e-01, 4.5729273e-01, -2.2080135e-01, -6.9176057e-01, 6.3801429e-01, -6.4249759e-02,
  1.6469072e-02, -4.3989188e-01, 9.9711135e-01, 1.2059961e-01, -1.6837189e+00, 9.9251335e-01);

vec2 split_sum(float roughness, float NV)
{
  // Powers of (2 r - 1) and (2 sqrt(NV) - 1): small coefficients, no float32 cancellation.
  float r = 2.0 * clamp(roughness, 0.02, 1.0) - 1.0;
  float x = 2.0 * sqrt(clamp(NV, 0.02, 1.0)) - 1.0;
  vec2 ab = vec2(0.0);
  float ri = 1.0;
  for (int i = 0; i < 6; i++) {
    vec2 p = vec2(0.0);
    for (int j = 5; j >= 0; j--) {
      p = p * x + vec2(SPLIT_SUM_A[i * 6 + j], SPLIT_SUM_B[i * 6 + j]);
    }
    ab += ri * p;
    ri *= r;
  }
  return clamp(ab, 0.0, 1.0);
}

// EEVEE's F_brdf_multi_scatter with F90 = 1 (a metal).
vec3 metal_reflectance(vec3 f0, vec2 ab)
{
  vec3 favg = f0 + (1.0 - f0) / 21.0;
  return (ab.x * f0 + ab.y) / (1.0 - (1.0 - ab.x - ab.y) * favg);
}

float ggx_d(float NH, float a)
{
  float a2 = a * a;
  float t = NH * NH * (a2 - 1.0) + 1.0;
  return a2 / (LIT_PI * t * t);
}

// Height-correlated Smith visibility G / (4 NL NV).
float smith_vis(float NL, float NV, float a)
{
  float a2 = a * a;
  float gv = NL * sqrt(NV * NV * (1.0 - a2) + a2);
  float gl = NV * sqrt(NL * NL * (1.0 - a2) + a2);
  return 0.5 / max(gv + gl, 1e-8);
}

// One light direction: E (irradiance at normal incidence), unit L, angular
// radius t. Adds E NL to diffuse and E NL D Vis to specular.
void add_light(vec3 E, vec3 L, float t, vec3 n, vec3 V, float NV, float a,
               inout vec3 diffuse, inout vec3 specular)
{
  float NL = dot(n, L);
  if (NL <= 0.0) {
    return;
  }
  vec3 H = normalize(L + V);
  float NH = max(dot(n, H), 0.0);
  float aw = min(a + 0.5 * t, 1.0);
  diffuse += E * NL;
  specular += E * (NL * ggx_d(NH, aw) * smith_vis(NL, NV, a));
}

vec3 shade_lit(vec3 base_color_linear, float roughness, float metallic, float specular_level,
               vec3 n, vec3 position, vec3 camera_position)
{
  vec3 V = normalize(camera_position - position);
  float NV = clamp(dot(n, V), 1e-4, 1.0);
  float r = clamp(roughness, 0.0, 1.0);
  float m = clamp(metallic, 0.0, 1.0);
  float a = max(r * r, 1e-4);
  vec2 ab = split_sum(r, NV);
  float f0 = min(0.08 * max(specular_level, 0.0), 1.0);
  vec3 r_dielectric = vec3(f0 * ab.x + min(f0 * (2.33 / 0.33), 1.0) * ab.y);
  vec3 r_metal = metal_reflectance(clamp(base_color_linear, 0.0, 1.0), ab);
  vec3 reflection = m * r_metal + (1.0 - m) * r_dielectric;
  float layer = max(1.0 - max(r_dielectric.x, max(r_dielectric.y, r_dielectric.z)), 0.0);
  vec3 diffuse_color = base_color_linear * ((1.0 - m) * layer);

  vec4 header = texelFetch(lights, ivec2(0, 0), 0);
  int count = int(header.w + 0.5);
  vec3 diffuse = vec3(0.0);
  vec3 specular = vec3(0.0);
  for (int i = 0; i < count; i++) {
    vec4 t0 = texelFetch(lights, ivec2(0, i + 1), 0);
    vec4 t1 = texelFetch(lights, ivec2(1, i + 1), 0);
    vec4 t2 = texelFetch(lights, ivec2(2, i + 1), 0);
    vec4 t3 = texelFetch(lights, ivec2(3, i + 1), 0);
    int kind = int(t0.w + 0.5);
    if (kind == LIGHT_SUN) {
      add_light(t0.rgb * LIGHT_VISIBILITY(t3), -t2.xyz, t1.w, n, V, NV, a, diffuse, specular);
    }
    else if (kind == LIGHT_POINT || kind == LIGHT_SPOT) {
      vec3 d = t1.xyz - position;
      float d2 = max(dot(d, d), 1e-8);
      float dist = sqrt(d2);
      vec3 L = d / dist;
      float mask = 1.0;
      if (kind == LIGHT_SPOT) {
        mask = smoothstep(0.0, 1.0, (dot(-L, t2.xyz) - t2.w) * t3.w);
      }
      if (mask > 0.0) {
        mask *= LIGHT_VISIBILITY(t3);
      }
      add_light(t0.rgb * (mask / d2), L, t1.w / dist, n, V, NV, a, diffuse, specular);
    }
    else if (kind == LIGHT_AREA) {
      vec3 ax = t3.xyz;
      vec3 ay = cross(ax, t2.xyz);  // lamp Y = Z x X with Z = -direction
      float cell = 1.0 / float(AREA_GRID);
      // Sub-rectangle area over the whole: emission P/pi per unit cos/d^2.
      vec3 e = t0.rgb * (cell * cell);
      float sub_radius = sqrt(4.0 * t2.w * t3.w * cell * cell / LIT_PI);
      for (int v = 0; v < AREA_GRID; v++) {
        for (int u = 0; u < AREA_GRID; u++) {
          vec2 c = (vec2(u, v) + 0.5) * cell * 2.0 - 1.0;
          vec3 q = t1.xyz + ax * (c.x * t2.w) + ay * (c.y * t3.w);
          vec3 d = q - position;
          float d2 = max(dot(d, d), 1e-8);
          float dist = sqrt(d2);
          vec3 L = d / dist;
          float emit_cos = max(dot(-L, t2.xyz), 0.0);
          add_light(e * (emit_cos / d2), L, sub_radius / dist, n, V, NV, a, diffuse, specular);
        }
      }
    }
  }
  vec3 ambient = header.rgb;
  return diffuse_color * (diffuse / LIT_PI + ambient)
         + reflection * (specular / max(ab.x + ab.y, 1e-4) + ambient);
}

// Blender's Normal Map node, tangent space: map_rgb in [0, 1] (Non-Color),
// B = sign cross(N, T) (MikkTSpace), then mix(N, mapped, strength) normalised.
// A zero tangent (no UV map) leaves n unchanged, as Blender does.
vec3 perturbed_normal(vec3 n, vec4 tangent_sign, vec3 map_rgb, float strength)
{
  if (dot(tangent_sign.xyz, tangent_sign.xyz) <= 0.0) {
    return n;
  }
  vec3 t = normalize(tangent_sign.xyz);
  vec3 b = tangent_sign.w * cross(n, t);
  vec3 m = 2.0 * map_rgb - 1.0;
  vec3 mapped = normalize(m.x * t + m.y * b + m.z * n);
  return normalize(mix(n, mapped, max(strength, 0.0)));
}

// A bilinear lookup at level 0 with texelFetch (the same on every backend,
// whatever its sampler state). A macro, not a function: samplers as
// arguments are not portable (Metal).
#define SAMPLE_BILINEAR_LIT(tex, st, result) \
  { \
    ivec2 size_ = textureSize(tex, 0); \
    ivec2 t0_, t1_; \
    vec2 f_; \
    bilinear_footprint(st, size_, t0_, t1_, f_); \
    result = mix(mix(texelFetch(tex, t0_, 0), texelFetch(tex, ivec2(t1_.x, t0_.y), 0), f_.x), \
                 mix(texelFetch(tex, ivec2(t0_.x, t1_.y), 0), texelFetch(tex, t1_, 0), f_.x), f_.y); \
  }
