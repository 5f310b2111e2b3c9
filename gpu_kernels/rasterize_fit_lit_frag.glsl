// R, lit (fragment): the base colour as R+ and R- perturb it (shading.glsl's
// sample_albedo, linear), the material and normal maps likewise, then
// shade_lit. A base-colour texel channel still reaches only its own colour
// channel (diffuse and metal F0 are per channel), so G's per-channel charge
// stays right; material and normal texels reach every channel (FLAG_COUPLED).
// A material texel (roughness, metallic, specular level) as R+ or R- sees
// it: the channels in `material_channels` perturbed by material_eps, as
// albedo_texel does for the base colour.
vec4 material_texel(ivec2 t, int width)
{
  vec4 c = texelFetch(material, t, 0);
  if (material_eps != 0.0 && in_stratum(t, material_stratum)) {
    vec3 mask = vec3(ivec3(material_channels) & ivec3(1, 2, 4)) / vec3(1.0, 2.0, 4.0);
    c.rgb += material_eps * mask * perturbation_signs(uint(material_key), t.y * width + t.x);
  }
  return c;
}

vec4 sample_material(vec2 st)
{
  vec4 c;
  SAMPLE_THROUGH(material, material_texel, st, c);
  return c;
}

// A normal-map texel as R+ or R- sees it: its stored x, y perturbed by
// normal_eps (z untouched: it follows x and y), then rebuilt as a unit
// normal with z > 0. Unperturbed texels are read as stored: a fitted map
// keeps them unit (Engine normalises it, adam_step rebuilds z).
vec4 normal_texel(ivec2 t, int width)
{
  vec4 c = texelFetch(normal_map, t, 0);
  if (normal_eps != 0.0 && in_stratum(t, normal_stratum)) {
    c.rgb = unit_normal_from_xy(c.rg + normal_eps * perturbation_signs(uint(normal_key), t.y * width + t.x).xy);
  }
  return c;
}

void main()
{
  vec3 n = normalize(world_normal);
  vec4 map;
  SAMPLE_THROUGH(normal_map, normal_texel, uv, map);
  vec4 mat = sample_material(uv);
  n = perturbed_normal(n, world_tangent, map.rgb, normal_strength);
  out_color = vec4(shade_lit(sample_albedo(uv).rgb, clamp(mat.r, 0.0, 1.0), clamp(mat.g, 0.0, 1.0),
                             max(mat.b, 0.0), n, world_position, camera_position), 1.0);
  out_id = triangle_id + 1;
  out_uv = vec4(uv, 0.0, 1.0);
}
