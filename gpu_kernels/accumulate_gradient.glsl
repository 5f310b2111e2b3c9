// G: one invocation per pixel. Charge the pixel's loss difference
// dL = l(I+, T) - l(I-, T) to every parameter that touched the pixel in
// either render (de-duplicated), times that parameter's sign. The 1/(2 eps)
// and any normalisation are applied once per parameter in adam_step.
// A texel's first touch since the last Adam step (its count goes 0 -> 1)
// appends it to the worklist, so Adam visits touched texels only.

float pixel_loss(vec4 color, vec4 target_color)
{
  vec4 d = color - target_color;
  return dot(d, d);
}

ivec2 texel_of(int index, int width)
{
  return ivec2(index % width, index / width);
}

void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  if (p.x >= image_size.x || p.y >= image_size.y) {
    return;
  }
  vec4 t = texelFetch(target, p, 0);
  float loss_plus = pixel_loss(texelFetch(color_plus, p, 0), t);
  float loss_minus = pixel_loss(texelFetch(color_minus, p, 0), t);
  float dl = loss_plus - loss_minus;
  float mean_loss = 0.5 * (loss_plus + loss_minus);
  ADD_FIXED(loss_acc, ivec2(0, 0), 1, mean_loss);

  if ((flags & FLAG_FULL_IMAGE) != 0) {
    ADD_FIXED(global_acc, ivec2(slot, 0), 1, dl);
    return;
  }
  int id_p = texelFetch(id_plus, p, 0).x;
  int id_m = texelFetch(id_minus, p, 0).x;
  if (id_p == 0 && id_m == 0) {
    return;
  }

  if ((flags & FLAG_POSITIONS) != 0) {
    int verts[6];
    int n = 0;
    int tri_width = textureSize(triangles, 0).x;
    for (int r = 0; r < 2; r++) {
      int id = (r == 0) ? id_p : id_m;
      if (id == 0) {
        continue;
      }
      ivec3 tri = ivec3(texelFetch(triangles, texel_of(id - 1, tri_width), 0).xyz);
      for (int k = 0; k < 3; k++) {
        bool seen = false;
        for (int j = 0; j < n; j++) {
          seen = seen || (verts[j] == tri[k]);
        }
        if (!seen) {
          verts[n++] = tri[k];
        }
      }
    }
    int rows = imageSize(count_pos).y;
    for (int j = 0; j < n; j++) {
      int v = verts[j];
      ivec2 q = texel_of(v, pos_width);
      vec3 s = perturbation_signs(uint(key_pos), v);
      for (int c = 0; c < 3; c++) {
        ADD_FIXED(grad_pos, ivec2(3 * q.x + c, q.y), rows, dl * s[c]);
      }
      imageAtomicAdd(count_pos, q, 1);
    }
  }

  if ((flags & FLAG_TEXTURE) != 0) {
    ivec2 texels[8];
    int n = 0;
    for (int r = 0; r < 2; r++) {
      int id = (r == 0) ? id_p : id_m;
      if (id == 0) {
        continue;
      }
      vec2 uv = (r == 0) ? texelFetch(uv_plus, p, 0).xy : texelFetch(uv_minus, p, 0).xy;
      ivec2 t0, t1;
      vec2 f;
      bilinear_footprint(uv, tex_size, t0, t1, f);
      ivec2 corners[4] = ivec2[4](t0, ivec2(t1.x, t0.y), ivec2(t0.x, t1.y), t1);
      for (int k = 0; k < 4; k++) {
        bool seen = false;
        for (int j = 0; j < n; j++) {
          seen = seen || all(equal(texels[j], corners[k]));
        }
        if (!seen) {
          texels[n++] = corners[k];
        }
      }
    }
    for (int j = 0; j < n; j++) {
      ivec2 q = texels[j];
      int i = q.y * tex_size.x + q.x;
      vec3 s = perturbation_signs(uint(key_tex), i);
      for (int c = 0; c < 3; c++) {
        ADD_FIXED(grad_tex, ivec2(3 * q.x + c, q.y), tex_size.y, dl * s[c]);
      }
      if (imageAtomicAdd(count_tex, q, 1) == 0) {
        int slot = imageAtomicAdd(worklist_length, ivec2(0), 1);
        ivec2 list_size = imageSize(worklist);
        if (slot < list_size.x * list_size.y) {
          imageStore(worklist, texel_of(slot, list_size.x), ivec4(i));
        }
      }
    }
  }
}
