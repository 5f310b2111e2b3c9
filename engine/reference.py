"""A numpy reference of P, R, G and Adam for small scenes.

Each function mirrors one GLSL kernel (gpu_kernels/*.glsl) with the same
hash and the same fixed-point rounding, so a test can run a kernel on the
GPU and here and compare. Slow by design: clarity over speed.
"""
from __future__ import annotations

import numpy as np

from ..gpu_kernels import FIXED_SCALE, NORMAL_XY_MAX
from .color import srgb_to_linear

_U = np.uint64
_M = _U(0xFFFFFFFF)


def pcg_hash(v: np.ndarray) -> np.ndarray:
    """uint32 PCG hash (uint64 arrays masked to 32 bits, numpy 1.x and 2.x alike)."""
    v = np.asarray(v, dtype=np.uint64) & _M
    state = (v * _U(747796405) + _U(2891336453)) & _M
    word = (((state >> ((state >> _U(28)) + _U(4))) ^ state) * _U(277803737)) & _M
    return ((word >> _U(22)) ^ word) & _M


def perturbation_key(seed: int, substep: int, salt: int) -> int:
    """The uint32 key of one perturbation of one parameter group."""
    h = pcg_hash(np.uint64(salt))
    h = pcg_hash(np.uint64(seed) ^ h)
    return int(pcg_hash(np.uint64(substep) ^ h))


def perturbation_signs(key: int, index) -> np.ndarray:
    """(..., 3) signs of the xyz/RGB channels of parameter texels `index`."""
    h = pcg_hash(np.asarray(index, np.uint64) ^ np.uint64(key))
    bits = (h[..., None] >> np.array([16, 17, 18], np.uint64)) & _U(1)
    return np.where(bits == _U(1), 1.0, -1.0).astype(np.float32)


def as_int32(key: int) -> int:
    """A uint32 key as the int32 with the same bits (push constants are int)."""
    return key - (1 << 32) if key >= 1 << 31 else key


def to_fixed(value) -> np.ndarray:
    v = np.clip(np.asarray(value, np.float32), -64.0, 64.0)
    return np.floor(v * np.float32(FIXED_SCALE) + np.float32(0.5)).astype(np.int64)


def in_stratum(x, y, stratum: int):
    """common.glsl's in_stratum: parity class (x & 1) + 2 (y & 1), or all if < 0."""
    return (stratum < 0) | (((np.asarray(x) & 1) + 2 * (np.asarray(y) & 1)) == stratum)


def signs_for(theta: np.ndarray, count: int, key: int, stratum: int = -1) -> np.ndarray:
    """(rows, width, 3) signs of the xyz/RGB channels; 0 past `count` and
    outside `stratum`."""
    rows, width = theta.shape[:2]
    i = np.arange(rows * width).reshape(rows, width)
    s = perturbation_signs(key, i)
    s[i >= count] = 0.0
    y, x = np.divmod(i, width)
    s[~in_stratum(x, y, stratum)] = 0.0
    return s


# P -------------------------------------------------------------------------
def perturb(theta, count, eps, key, stratum=-1):
    """theta +- eps * s: P for positions, and what R+ / R- fetch for textures."""
    delta = np.zeros_like(theta, dtype=np.float32)
    delta[..., :3] = np.float32(eps) * signs_for(theta, count, key, stratum)
    return theta + delta, theta - delta


def unit_normal_from_xy(stored_xy: np.ndarray) -> np.ndarray:
    """common.glsl's unit_normal_from_xy: (..., 2) stored x, y of tangent-space
    normal texels -> (..., 3) stored unit normals with z > 0."""
    xy = 2.0 * np.asarray(stored_xy, np.float32) - np.float32(1.0)
    r2 = np.sum(xy * xy, -1, keepdims=True)
    limit = np.float32(NORMAL_XY_MAX)
    xy = np.where(r2 > limit * limit, xy * (limit / np.sqrt(np.maximum(r2, 1e-30))), xy)
    z = np.sqrt(np.maximum(1.0 - np.sum(xy * xy, -1, keepdims=True), 0.0))
    return (0.5 * np.concatenate([xy, z], -1) + 0.5).astype(np.float32)


