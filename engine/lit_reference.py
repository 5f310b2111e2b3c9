"""numpy mirror of gpu_kernels/lit_shading.glsl (the model is documented there).

`pack_lights` builds the light texture the GLSL reads; `shade_lit` and
`perturbed_normal` take (N, 3) arrays and return what the GLSL returns, so a
test can compare the two on random inputs.
"""
from __future__ import annotations

import math

import numpy as np

KIND_CODES = {"SUN": 0, "POINT": 1, "SPOT": 2, "AREA": 3}
AREA_GRID = 4  # as #defined in lit_shading.glsl


def unit_vector(v) -> np.ndarray:
    """`v` (3,) as a unit float64 vector (a zero vector stays zero)."""
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


def _perpendicular(d: np.ndarray) -> np.ndarray:
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    return unit_vector(np.cross(helper, d))


def pack_lights(lighting) -> np.ndarray:
    """(1 + lights, 4, 4) float32: the RGBA32F light texture, 4 texels wide
    (layout in lit_shading.glsl's header; engine/shadows.py adds the shadow
    rows and row 0's texels 1..3)."""
    lights = list(lighting.lights)
    out = np.zeros((1 + len(lights), 4, 4), np.float32)
    out[0, 0, :3] = lighting.ambient
    out[0, 0, 3] = len(lights)
    for i, light in enumerate(lights, start=1):
        kind = KIND_CODES[light.kind]
        color = np.asarray(light.color, np.float64)[:3]
        direction = unit_vector(light.direction)
        a = b = 0.0
        axis = np.zeros(3)
        radius = 0.0
        if light.kind == "SUN":
            emission = color * light.power
            radius = math.tan(min(light.radius, math.radians(179.9)) / 2.0)
        elif light.kind in ("POINT", "SPOT"):
            emission = color * light.power / (4.0 * math.pi)
            radius = max(light.radius, 0.0)
            if light.kind == "SPOT":
                a = math.cos(light.spot_size / 2.0)
                b = 1.0 / max(1e-8, (1.0 - a) * light.spot_blend)
        else:
            emission = color * light.power / math.pi
            a, b = light.area_size[0] / 2.0, light.area_size[1] / 2.0
            axis = unit_vector(light.axis_x) if len(light.axis_x) == 3 else _perpendicular(direction)
            axis = unit_vector(axis - direction * np.dot(axis, direction))
        out[i, 0] = (*emission, kind)
        out[i, 1] = (*light.position, radius)
        out[i, 2] = (*direction, a)
        out[i, 3] = (*axis, b)
    return out


_SPLIT_SUM_A = np.array([
    7.6158756e-01, 1.3370260e-01, 2.3823427e-01, -2.3229237e-01, -1.3852400e-01, 1.5104035e-01,
    3.5595628e-03, -9.9251422e-01, -3.7759839e-03, 1.1780532e+00, -1.5626974e-01, -4.0000505e-01,
    -9.4121493e-02, 4.3937201e-01, -1.5352083e+00, -4.8983677e-02, 1.5212261e+00, -7.2239722e-01,
    -1.9284564e-01, 5.7289812e-01, 1.6463490e+00, -2.5254335e+00, -1.2515806e+00, 1.7448502e+00,
    5.4173827e-03, -4.0616369e-01, 1.0971647e+00, 2.1958792e-01, -1.3188142e+00, 5.8832972e-01,
    1.0442076e-01, -1.4521460e-01, -1.3474947e+00, 1.4968521e+00, 1.2951332e+00, -1.3758552e+00]).reshape(6, 6)
_SPLIT_SUM_B = np.array([
    8.3211197e-02, -1.5998389e-01, -1.8405804e-02, 1.1737176e-01, 6.3659900e-02, -8.6276136e-02,
    -1.8974871e-01, 4.0204464e-01, 1.8297730e-01, -5.3428899e-01, -2.9409286e-01, 4.3825185e-01,
    1.4544352e-01, -6.8074167e-01, 6.1070739e-01, 6.0310665e-01, -9.2212652e-01, 2.3837570e-01,
    6.6071866e-02, 3.8834668e-01, -1.4935326e+00, 3.6760682e-01, 2.1350242e+00, -1.4715013e+00,
    -1.1263269e-01, 4.5729273e-01, -2.2080135e-01, -6.9176057e-01, 6.3801429e-01, -6.4249759e-02,
    1.6469072e-02, -4.3989188e-01, 9.9711135e-01, 1.2059961e-01, -1.6837189e+00, 9.9251335e-01]).reshape(6, 6)


def split_sum(roughness, NV):
    """(N, 2) split-sum (A, B): lit_shading.glsl's polynomial fit."""
    r = 2.0 * np.clip(roughness, 0.02, 1.0) - 1.0
    x = 2.0 * np.sqrt(np.clip(NV, 0.02, 1.0)) - 1.0
    powers_r = r[:, None] ** np.arange(6)
    powers_x = x[:, None] ** np.arange(6)
    a = np.einsum("ni,ij,nj->n", powers_r, _SPLIT_SUM_A, powers_x)
    b = np.einsum("ni,ij,nj->n", powers_r, _SPLIT_SUM_B, powers_x)
    return np.clip(np.stack([a, b], -1), 0.0, 1.0)


def metal_reflectance(f0, ab):
    favg = f0 + (1.0 - f0) / 21.0
    return (ab[:, :1] * f0 + ab[:, 1:]) / (1.0 - (1.0 - ab[:, :1] - ab[:, 1:]) * favg)


