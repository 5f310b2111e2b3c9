// P: theta_plus = theta + eps * s, theta_minus = theta - eps * s (RGB channels).
void main()
{
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  ivec2 size = textureSize(theta, 0);
  if (p.x >= size.x || p.y >= size.y) {
    return;
  }
  int i = p.y * size.x + p.x;
  vec4 value = texelFetch(theta, p, 0);
  vec4 delta = vec4(0.0);
  if (i < count) {
    for (int c = 0; c < 3; c++) {
      delta[c] = eps * perturbation_sign(seed, substep, salt, 3 * i + c);
    }
  }
  imageStore(theta_plus, p, value + delta);
  imageStore(theta_minus, p, value - delta);
}
