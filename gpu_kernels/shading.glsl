// Shading, kept in one replaceable function. Today: unlit albedo, sampled
// bilinearly at level 0 (mipmaps would break the few-contributors bound).
// Output is scene-linear: an sRGB-encoded texture (texture_srgb != 0) is
// decoded per texel before the blend, as a GPU filters sRGB textures, so
// blends, jitter averages and the loss all live where Blender's engines
// filter (a text texture's dark strokes otherwise came out 4 dB off).
// G relies on texel channel c reaching only colour channel c: a shading
// model that mixes channels must make G charge texels the whole dL.

// A texel as R+ or R- sees it: theta + texture_eps * s, with texture_eps
// = +eps, -eps or 0 (a plain render). This is P for textures, done where
// the texel is read, so a step only ever touches texels that pixels read.
vec3 srgb_to_linear(vec3 c)
{
  return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(vec3(0.04045), c));
}

vec4 perturbed_albedo_texel(ivec2 t, int width, float eps)
{
  vec4 c = texelFetch(albedo, t, 0);
  if (eps != 0.0 && in_stratum(t, texture_stratum)) {
    c.rgb += eps * perturbation_signs(uint(texture_key), t.y * width + t.x);
  }
  if (texture_srgb != 0) {
    c.rgb = srgb_to_linear(max(c.rgb, vec3(0.0)));
  }
  return c;
}

vec4 albedo_texel(ivec2 t, int width)
{
  return perturbed_albedo_texel(t, width, texture_eps);
}

// The texel as the opposite render sees it (-texture_eps): R's pair variant
// shades R+ and R- in one draw.
vec4 albedo_texel_opposite(ivec2 t, int width)
{
  return perturbed_albedo_texel(t, width, -texture_eps);
}

vec4 sample_albedo(vec2 uv)
{
  vec4 c;
  SAMPLE_THROUGH(albedo, albedo_texel, uv, c);
  return c;
}

vec4 sample_albedo_opposite(vec2 uv)
{
  vec4 c;
  SAMPLE_THROUGH(albedo, albedo_texel_opposite, uv, c);
  return c;
}

// Premultiplied RGBA of a covered pixel.
vec4 shade(vec2 uv)
{
  return vec4(sample_albedo(uv).rgb, 1.0);
}

// ... and as the opposite render (-texture_eps) sees it.
vec4 shade_opposite(vec2 uv)
{
  return vec4(sample_albedo_opposite(uv).rgb, 1.0);
}