def perturb_normals(theta, count, eps, key, stratum=-1):
    """What R+ / R- fetch from a fitted normal map: x, y +- eps * s, z rebuilt,
    in the perturbed texels only (rasterize_fit_lit_frag.glsl's normal_texel)."""
    s = signs_for(theta, count, key, stratum)
    moved = s[..., 0] != 0
    out = []
    for sign in (1.0, -1.0):
        t = np.array(theta, np.float32, copy=True)
        xy = t[..., :2] + np.float32(sign * eps) * s[..., :2]
        t[moved, :3] = unit_normal_from_xy(xy)[moved]
        out.append(t)
    return tuple(out)


# R -------------------------------------------------------------------------
def bilinear_footprint(uv: np.ndarray, size):
    """uv (..., 2); size (w, h) -> t0, t1 (..., 2) int, f (..., 2)."""
    s = np.asarray(size, np.float32)
    x = uv.astype(np.float32) * s - np.float32(0.5)
    x0 = np.floor(x)
    f = x - x0
    t0 = (x0 - s * np.floor(x0 / s)).astype(np.int64)
    x1 = x0 + 1
    t1 = (x1 - s * np.floor(x1 / s)).astype(np.int64)
    return t0, t1, f


def encode_srgb(c):
    """Premultiplied linear RGBA -> premultiplied sRGB-encoded RGBA (common.glsl)."""
    c = np.asarray(c, np.float32)
    a = c[..., 3:4]
    s = np.clip(np.where(a > 0, c[..., :3] / np.maximum(a, np.float32(1e-30)), 0), 0, 1)
    s = np.where(s < 0.0031308, s * np.float32(12.92), 1.055 * s ** (1 / 2.4) - 0.055)
    return np.concatenate([s * a, a], -1).astype(np.float32) * (a > 0)




def sample_albedo(albedo: np.ndarray, uv: np.ndarray, srgb: bool = False) -> np.ndarray:
    """Bilinear at level 0; `srgb`: texels are decoded to linear before the
    blend, as GPUs filter sRGB textures."""
    h, w = albedo.shape[:2]
    if srgb:
        albedo = np.concatenate([srgb_to_linear(albedo[..., :3]), albedo[..., 3:]], -1)
    t0, t1, f = bilinear_footprint(uv, (w, h))
    c00 = albedo[t0[..., 1], t0[..., 0]]
    c10 = albedo[t0[..., 1], t1[..., 0]]
    c01 = albedo[t1[..., 1], t0[..., 0]]
    c11 = albedo[t1[..., 1], t1[..., 0]]
    fx, fy = f[..., :1], f[..., 1:]
    return (c00 * (1 - fx) + c10 * fx) * (1 - fy) + (c01 * (1 - fx) + c11 * fx) * fy


