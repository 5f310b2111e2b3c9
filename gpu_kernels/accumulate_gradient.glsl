// G: one invocation per pixel. Charge the pixel's loss difference
// dL = l(I+, T) - l(I-, T) to every parameter that touched the pixel in
// either render (de-duplicated), times that parameter's sign; a texel
// channel gets its own colour channel's share of dL. The 1/(2 eps)
// and any normalisation are applied once per parameter in adam_step.
// A texel's first touch since the last Adam step (its count goes 0 -> 1)
// appends it to the worklist, so Adam visits touched texels only.
// No local arrays: llvmpipe keeps them in memory at a cost per invocation,
// so candidates are recomputed from a few vectors instead.
// Variants (gpu_kernels.accumulate_gradient_kernel): G_POSITIONS, G_TEXELS,
// G_TEXEL_WEIGHTS and G_FULL_IMAGE (0 or 1) compile each charge in or out.
// llvmpipe runs a branch it does not take under an empty lane mask, so the
// charges a step does not make still cost it: with the texels compiled out,
// a vertex step's G took 24 -> 12 ms at 256 x 256.

// Squared error per channel; the pixel loss is their sum.
vec4 channel_loss(vec4 color, vec4 target_color)
{
  vec4 d = color - target_color;
  return d * d;
}

void charge_vertex(int v, float dl)
{
  ivec2 q = texel_of(v, pos_width);
  vec3 s = perturbation_signs(uint(key_pos), v);
  int rows = imageSize(count_pos).y;
  for (int c = 0; c < 3; c++) {
    ADD_FIXED(grad_pos, ivec2(3 * q.x + c, q.y), rows, dl * s[c]);
  }
  imageAtomicAdd(count_pos, q, 1);
}

bool in_triangle(int v, ivec3 t)
{
  return v == t.x || v == t.y || v == t.z;
}

int ring_vertex(int entry, int ring_width)
{
  return int(texelFetch(ring, texel_of(entry, ring_width), 0).x);
}

// FLAG_RING (a lit fit moving vertices): a triangle's shading also turns
// with the other vertices of its corners' normal fans (engine/frames.py
// influence_ring), so they are charged too: each vertex of the union of R+'s
// (a) and R-'s (b) rings that is not one of a's or b's own, once.
void charge_ring(int id_p, int id_m, ivec3 a, ivec3 b, float dl)
{
  int width = textureSize(ring_range, 0).x;
  int ring_width = textureSize(ring, 0).x;
  ivec2 ra = id_p > 0 ? ivec2(texelFetch(ring_range, texel_of(id_p - 1, width), 0).xy) : ivec2(0);
  ivec2 rb = (id_m > 0 && id_m != id_p) ? ivec2(texelFetch(ring_range, texel_of(id_m - 1, width), 0).xy)
                                         : ivec2(0);
  for (int i = 0; i < ra.y; i++) {
    int v = ring_vertex(ra.x + i, ring_width);
    if (!in_triangle(v, b)) {
      charge_vertex(v, dl);
    }
  }
  for (int i = 0; i < rb.y; i++) {
    int v = ring_vertex(rb.x + i, ring_width);
    bool seen = in_triangle(v, a);
    for (int j = 0; j < ra.y && !seen; j++) {
      seen = ring_vertex(ra.x + j, ring_width) == v;
    }
    if (!seen) {
      charge_vertex(v, dl);
    }
  }
}

// The vertices of the pixel's triangle in R+ (a) and in R- (b), each once;
// -1 marks no triangle.
void charge_vertices(int id_p, int id_m, float dl)
{
  int width = textureSize(triangles, 0).x;
  ivec3 a = id_p > 0 ? ivec3(texelFetch(triangles, texel_of(id_p - 1, width), 0).xyz) : ivec3(-1);
  ivec3 b = (id_m > 0 && id_m != id_p) ?
                ivec3(texelFetch(triangles, texel_of(id_m - 1, width), 0).xyz) : ivec3(-1);
  for (int k = 0; k < 6; k++) {
    int v = k < 3 ? a[k] : b[k - 3];
    bool seen = v < 0;
    for (int j = 0; j < k; j++) {
      seen = seen || (v == (j < 3 ? a[j] : b[j - 3]));
    }
    if (!seen) {
      charge_vertex(v, dl);
    }
  }
  if ((flags & FLAG_RING) != 0) {
    charge_ring(id_p, id_m, a, b, dl);
  }
}

