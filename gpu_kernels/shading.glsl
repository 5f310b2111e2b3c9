// Shading, kept in one replaceable function. Today: unlit albedo, sampled
// bilinearly at level 0 (mipmaps would break the few-contributors bound).
vec4 sample_albedo(vec2 uv)
{
  ivec2 size = textureSize(albedo, 0);
  ivec2 t0, t1;
  vec2 f;
  bilinear_footprint(uv, size, t0, t1, f);
  vec4 c00 = texelFetch(albedo, t0, 0);
  vec4 c10 = texelFetch(albedo, ivec2(t1.x, t0.y), 0);
  vec4 c01 = texelFetch(albedo, ivec2(t0.x, t1.y), 0);
  vec4 c11 = texelFetch(albedo, t1, 0);
  return mix(mix(c00, c10, f.x), mix(c01, c11, f.x), f.y);
}

// Premultiplied RGBA of a covered pixel.
vec4 shade(vec2 uv)
{
  return vec4(sample_albedo(uv).rgb, 1.0);
}
