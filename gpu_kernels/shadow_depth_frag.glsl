// Shadow maps (fragment): the light-space depth in world units (a sun's
// dot(p, direction), a spot's distance to the lamp) and coverage 1, inside
// the slot's tile only (a triangle past the light's frustum would spill into
// the next tile).
void main()
{
  int row = int(texelFetch(lights, ivec2(1, 0), 0).x + 0.5) + 2 * shadow_slot;
  vec4 rect = texelFetch(lights, ivec2(0, row + 1), 0);
  if (any(lessThan(gl_FragCoord.xy, rect.xy)) || any(greaterThanEqual(gl_FragCoord.xy, rect.xy + rect.zw))) {
    discard;
  }
  int light = int(texelFetch(lights, ivec2(1, row + 1), 0).x + 0.5);
  vec4 l1 = texelFetch(lights, ivec2(1, light + 1), 0);
  vec4 l2 = texelFetch(lights, ivec2(2, light + 1), 0);
  bool spot = texelFetch(lights, ivec2(2, row + 1), 0).w > 0.5;
  float depth = spot ? length(world_position - l1.xyz) : dot(world_position, l2.xyz);
  out_color = vec4(depth, 0.0, 0.0, 1.0);
  out_id = shadow_slot + 1;
  out_uv = vec4(uv, 0.0, 0.0);
}