// `sensitivity` (FLAG_SENSITIVITY): |c+ - c-| per channel, summed in the
// accumulator's second pair of row blocks; with one perturbed texel per
// footprint (texture strata) it is that texel's own finite difference.
// `signed_charge`: dl is a perturbed difference, so it is charged times the texel's
// sign; a bilinear weight's charge (FLAG_TEXEL_WEIGHTS) is not, and its
// sensitivity, the same in every channel, is summed in channel 0 alone
// (ADAM_SHARED_SENSITIVITY).
void charge_texel(ivec2 q, vec3 dl, vec3 sensitivity, bool signed_charge)
{
  int i = q.y * tex_size.x + q.x;
  vec3 s = signed_charge ? perturbation_signs(uint(key_tex), i) : vec3(1.0);
  for (int c = 0; c < 3; c++) {
    ADD_FIXED(grad_tex, ivec2(3 * q.x + c, q.y), tex_size.y, dl[c] * s[c]);
  }
  if ((flags & FLAG_SENSITIVITY) != 0) {
    // A weight's sensitivity is the same in the three channels (channel 0
    // serves all) unless a lit gain scales each (FLAG_TEXEL_GAIN).
    for (int c = 0; c < (signed_charge || (flags & FLAG_TEXEL_GAIN) != 0 ? 3 : 1); c++) {
      ADD_FIXED(grad_tex, ivec2(3 * q.x + c, q.y + 2 * tex_size.y), tex_size.y, sensitivity[c]);
    }
  }
  if (imageAtomicAdd(count_tex, q, 1) == 0) {
    int slot = imageAtomicAdd(worklist_length, ivec2(0), 1);
    ivec2 list_size = imageSize(worklist);
    if (slot < list_size.x * list_size.y) {
      imageStore(worklist, texel_of(slot, list_size.x), ivec4(i));
    }
  }
}

// Corner k (0..3) of a bilinear footprint.
ivec2 corner(ivec2 t0, ivec2 t1, int k)
{
  return ivec2((k & 1) != 0 ? t1.x : t0.x, (k & 2) != 0 ? t1.y : t0.y);
}

// The texels of the pixel's bilinear footprint in R+ (a) and in R- (b),
// each once (corners coincide on 1-texel-wide textures).
void charge_texels(int id_p, int id_m, ivec2 p, vec3 dl, vec3 sensitivity)
{
  ivec2 a0, a1, b0, b1;
  vec2 f;
  bilinear_footprint(texelFetch(uv_plus, p, 0).xy, tex_size, a0, a1, f);
  bilinear_footprint(texelFetch(uv_minus, p, 0).xy, tex_size, b0, b1, f);
  bool has_a = id_p != 0;
  bool has_b = id_m != 0 && !(has_a && all(equal(a0, b0)) && all(equal(a1, b1)));
  for (int k = 0; k < 8; k++) {
    if (!(k < 4 ? has_a : has_b)) {
      continue;
    }
    ivec2 q = k < 4 ? corner(a0, a1, k) : corner(b0, b1, k - 4);
    bool seen = false;
    for (int j = 0; j < k; j++) {
      bool valid = j < 4 ? has_a : has_b;
      seen = seen || (valid && all(equal(q, j < 4 ? corner(a0, a1, j) : corner(b0, b1, j - 4))));
    }
    if (!seen && in_stratum(q, tex_stratum)) {
      charge_texel(q, dl, sensitivity, true);
    }
  }
}

