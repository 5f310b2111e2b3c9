"""numpy mirror of gpu_kernels/lit_shadows.glsl (the lookup) and a ray-cast
reference of the shadow-map pass (shadow_depth_*.glsl), for the tests.

`atlas`: the (H, W, 4) array the pass draws (depth in r, coverage in a, rows
bottom-up); `packed`: shadows.pack_lights_with_shadows."""
from __future__ import annotations

import numpy as np

SHADOW_SEARCH = 3  # as #defined in lit_shadows.glsl
SHADOW_PCF = 2
SHADOW_MIN_RADIUS = 1.0
SHADOW_MAX_SLOPE = 4.0


def _slot_rows(packed, slot):
    packed = np.asarray(packed, np.float64)
    row = int(packed[0, 1, 0] + 0.5) + 2 * slot
    m = packed[row].T  # texel j is column j
    rect, s1, s2 = packed[row + 1, 0], packed[row + 1, 1], packed[row + 1, 2]
    light = int(s1[0] + 0.5)
    return m, rect, s1, s2, packed[light + 1, 1], packed[light + 1, 2]


def shadow_lookup(atlas, packed, slot: int, p, n) -> np.ndarray:
    """(N,) fraction of slot `slot`'s light reaching points p (N, 3) with unit normals n."""
    atlas = np.asarray(atlas, np.float64)
    p, n = np.asarray(p, np.float64), np.asarray(n, np.float64)
    m, rect, s1, s2, l1, l2 = _slot_rows(packed, slot)
    spot = s2[3] > 0.5
    to_light = l1[:3] - p
    if spot:
        dist = np.linalg.norm(to_light, axis=1)
        L = to_light / np.maximum(dist, 1e-6)[:, None]
    else:
        dist = np.ones(len(p))
        L = np.broadcast_to(-l2[:3], p.shape)
    texel = s2[0] * dist
    facing = np.sum(n * L, 1) > 0.0
    NL = np.clip(np.sum(n * L, 1), 0.0, 1.0)
    sine = np.sqrt(1.0 - NL * NL)
    slope = np.minimum(sine / np.maximum(NL, 1e-3), SHADOW_MAX_SLOPE)
    q = p + n * (s1[2] * texel * sine)[:, None]
    c = np.concatenate([q, np.ones((len(q), 1))], 1) @ m.T
    w = np.where(c[:, 3] > 0, c[:, 3], 1.0)
    st = c[:, :2] / w[:, None] * 0.5 + 0.5
    inside = (c[:, 3] > 0) & np.all((st >= 0) & (st <= 1), 1)
    xy = rect[:2] + st * rect[2:]
    lo = rect[:2].astype(np.int64)
    hi = lo + rect[2:].astype(np.int64) - 1
    d = np.linalg.norm(q - l1[:3], axis=1) if spot else q @ l2[:3]
    bias = texel * (s1[1] + slope)
    radius = s1[3]

    def fetch(t):
        t = np.clip(t, lo, hi)
        return atlas[t[:, 1], t[:, 0]]

    def occludes(t, dd):
        s = fetch(t)
        return ((s[:, 3] > 0.5) & (s[:, 0] < dd)).astype(np.float64)

    blockers = np.zeros(len(p))
    found = np.zeros(len(p))
    for j in range(SHADOW_SEARCH):
        for i in range(SHADOW_SEARCH):
            o = (np.array([i, j]) * (2.0 / (SHADOW_SEARCH - 1)) - 1.0) * radius
            s = fetch(np.floor(xy + o).astype(np.int64))
            hit = (s[:, 3] > 0.5) & (s[:, 0] < d - bias - texel * slope * np.linalg.norm(o))
            blockers += np.where(hit, s[:, 0], 0.0)
            found += hit
    blocker = blockers / np.maximum(found, 1.0)
    penumbra = s2[1] * (d - blocker) / (np.maximum(blocker, 1e-4) if spot else 1.0) / np.maximum(texel, 1e-12)
    r = np.clip(penumbra, SHADOW_MIN_RADIUS, max(radius, SHADOW_MIN_RADIUS))
    visible = np.zeros(len(p))
    for j in range(SHADOW_PCF):
        for i in range(SHADOW_PCF):
            unit = (np.array([i, j]) + 0.5) * (2.0 / SHADOW_PCF) - 1.0
            o = unit[None, :] * r[:, None]
            f = xy + o - 0.5
            fl = np.floor(f)
            wt = f - fl
            t = fl.astype(np.int64)
            dd = d - bias - texel * slope * np.linalg.norm(o, axis=1)
            a, b = occludes(t, dd), occludes(t + [1, 0], dd)
            e, g = occludes(t + [0, 1], dd), occludes(t + [1, 1], dd)
            top = a + (b - a) * wt[:, 0]
            bottom = e + (g - e) * wt[:, 0]
            visible += 1.0 - (top + (bottom - top) * wt[:, 1])
    visible /= SHADOW_PCF * SHADOW_PCF
    return np.where(facing, np.where(inside & (found > 0), visible, 1.0), 0.0)