def rasterize(positions, triangles, corner_uvs, view_projection, albedo, width, height, srgb=False):
    """Colour (premultiplied RGBA), triangle ID (+1) and UV, depth-tested,
    sampled at pixel centres with perspective-correct UVs."""
    clip = np.c_[positions, np.ones(len(positions))] @ np.asarray(view_projection, np.float64).T
    color = np.zeros((height, width, 4), np.float32)
    ids = np.zeros((height, width), np.int64)
    uvs = np.zeros((height, width, 2), np.float32)
    depth = np.full((height, width), np.inf)
    for t, tri in enumerate(triangles):
        c = clip[tri]
        if np.any(c[:, 3] <= 1e-9):
            continue  # behind the camera: the test scenes never need clipping
        ndc = c[:, :3] / c[:, 3:]
        sx = (ndc[:, 0] + 1) * 0.5 * width
        sy = (ndc[:, 1] + 1) * 0.5 * height
        x0, x1 = max(int(np.floor(sx.min())), 0), min(int(np.ceil(sx.max())), width - 1)
        y0, y1 = max(int(np.floor(sy.min())), 0), min(int(np.ceil(sy.max())), height - 1)
        if x0 > x1 or y0 > y1:
            continue
        px, py = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        area = (sx[1] - sx[0]) * (sy[2] - sy[0]) - (sx[2] - sx[0]) * (sy[1] - sy[0])
        if abs(area) < 1e-12:
            continue
        w0 = ((sx[1] - px) * (sy[2] - py) - (sx[2] - px) * (sy[1] - py)) / area
        w1 = ((sx[2] - px) * (sy[0] - py) - (sx[0] - px) * (sy[2] - py)) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        z = w0 * ndc[0, 2] + w1 * ndc[1, 2] + w2 * ndc[2, 2]
        yy, xx = np.nonzero(inside)
        yy, xx = yy + y0, xx + x0
        zin = z[inside]
        closer = zin < depth[yy, xx]
        yy, xx, zin = yy[closer], xx[closer], zin[closer]
        b = np.stack([w0[inside][closer], w1[inside][closer], w2[inside][closer]], 1) / c[:, 3]
        b /= b.sum(1, keepdims=True)
        depth[yy, xx] = zin
        ids[yy, xx] = t + 1
        uv = b @ corner_uvs[t]
        uvs[yy, xx] = uv
    covered = ids > 0
    color[covered, :3] = sample_albedo(albedo, uvs[covered], srgb)[:, :3]
    color[covered, 3] = 1.0
    return color, ids, uvs


# G -------------------------------------------------------------------------
def loss_space(color, srgb_loss=False, log_loss=False):
    """common.glsl's loss_space: clamped to [0, 1], then sRGB-encoded or log2(c + 1)."""
    color = np.clip(color, 0.0, 1.0).astype(np.float32)
    if srgb_loss:
        return encode_srgb(color)
    return np.log2(color + np.float32(1.0)).astype(np.float32) if log_loss else color