def ggx_d(NH, a):
    a2 = a * a
    t = NH * NH * (a2 - 1.0) + 1.0
    return a2 / (math.pi * t * t)


def smith_vis(NL, NV, a):
    a2 = a * a
    gv = NL * np.sqrt(NV * NV * (1.0 - a2) + a2)
    gl = NV * np.sqrt(NL * NL * (1.0 - a2) + a2)
    return 0.5 / np.maximum(gv + gl, 1e-8)


def _dot(a, b):
    return np.sum(a * b, -1)


def _normalize(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _add_light(E, L, t, n, V, NV, a, diffuse, specular):
    NL = _dot(n, L)
    lit = NL > 0.0
    H = _normalize(L + V)
    NH = np.maximum(_dot(n, H), 0.0)
    aw = np.minimum(a + 0.5 * t, 1.0)
    NLc = np.where(lit, NL, 0.0)
    diffuse += E * NLc[:, None]
    spec = NLc * ggx_d(NH, aw) * smith_vis(np.maximum(NL, 1e-8), NV, a)
    specular += E * np.where(lit, spec, 0.0)[:, None]


def shade_lit(base, roughness, metallic, specular_level, n, position, camera_position, packed):
    """(N, 3) linear radiance; per-point arrays, `packed` from pack_lights."""
    base = np.asarray(base, np.float64)
    n = np.asarray(n, np.float64)
    position = np.asarray(position, np.float64)
    V = _normalize(np.asarray(camera_position, np.float64) - position)
    NV = np.clip(_dot(n, V), 1e-4, 1.0)
    r = np.clip(np.asarray(roughness, np.float64), 0.0, 1.0)
    m = np.clip(np.asarray(metallic, np.float64), 0.0, 1.0)[:, None]
    a = np.maximum(r * r, 1e-4)
    ab = split_sum(r, NV)
    f0 = np.minimum(0.08 * np.maximum(np.asarray(specular_level, np.float64), 0.0), 1.0)
    r_dielectric = (f0 * ab[:, 0] + np.minimum(f0 * (2.33 / 0.33), 1.0) * ab[:, 1])[:, None] * np.ones(3)
    r_metal = metal_reflectance(np.clip(base, 0.0, 1.0), ab)
    reflection = m * r_metal + (1.0 - m) * r_dielectric
    layer = np.maximum(1.0 - r_dielectric.max(-1), 0.0)[:, None]
    diffuse_color = base * (1.0 - m) * layer

    packed = np.asarray(packed, np.float64)
    diffuse = np.zeros_like(base)
    specular = np.zeros_like(base)
    for t0, t1, t2, t3 in packed[1:int(packed[0, 0, 3] + 0.5) + 1]:
        kind = int(t0[3] + 0.5)
        if kind == 0:
            L = np.broadcast_to(-t2[:3], position.shape)
            _add_light(t0[:3], L, t1[3], n, V, NV, a, diffuse, specular)
        elif kind in (1, 2):
            d = t1[:3] - position
            d2 = np.maximum(_dot(d, d), 1e-8)
            dist = np.sqrt(d2)
            L = d / dist[:, None]
            mask = np.ones_like(d2)
            if kind == 2:
                x = np.clip((_dot(-L, t2[:3]) - t2[3]) * t3[3], 0.0, 1.0)
                mask = x * x * (3.0 - 2.0 * x)
            _add_light(t0[:3] * (mask / d2)[:, None], L, t1[3] / dist, n, V, NV, a, diffuse, specular)
        elif kind == 3:
            ax = t3[:3]
            ay = np.cross(ax, t2[:3])
            cell = 1.0 / AREA_GRID
            e = t0[:3] * cell * cell
            sub_radius = math.sqrt(4.0 * t2[3] * t3[3] * cell * cell / math.pi)
            for v in range(AREA_GRID):
                for u in range(AREA_GRID):
                    cx = (u + 0.5) * cell * 2.0 - 1.0
                    cy = (v + 0.5) * cell * 2.0 - 1.0
                    q = t1[:3] + ax * (cx * t2[3]) + ay * (cy * t3[3])
                    d = q - position
                    d2 = np.maximum(_dot(d, d), 1e-8)
                    dist = np.sqrt(d2)
                    L = d / dist[:, None]
                    emit_cos = np.maximum(_dot(-L, t2[:3]), 0.0)
                    _add_light(e * (emit_cos / d2)[:, None], L, sub_radius / dist, n, V, NV, a,
                               diffuse, specular)
    ambient = packed[0, 0, :3]
    return (diffuse_color * (diffuse / math.pi + ambient)
            + reflection * (specular / np.maximum(ab[:, :1] + ab[:, 1:], 1e-4) + ambient))


def perturbed_normal(n, tangent_sign, map_rgb, strength):
    """Blender's Normal Map node in tangent space; (N, 3) unit normals."""
    n = np.asarray(n, np.float64)
    ts = np.asarray(tangent_sign, np.float64)
    strength = np.broadcast_to(np.asarray(strength, np.float64), n.shape[:1])
    has = _dot(ts[:, :3], ts[:, :3]) > 0.0
    t = ts[:, :3] / np.where(has, np.linalg.norm(ts[:, :3], axis=-1), 1.0)[:, None]
    b = ts[:, 3:4] * np.cross(n, t)
    m = 2.0 * np.asarray(map_rgb, np.float64) - 1.0
    mapped = _normalize(m[:, :1] * t + m[:, 1:2] * b + m[:, 2:3] * n)
    s = np.maximum(strength, 0.0)[:, None]
    out = _normalize(n + (mapped - n) * s)
    return np.where(has[:, None], out, n)
