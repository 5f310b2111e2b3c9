// The residual from independent samples (Settings.running_residual): with
// the same sub-pixel jitter in R+ and R-, G's (c+ - t)^2 - (c- - t)^2 =
// (c+ - c-) * 2 (s - t), s = (c+ + c-) / 2, charges the residual of this one
// jitter sample, so a fit also shrinks each pixel's variance over the jitter
// (it blurs) instead of matching the filtered mean the target holds. Here
// the residual comes from a running mean m of s over the view's visits (in
// the loss's space, where the targets' engine averages): G gets the target
// t' = s - (m - t) and charges (c+ - c-) * 2 (m - t). The true loss is
// accumulated here; G skips it (FLAG_EFFECTIVE_TARGET).
//
// FLAG_TEXEL_RESIDUAL (a SART view visit, Engine.step): m is the view's
// filtered render, exact (rate w_k / W_k over the filter's points, then 0),
// and the residual is taken in the texels' own encoding, E(m) - E(t), so
// SART's weighted mean of it is a step in texel units. A pixel whose
// coverage differs from the target's by more than COVERAGE_TOLERANCE asks
// nothing of the texels: its residual is the silhouette's (a joint fit's
// inexact shape), which no texel can fix.

// A loss-space colour in the texels' encoding: linear, or sRGB-encoded with
// FLAG_TEXEL_SRGB (premultiplied either way).
vec4 texel_space(vec4 x)
{
  if ((flags & FLAG_LOG_LOSS) != 0) {
    x = exp2(x) - 1.0;
    if ((flags & FLAG_TEXEL_SRGB) != 0) {
      x = encode_srgb(x);
    }
  }
  return x;
}

// A loss-space colour in linear light (premultiplied).
vec4 linear_space(vec4 x)
{
  if ((flags & FLAG_LOG_LOSS) != 0) {
    return exp2(x) - 1.0;
  }
  if ((flags & FLAG_SRGB_LOSS) != 0 && x.a > 0.0) {
    vec3 s = x.rgb / x.a;
    return vec4(mix(s / 12.92, pow((s + 0.055) / 1.055, vec3(2.4)), step(vec3(0.04045), s)) * x.a, x.a);
  }
  return x;
}

// FLAG_TEXEL_GAIN (a lit visit's charge): the pixel is D a + S in the linear
// base colour a, so the residual asks a - (m - t) / D of it; the step to
// that, in the texels' encoding, is the residual SART averages. Only pixels
// fully covered in the mean and the target, and lit enough to see a (D >
// GAIN_MIN), ask anything.
#define GAIN_MIN 1e-3
vec4 base_colour_residual(ivec2 p, vec4 m, vec4 t)
{
  vec4 gain = texelFetch(color_minus, p, 0);  // (D, a.r)
  vec3 a = vec3(gain.a, texelFetch(uv, p, 0).zw);
  vec4 ml = linear_space(m), tl = linear_space(t);
  if (ml.a < 0.999 || tl.a < 0.999 || any(lessThan(gain.rgb, vec3(GAIN_MIN)))) {
    return vec4(0.0);
  }
  vec3 want = clamp(a - (ml.rgb - tl.rgb) / gain.rgb, 0.0, 1.0);
  if ((flags & FLAG_TEXEL_SRGB) != 0) {
    return vec4(encode_srgb(vec4(a, 1.0)).rgb - encode_srgb(vec4(want, 1.0)).rgb, 0.0);
  }
  return vec4(a - want, 0.0);
}

void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  if (p.x >= image_size.x || p.y >= image_size.y) {
    return;
  }
  vec4 c_plus = loss_space(texelFetch(color_plus, p, 0), flags);
  bool gain = (flags & FLAG_TEXEL_GAIN) != 0;  // color_minus holds the gain: s is c_plus alone
  vec4 c_minus = gain ? c_plus : loss_space(texelFetch(color_minus, p, 0), flags);
  // `share` 0.5: the pair's mean; a visit's mean step weighs its two filter points.
  vec4 s = mix(c_plus, c_minus, share);
  vec4 m = mix(imageLoad(running_mean, p), s, rate);
  imageStore(running_mean, p, m);
  if ((flags & FLAG_MEAN_ONLY) != 0) {
    return;  // a SART visit's filtered render, built a point at a time
  }
  vec4 t = texelFetch(target, p, 0);
  vec4 r = m - t;
  if (gain) {
    r = base_colour_residual(p, m, t);
  }
  else if ((flags & FLAG_TEXEL_RESIDUAL) != 0) {
    r = texel_space(m) - texel_space(t);
    if (abs(r.a) > COVERAGE_TOLERANCE) {
      r = vec4(0.0);
    }
  }
  imageStore(effective_target, p, s - r);
  vec4 dp = c_plus - t, dm = c_minus - t;
  ADD_FIXED(loss_acc, ivec2(0, 0), 1, 0.5 * dot(dp * dp + dm * dm, vec4(1.0)));
}
