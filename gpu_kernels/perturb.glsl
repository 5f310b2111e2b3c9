// P: theta_plus = theta + eps * s, theta_minus = theta - eps * s (xyz channels).
// Used for vertex positions; textures are perturbed where R fetches them
// (shading.glsl), so P's cost never grows with the texture size.
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
    delta.xyz = eps * perturbation_signs(uint(key), i);
  }
  imageStore(theta_plus, p, value + delta);
  imageStore(theta_minus, p, value - delta);
}