def light_visibility(atlas, packed, k: int, p, n) -> np.ndarray:
    """(N,) visibility of shadowed light k (shadow_begin's shadow_kept[k]):
    its slot's lookup, a point light's on the cube face of each point."""
    packed = np.asarray(packed, np.float64)
    p = np.asarray(p, np.float64)
    slot = np.full(len(p), int(packed[0, 2, k] + 0.5))
    if packed[0, 3, k] > 1.5:
        row = int(packed[0, 1, 0] + 0.5) + 2 * slot[0]
        light = int(packed[row + 1, 1, 0] + 0.5)
        d = p - packed[light + 1, 1, :3]
        a = np.abs(d)
        axis = np.where((a[:, 0] >= a[:, 1]) & (a[:, 0] >= a[:, 2]), 0, np.where(a[:, 1] >= a[:, 2], 1, 2))
        slot = slot + 2 * axis + (np.take_along_axis(d, axis[:, None], 1)[:, 0] < 0)
    out = np.ones(len(p))
    for s in np.unique(slot):
        at = slot == s
        out[at] = shadow_lookup(atlas, packed, int(s), p[at], np.asarray(n, np.float64)[at])
    return out


def shadow_depth(packed, slot: int, positions, triangles) -> np.ndarray:
    """(h, w, 2) of slot `slot`'s tile: (depth, coverage) at each texel centre,
    ray-cast against the triangles: what SHADOW_DEPTH draws there."""
    m, rect, s1, s2, l1, l2 = _slot_rows(packed, slot)
    w, h = int(rect[2]), int(rect[3])
    spot = s2[3] > 0.5
    x, y = np.meshgrid((np.arange(w) + 0.5) / w * 2 - 1, (np.arange(h) + 0.5) / h * 2 - 1)
    inv = np.linalg.inv(m)

    def unproject(z):
        c = np.stack([x, y, np.full_like(x, z), np.ones_like(x)], -1).reshape(-1, 4) @ inv.T
        return c[:, :3] / c[:, 3:]

    origin = unproject(-1.0)
    direction = unproject(1.0) - origin
    tri = np.asarray(positions, np.float64)[np.asarray(triangles).reshape(-1, 3)]
    best_t = np.full(len(origin), np.inf)
    for a, b, c in tri:  # Moller-Trumbore, every ray against one triangle
        e1, e2 = b - a, c - a
        pv = np.cross(direction, e2)
        det = pv @ e1
        ok = np.abs(det) > 1e-12
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tv = origin - a
        u = np.sum(tv * pv, 1) * inv_det
        qv = np.cross(tv, e1)
        v = np.sum(direction * qv, 1) * inv_det
        t = (qv @ e2) * inv_det
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)
        best_t = np.where(hit & (t < best_t), t, best_t)
    covered = np.isfinite(best_t)
    point = origin + direction * np.where(covered, best_t, 0.0)[:, None]
    depth = np.linalg.norm(point - l1[:3], axis=1) if spot else point @ l2[:3]
    return np.stack([np.where(covered, depth, 0.0), covered.astype(np.float64)], -1).reshape(h, w, 2)
