// Shared by every kernel: texel addressing, the perturbation hash,
// fixed-point atomics and the bilinear footprint. engine/reference.py mirrors
// each function in numpy.

// FLAG_* and ADAM_* bit flags are #defined from gpu_kernels/__init__.py.

// The texel holding element `index` of a row-major array `width` wide.
ivec2 texel_of(int index, int width)
{
  return ivec2(index % width, index / width);
}

uint pcg_hash(uint v)
{
  uint state = v * 747796405u + 2891336453u;
  uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// One perturbation (seed, sub-step, parameter group) has one key; the
// signs of parameter texel `index` are then a single hash of (index ^ key).
uint perturbation_key(int seed, int substep, int salt)
{
  uint h = pcg_hash(uint(salt));
  h = pcg_hash(uint(seed) ^ h);
  return pcg_hash(uint(substep) ^ h);
}

// Rademacher signs s of the 3 channels (xyz or rgb) of parameter texel
// `index`: bits 16, 17 and 18 of one hash.
vec3 perturbation_signs(uint key, int index)
{
  uint h = pcg_hash(uint(index) ^ key);
  uvec3 bits = (uvec3(h) >> uvec3(16u, 17u, 18u)) & 1u;
  return vec3(bits) * 2.0 - 1.0;
}

// Premultiplied linear RGBA -> premultiplied sRGB-encoded RGBA (the loss of
// an sRGB texture's fit is taken there, as its PSNR is judged).
vec4 encode_srgb(vec4 c)
{
  if (c.a <= 0.0) {
    return vec4(0.0);
  }
  vec3 s = clamp(c.rgb / c.a, 0.0, 1.0);
  s = mix(s * 12.92, 1.055 * pow(s, vec3(1.0 / 2.4)) - 0.055, step(vec3(0.0031308), s));
  return vec4(s * c.a, c.a);
}

// A render's colour as the loss compares it (Engine.loss_encoded): clamped as
// the targets are (a lit highlight can pass 1; an 8-bit target cannot: the
// unclamped excess would pull highlights down), then sRGB-encoded
// (FLAG_SRGB_LOSS) or as log2(c + 1) (FLAG_LOG_LOSS); the targets are
// uploaded in that space already.
vec4 loss_space(vec4 c, int loss_flags)
{
  c = clamp(c, 0.0, 1.0);
  if ((loss_flags & FLAG_SRGB_LOSS) != 0) {
    return encode_srgb(c);
  }
  if ((loss_flags & FLAG_LOG_LOSS) != 0) {
    return log2(c + 1.0);
  }
  return c;
}

// Texel strata: a step perturbs and charges one of the four (x, y) parity
// classes of a texture, so each bilinear footprint (2 x 2 texels) holds one
// perturbed texel and a pixel's loss difference is that texel's alone.
// stratum < 0: every texel.
bool in_stratum(ivec2 t, int stratum)
{
  return stratum < 0 || ((t.x & 1) + 2 * (t.y & 1)) == stratum;
}

int to_fixed(float value)
{
  return int(floor(clamp(value, -64.0, 64.0) * FIXED_SCALE + 0.5));
}

// A 64-bit fixed-point sum kept as (lo at p, hi at p + (0, hi_offset)) in an
// R32I image: add to lo atomically, carry into hi. Atomic adds commute, so the
// pair is exact however the adds interleave.
#define ADD_FIXED(img, p, hi_offset, value) \
  { \
    int d_ = to_fixed(value); \
    if (d_ != 0) { \
      int old_ = imageAtomicAdd(img, p, d_); \
      uint sum_ = uint(old_) + uint(d_); \
      int hi_ = (d_ < 0 ? -1 : 0) + (sum_ < uint(old_) ? 1 : 0); \
      if (hi_ != 0) { \
        imageAtomicAdd(img, (p) + ivec2(0, hi_offset), hi_); \
      } \
    } \
  }

float fixed_value(int lo, int hi)
{
  if (hi == (lo >> 31)) {
    return float(lo) / FIXED_SCALE;
  }
  return (float(hi) * 4294967296.0 + float(uint(lo))) / FIXED_SCALE;
}

// ADD_FIXED's sum at p as a float, cleared for the next step (a texel left
// at zero is not written).
#define TAKE_FIXED(img, p, hi_offset, result) \
  { \
    ivec2 hi_p_ = (p) + ivec2(0, hi_offset); \
    int lo_ = imageLoad(img, p).x; \
    int hi_ = imageLoad(img, hi_p_).x; \
    result = fixed_value(lo_, hi_); \
    if (lo_ != 0) { \
      imageStore(img, p, ivec4(0)); \
    } \
    if (hi_ != 0) { \
      imageStore(img, hi_p_, ivec4(0)); \
    } \
  }

// Texels of a bilinear lookup at level 0 with repeat wrapping: corners t0 and
// t1 and the weights f. Shading and G share it, so G charges exactly the
// texels the shader read.
void bilinear_footprint(vec2 uv, ivec2 size, out ivec2 t0, out ivec2 t1, out vec2 f)
{
  vec2 x = uv * vec2(size) - 0.5;
  vec2 x0 = floor(x);
  f = x - x0;
  vec2 s = vec2(size);
  t0 = ivec2(x0 - s * floor(x0 / s));
  vec2 x1 = x0 + 1.0;
  t1 = ivec2(x1 - s * floor(x1 / s));
}

// A bilinear lookup of `tex` at `st` through TEXEL(texel, width), a texel as
// R+ or R- sees it (perturbed where it is read). A macro: GLSL passes neither
// functions nor (portably, on Metal) samplers.
#define SAMPLE_THROUGH(tex, TEXEL, st, result) \
  { \
    ivec2 size_ = textureSize(tex, 0); \
    ivec2 t0_, t1_; \
    vec2 f_; \
    bilinear_footprint(st, size_, t0_, t1_, f_); \
    result = mix(mix(TEXEL(t0_, size_.x), TEXEL(ivec2(t1_.x, t0_.y), size_.x), f_.x), \
                 mix(TEXEL(ivec2(t0_.x, t1_.y), size_.x), TEXEL(t1_, size_.x), f_.x), f_.y); \
  }

// A tangent-space normal-map texel as stored (Non-Color, (x, y, z) / 2 + 1/2),
// rebuilt from its x and y: x^2 + y^2 clamped to NORMAL_XY_MAX^2, then
// z = sqrt(1 - x^2 - y^2). So a fitted texel is a unit normal with z > 0
// whatever R's perturbation or Adam's step did to x and y.
vec3 unit_normal_from_xy(vec2 stored_xy)
{
  vec2 xy = 2.0 * stored_xy - 1.0;
  float r2 = dot(xy, xy);
  if (r2 > NORMAL_XY_MAX * NORMAL_XY_MAX) {
    xy *= NORMAL_XY_MAX / sqrt(r2);
  }
  return 0.5 * vec3(xy, sqrt(max(1.0 - dot(xy, xy), 0.0))) + 0.5;
}