def accumulate_gradient(color_plus, color_minus, id_plus, id_minus, uv_plus, uv_minus, target,
                        triangles, vertex_count, tex_size, key_pos, key_tex,
                        positions=True, texture=True, full_image=False, silhouette=False, srgb_loss=False,
                        tex_stratum=-1, coupled_channels=None, log_loss=False, sensitivity=False,
                        texel_weights=False, gain=None, ring=None):
    """Fixed-point accumulators as the GPU leaves them (in units of dL).
    `ring` (FLAG_RING: a list of each triangle's ring vertices, frames.py
    influence_ring): a vertex charge also reaches the rings of the pixel's
    triangles, each vertex once.
    `coupled_channels` (a bit mask, FLAG_COUPLED): those texel channels are
    charged the whole pixel difference, the others nothing. `srgb_loss` /
    `log_loss`: the renders are compared sRGB-encoded / as log2(c + 1) (the
    target is in that space already). `sensitivity` (FLAG_SENSITIVITY): also
    each charged texel channel's sum of |c+ - c-| ("texture_sensitivity").
    `texel_weights` (FLAG_TEXEL_WEIGHTS): one render (color_plus, id_plus,
    uv_plus); each texel of a pixel's footprint with bilinear weight w > 0 is
    charged 2 w (c - target) and a sensitivity of w (in channel 0 alone);
    with a lit `gain` (FLAG_TEXEL_GAIN, (h, w, 3+)) 2 w D (c - target) and
    w D, in each channel."""
    tw, th = tex_size
    out = {"positions": np.zeros((vertex_count, 3), np.int64),
           "positions_count": np.zeros(vertex_count, np.int64),
           "texture": np.zeros((th, tw, 3), np.int64),
           "texture_count": np.zeros((th, tw), np.int64),
           "texture_sensitivity": np.zeros((th, tw, 3), np.int64),
           "full": 0, "loss": 0}
    color_plus = loss_space(color_plus, srgb_loss, log_loss)  # the target is in that space already
    color_minus = loss_space(color_minus, srgb_loss, log_loss)
    lp_channel = ((color_plus - target) ** 2).astype(np.float32)
    lm_channel = ((color_minus - target) ** 2).astype(np.float32)
    dl_channel = (lp_channel - lm_channel).astype(np.float32)  # texel channel c: channel c's share
    lp = np.sum(lp_channel, axis=-1, dtype=np.float32)
    lm = np.sum(lm_channel, axis=-1, dtype=np.float32)
    dl = np.sum(dl_channel, axis=-1, dtype=np.float32)
    out["loss"] = int(to_fixed(np.float32(0.5) * (lp + lm)).sum())
    if full_image:
        out["full"] = int(to_fixed(dl).sum())
        return _scaled(out)
    h, w = dl.shape
    for y in range(h):
        for x in range(w):
            ip, im = int(id_plus[y, x]), int(id_minus[y, x])
            if ip == 0 and im == 0:
                continue
            if texel_weights:
                _charge_texel_weights(out, uv_plus[y, x], (tw, th), (color_plus[y, x] - target[y, x])[:3],
                                      None if gain is None else np.asarray(gain[y, x, :3], np.float32))
                continue
            d = dl_channel[y, x, 3] if silhouette else dl[y, x]
            if positions:
                verts = []
                for i in (ip, im):
                    if i:
                        for v in triangles[i - 1]:
                            if int(v) not in verts:
                                verts.append(int(v))
                for i in (ip, im):
                    if i and ring is not None and not silhouette:
                        for v in ring[i - 1]:
                            if int(v) not in verts:
                                verts.append(int(v))
                for v in verts:
                    s = perturbation_signs(key_pos, v)
                    out["positions"][v] += to_fixed(d * s)
                    out["positions_count"][v] += 1
            if texture:
                texels = []
                for i, uv in ((ip, uv_plus[y, x]), (im, uv_minus[y, x])):
                    if i:
                        t0, t1, _ = bilinear_footprint(np.asarray(uv, np.float32), (tw, th))
                        for q in ((t0[0], t0[1]), (t1[0], t0[1]), (t0[0], t1[1]), (t1[0], t1[1])):
                            if q not in texels:
                                texels.append(q)
                for qx, qy in texels:
                    if not in_stratum(qx, qy, tex_stratum):
                        continue
                    i = qy * tw + qx
                    s = perturbation_signs(key_tex, i)
                    if coupled_channels is None:
                        charge = dl_channel[y, x, :3]
                    else:
                        mask = np.array([(coupled_channels >> c) & 1 for c in range(3)], np.float32)
                        charge = dl[y, x] * mask
                    out["texture"][qy, qx] += to_fixed(charge * s)
                    out["texture_count"][qy, qx] += 1
                    if sensitivity:
                        out["texture_sensitivity"][qy, qx] += to_fixed(np.abs(color_plus[y, x, :3]
                                                                              - color_minus[y, x, :3]))
    return _scaled(out)


def _charge_texel_weights(out, uv, tex_size, residual, gain=None) -> None:
    t0, t1, f = bilinear_footprint(np.asarray(uv, np.float32), tex_size)
    for k in range(4):
        qx, qy = (t1 if k & 1 else t0)[0], (t1 if k & 2 else t0)[1]
        weight = np.float32((f[0] if k & 1 else 1 - f[0]) * (f[1] if k & 2 else 1 - f[1]))
        if weight > 0:
            if gain is None:
                out["texture"][qy, qx] += to_fixed(np.float32(2) * weight * residual)
                out["texture_sensitivity"][qy, qx, 0] += to_fixed(weight)  # shared by the channels
            else:
                out["texture"][qy, qx] += to_fixed(np.float32(2) * weight * gain * residual)
                out["texture_sensitivity"][qy, qx] += to_fixed(weight * gain)
            out["texture_count"][qy, qx] += 1


