// Lit raster (fragment): maps sampled bilinearly at level 0 with texelFetch
// (the same on every backend, whatever its sampler state), then shade_lit.
// A macro, not a function: samplers as arguments are not portable (Metal).
#define SAMPLE_BILINEAR_LIT(tex, st, result) \
  { \
    ivec2 size_ = textureSize(tex, 0); \
    ivec2 t0_, t1_; \
    vec2 f_; \
    bilinear_footprint(st, size_, t0_, t1_, f_); \
    result = mix(mix(texelFetch(tex, t0_, 0), texelFetch(tex, ivec2(t1_.x, t0_.y), 0), f_.x), \
                 mix(texelFetch(tex, ivec2(t0_.x, t1_.y), 0), texelFetch(tex, t1_, 0), f_.x), f_.y); \
  }

void main()
{
  vec3 n = normalize(world_normal);
  vec4 map, base, mat;
  SAMPLE_BILINEAR_LIT(normal_map, uv, map);
  SAMPLE_BILINEAR_LIT(base_color, uv, base);  // linear
  SAMPLE_BILINEAR_LIT(material, uv, mat);  // roughness, metallic, specular level
  n = perturbed_normal(n, world_tangent, map.rgb, normal_strength);
  out_color = vec4(shade_lit(base.rgb, mat.r, mat.g, mat.b, n, world_position, camera_position),
                   1.0);
}
