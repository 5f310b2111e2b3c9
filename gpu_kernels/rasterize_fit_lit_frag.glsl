// R, lit (fragment): the base colour as R+ and R- perturb it (shading.glsl's
// sample_albedo, linear), the material and normal maps likewise, then
// shade_lit. A base-colour texel channel still reaches only its own colour
// channel (diffuse and metal F0 are per channel), so G's per-channel charge
// stays right; material and normal texels reach every channel (FLAG_COUPLED).
// A material texel (roughness, metallic, specular level) as R+ or R- sees
// it: the channels in lit_draw.material_step.z perturbed by lit_draw.eps.x,
// as albedo_texel does for the base colour (LIT_DRAW in gpu_kernels: the
// per-draw constants, in a uniform buffer).
vec4 perturbed_material_texel(ivec2 t, int width, float eps)
{
  vec4 c = texelFetch(material, t, 0);
  if (eps != 0.0 && in_stratum(t, lit_draw.material_step.y)) {
    vec3 mask = vec3(ivec3(lit_draw.material_step.z) & ivec3(1, 2, 4)) / vec3(1.0, 2.0, 4.0);
    c.rgb += eps * mask * perturbation_signs(uint(lit_draw.material_step.x), t.y * width + t.x);
  }
  return c;
}

vec4 material_texel(ivec2 t, int width)
{
  return perturbed_material_texel(t, width, lit_draw.eps.x);
}

vec4 material_texel_opposite(ivec2 t, int width)
{
  return perturbed_material_texel(t, width, -lit_draw.eps.x);
}

// A normal-map texel as R+ or R- sees it: its stored x, y perturbed by
// lit_draw.eps.y (z untouched: it follows x and y), then rebuilt as a unit
// normal with z > 0. Unperturbed texels are read as stored: a fitted map
// keeps them unit (Engine normalises it, adam_step rebuilds z).
vec4 perturbed_normal_texel(ivec2 t, int width, float eps)
{
  vec4 c = texelFetch(normal_map, t, 0);
  if (eps != 0.0 && in_stratum(t, lit_draw.normal_step.y)) {
    c.rgb = unit_normal_from_xy(c.rg + eps * perturbation_signs(uint(lit_draw.normal_step.x), t.y * width + t.x).xy);
  }
  return c;
}

vec4 normal_texel(ivec2 t, int width)
{
  return perturbed_normal_texel(t, width, lit_draw.eps.y);
}

vec4 normal_texel_opposite(ivec2 t, int width)
{
  return perturbed_normal_texel(t, width, -lit_draw.eps.y);
}

// The lit colour of this fragment as R+ (opposite false) or R- (true) sees
// its maps: every map's perturbation flips for R- (the pair variant,
// rasterize_fit_lit_pair_frag.glsl, draws both).
vec4 lit_color(bool opposite)
{
  vec4 map, mat, base;
  if (opposite) {
    SAMPLE_THROUGH(normal_map, normal_texel_opposite, uv, map);
    SAMPLE_THROUGH(material, material_texel_opposite, uv, mat);
    base = sample_albedo_opposite(uv);
  }
  else {
    SAMPLE_THROUGH(normal_map, normal_texel, uv, map);
    SAMPLE_THROUGH(material, material_texel, uv, mat);
    base = sample_albedo(uv);
  }
  vec3 n = perturbed_normal(normalize(world_normal), world_tangent, map.rgb, lit_draw.camera.w);
  return vec4(shade_lit(base.rgb, clamp(mat.r, 0.0, 1.0), clamp(mat.g, 0.0, 1.0), max(mat.b, 0.0), n,
                        world_position, lit_draw.camera.xyz), 1.0);
}