def _scaled(out):
    for key in ("positions", "texture", "texture_sensitivity", "full", "loss"):
        out[key] = np.asarray(out[key], np.float64) / FIXED_SCALE
    return out


def exact_texture_gradient(color, ids, uvs, target, albedo):
    """Exact gradient of sum_p |I_p - T_p|^2 w.r.t. the RGB texels of the unlit
    texture model with fixed geometry (I_p = bilinear(albedo, uv_p))."""
    th, tw = albedo.shape[:2]
    grad = np.zeros((th, tw, 3), np.float64)
    covered = ids > 0
    t0, t1, f = bilinear_footprint(uvs[covered], (tw, th))
    r = 2.0 * (color[covered, :3] - target[covered, :3])
    fx, fy = f[:, 0:1], f[:, 1:2]
    for (qx, qy), wgt in (((t0[:, 0], t0[:, 1]), (1 - fx) * (1 - fy)), ((t1[:, 0], t0[:, 1]), fx * (1 - fy)),
                          ((t0[:, 0], t1[:, 1]), (1 - fx) * fy), ((t1[:, 0], t1[:, 1]), fx * fy)):
        np.add.at(grad, (qy, qx), wgt * r)
    return grad


# Adam ----------------------------------------------------------------------
def adam_step(theta, m, v, grad, count, t, lr, grad_scale, beta1, beta2, clamp01,
              regularizer=None, reg_weight=0.0, full_image=False, unit_normal=False,
              sensitivity=None, shared_sensitivity=False, damping=0.0):
    """grad (rows, width, 3) in dL units; returns new (theta, m, v).
    `unit_normal` (ADAM_UNIT_NORMAL): texels are stored normals, z rebuilt from x, y.
    `sensitivity` (FLAG_SENSITIVITY): G's sums of |c+ - c-| (rows, width, 3);
    the SART-style step -lr m / (2 v), with m and v running means (beta1) of
    the gradient and of the sensitivity; `shared_sensitivity`
    (ADAM_SHARED_SENSITIVITY): channel 0's serves all three; `damping` is
    added to the sensitivity sum (in its units) before the ratio."""
    g = grad.astype(np.float32).copy()
    touched = (count > 0) | full_image
    h = None if sensitivity is None else sensitivity.astype(np.float32).copy()
    if h is not None and shared_sensitivity:
        h = np.repeat(h[..., :1], 3, axis=-1)
    g = g * np.float32(grad_scale)
    if h is not None:
        theta, m, v = theta.copy(), m.copy(), v.copy()
        m_new = beta1 * m[..., :3] + (1 - beta1) * g
        v_new = beta1 * v[..., :3] + (1 - beta1) * h * np.float32(grad_scale)
        damped = v_new + np.float32(damping) * np.float32(grad_scale)
        nxt = theta[..., :3] - lr * m_new / np.maximum(2 * damped, 1e-30)
        if clamp01:
            nxt = np.clip(nxt, 0.0, 1.0)
        theta[touched, :3], m[touched, :3], v[touched, :3] = nxt[touched], m_new[touched], v_new[touched]
        return theta, m, v
    if regularizer is not None:
        g = g + np.float32(reg_weight) * regularizer[..., :3]
        touched = np.ones_like(touched)
    theta, m, v = theta.copy(), m.copy(), v.copy()
    m_new = beta1 * m[..., :3] + (1 - beta1) * g
    v_new = beta2 * v[..., :3] + (1 - beta2) * g * g
    step = lr * (m_new / (1 - beta1 ** t)) / (np.sqrt(v_new / (1 - beta2 ** t)) + 1e-12)
    nxt = theta[..., :3] - step
    if clamp01:
        nxt = np.clip(nxt, 0.0, 1.0)
    if unit_normal:
        nxt = unit_normal_from_xy(nxt[..., :2])
    sel = touched
    theta[sel, :3], m[sel, :3], v[sel, :3] = nxt[sel], m_new[sel], v_new[sel]
    return theta, m, v