// FLAG_TEXEL_WEIGHTS (a SART visit's point, unlit): the render is linear in
// the texels, so the change a perturbation would measure is the bilinear
// weight itself. Every corner of the footprint is charged 2 w r and w, with
// r the residual (the effective target's offset from the one render), as
// G's (c+ - c-) r and |c+ - c-| would charge the perturbed one. A lit
// visit's (FLAG_TEXEL_GAIN) scales both by the pixel's gain D: SART's
// weights are w D, so a dark pixel's residual (asked of a / D) counts little.
void charge_texel_weights(ivec2 p, vec3 r, vec3 gain)
{
  ivec2 t0, t1;
  vec2 f;
  bilinear_footprint(texelFetch(uv_plus, p, 0).xy, tex_size, t0, t1, f);
  for (int k = 0; k < 4; k++) {
    float w = ((k & 1) != 0 ? f.x : 1.0 - f.x) * ((k & 2) != 0 ? f.y : 1.0 - f.y);
    if (w > 0.0) {
      charge_texel(corner(t0, t1, k), 2.0 * w * gain * r, w * gain, false);
    }
  }
}

void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  if (p.x >= image_size.x || p.y >= image_size.y) {
    return;
  }
  vec4 t = texelFetch(target, p, 0);
  vec4 c_plus = loss_space(texelFetch(color_plus, p, 0), flags);
  vec4 c_minus = loss_space(texelFetch(color_minus, p, 0), flags);
  vec4 loss_plus = channel_loss(c_plus, t);
  vec4 loss_minus = channel_loss(c_minus, t);
  vec4 dl_channel = loss_plus - loss_minus;
  float dl = dot(dl_channel, vec4(1.0));
  float mean_loss = 0.5 * dot(loss_plus + loss_minus, vec4(1.0));
  if ((flags & FLAG_EFFECTIVE_TARGET) == 0) {
    ADD_FIXED(loss_acc, ivec2(0, 0), 1, mean_loss);
  }

#if G_FULL_IMAGE
  if ((flags & FLAG_FULL_IMAGE) != 0) {
    ADD_FIXED(global_acc, ivec2(slot, 0), 1, dl);
    return;
  }
#endif
  int id_p = texelFetch(id_plus, p, 0).x;
  int id_m = texelFetch(id_minus, p, 0).x;
  if (id_p == 0 && id_m == 0) {
    return;
  }
#if G_POSITIONS
  if ((flags & FLAG_POSITIONS) != 0) {
    // FLAG_SILHOUETTE: while the texture is still wrong, vertices would
    // absorb its colour error; coverage alone cannot mislead them.
    charge_vertices(id_p, id_m, (flags & FLAG_SILHOUETTE) != 0 ? dl_channel.a : dl);
  }
#endif
#if G_TEXEL_WEIGHTS
  if ((flags & FLAG_TEXEL_WEIGHTS) != 0) {
    // One render: c+ = c-, or with a lit gain color_minus holds the gain (D, a.r).
    vec3 gain = (flags & FLAG_TEXEL_GAIN) != 0 ? texelFetch(color_minus, p, 0).rgb : vec3(1.0);
    charge_texel_weights(p, (c_plus - t).rgb, gain);
    return;
  }
#endif
#if G_TEXELS
  if ((flags & FLAG_TEXTURE) != 0) {
    // Texel channel c of a base colour changes only colour channel c
    // (shading.glsl), so its contributors are that channel's: charging it the
    // other channels' differences would add their perturbations as noise.
    // A roughness or metallic texel (FLAG_COUPLED) changes every channel.
    vec3 mask = vec3(ivec3(tex_channels) & ivec3(1, 2, 4)) / vec3(1.0, 2.0, 4.0);
    charge_texels(id_p, id_m, p, (flags & FLAG_COUPLED) != 0 ? dl * mask : dl_channel.rgb,
                  abs(c_plus.rgb - c_minus.rgb));
  }
#endif
}