def laplacian(values, start, degree, neighbours, transpose=False, rest=None):
    """values (V, 3): L x (transpose=False) or L^T x, minus `rest` if given."""
    out = values.astype(np.float64).copy()
    if rest is not None:
        out -= rest
    for i in range(len(values)):
        nb = neighbours[start[i]: start[i] + degree[i]]
        if transpose:
            out[i] -= (values[nb] / np.maximum(degree[nb], 1)[:, None]).sum(0)
        elif len(nb):
            out[i] -= values[nb].mean(0)
    return out


# Large Steps -----------------------------------------------------------------
def combinatorial_laplacian_apply(values, start, degree, neighbours, weight):
    """(I + weight L) values, L = D - A the combinatorial Laplacian (V, 3)."""
    values = np.asarray(values, np.float64)
    out = values * (1.0 + weight * np.asarray(degree, np.float64))[:, None]
    for i in range(len(values)):
        out[i] -= weight * values[neighbours[start[i]: start[i] + degree[i]]].sum(0)
    return out


def large_steps_solve(rhs, start, degree, neighbours, weight, iterations, x0=None):
    """large_steps_solve.glsl's Jacobi-preconditioned Chebyshev iterations on
    (I + weight L) x = rhs (V, 3), from x0 (default 0), on the bounds
    [1 / (1 + weight mean degree), 2] of the preconditioned spectrum."""
    diagonal = (1.0 + weight * np.asarray(degree, np.float64))[:, None]
    low, high = 1.0 / (1.0 + weight * float(np.mean(degree))), 2.0
    centre, half = (high + low) / 2.0, (high - low) / 2.0
    sigma = centre / half
    rho = 1.0 / sigma
    x = np.zeros_like(np.asarray(rhs, np.float64)) if x0 is None else np.asarray(x0, np.float64).copy()
    r = np.asarray(rhs, np.float64).copy()  # the residual of the increment's system
    d = r / diagonal / centre
    for _ in range(iterations):
        x += d
        r -= combinatorial_laplacian_apply(d, start, degree, neighbours, weight)
        rho_next = 1.0 / (2.0 * sigma - rho)
        d = rho_next * rho * d + (2.0 * rho_next / half) * r / diagonal
        rho = rho_next
    return x


def large_steps_step(theta, m, v, grad, t, lr, grad_scale, beta1, beta2, adjacency, weight, iterations,
                     regularizer=None, reg_weight=0.0, uniform=True):
    """Update.LargeSteps.step on (V, 3) arrays (grad in dL units; adjacency:
    (start, degree, neighbours); lr: the rate the kernel gets):
    s = (I + weight L)^-1 g, uniform Adam on s (every coordinate over the
    largest sqrt(v_hat); `uniform` False: each over its own),
    theta += (I + weight L)^-1 du. Returns new (theta, m, v, s)."""
    g = np.asarray(grad, np.float64) * grad_scale
    if regularizer is not None:
        g = g + reg_weight * np.asarray(regularizer, np.float64)
    s = large_steps_solve(g, *adjacency, weight, iterations)
    m = beta1 * np.asarray(m, np.float64) + (1 - beta1) * s
    v = beta2 * np.asarray(v, np.float64) + (1 - beta2) * s * s
    du = -lr * (m / (1 - beta1 ** t)) / (np.sqrt((v.max() if uniform else v) / (1 - beta2 ** t)) + 1e-12)
    theta = large_steps_solve(du, *adjacency, weight, iterations, x0=theta)
    return theta, m, v, s
