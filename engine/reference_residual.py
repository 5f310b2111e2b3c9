"""Numpy references of the residual targets G compares with
(residual_target.glsl) and of filtered renders (score.glsl)."""
from __future__ import annotations

import numpy as np

from ..gpu_kernels import COVERAGE_TOLERANCE
from .color import srgb_to_linear
from .pixel_filter import log_space
from .reference import encode_srgb, loss_space


def linear_space(x, srgb_loss=False, log_loss=False):
    """residual_target.glsl's linear_space: a loss-space colour in linear light (premultiplied)."""
    x = np.asarray(x, np.float32)
    if log_loss:
        return (np.exp2(x) - 1.0).astype(np.float32)
    if srgb_loss:
        a = x[..., 3:]
        s = np.where(a > 0, x[..., :3] / np.maximum(a, np.float32(1e-30)), 0)
        return np.concatenate([srgb_to_linear(s) * a, a], -1).astype(np.float32)
    return x


GAIN_MIN = 1e-3  # residual_target.glsl's: a pixel this dark in the base colour asks nothing of it


def base_colour_residual(mean, target, gain, uv, texel_srgb, srgb_loss=False, log_loss=False):
    """residual_target.glsl's FLAG_TEXEL_GAIN residual: a lit pixel is D a + S,
    so it asks a - (m - t) / D of the base colour a; the step there in the
    texels' encoding, on fully covered pixels lit enough (D > GAIN_MIN)."""
    a = np.concatenate([gain[..., 3:], uv[..., 2:4]], -1)
    ml, tl = linear_space(mean, srgb_loss, log_loss), linear_space(target, srgb_loss, log_loss)
    d = gain[..., :3]
    ok = (ml[..., 3] >= 0.999) & (tl[..., 3] >= 0.999) & np.all(d >= GAIN_MIN, -1)
    want = np.clip(a - (ml[..., :3] - tl[..., :3]) / np.where(ok[..., None], d, 1), 0, 1)
    if texel_srgb:
        step = encode_srgb(np.concatenate([a, np.ones_like(a[..., :1])], -1))[..., :3] - \
            encode_srgb(np.concatenate([want, np.ones_like(a[..., :1])], -1))[..., :3]
    else:
        step = a - want
    residual = np.concatenate([step, np.zeros_like(step[..., :1])], -1)
    return np.where(ok[..., None], residual, np.float32(0)).astype(np.float32)


def residual_target(color_plus, color_minus, target, running_mean, rate, srgb_loss=False, log_loss=False,
                    texel_srgb=None, share=0.5, gain=None, uv=None):
    """The residual_target kernel: (new running mean, effective target, summed
    mean loss) for renders, a target in the loss's space and the view's mean.
    `texel_srgb` not None (FLAG_TEXEL_RESIDUAL): the residual in the texels'
    encoding (sRGB if True), from the log loss's space, and none where the
    coverage misses the target's by more than COVERAGE_TOLERANCE. `share`:
    color_minus's weight in the mean s (GLSL's mix). `gain` (FLAG_TEXEL_GAIN,
    with `uv`): color_minus is the lit charge render's gain, s is color_plus
    alone and the residual is `base_colour_residual`'s."""
    plus = loss_space(color_plus, srgb_loss, log_loss)
    minus = plus if gain is not None else loss_space(color_minus, srgb_loss, log_loss)
    s = plus * np.float32(1 - share) + minus * np.float32(share)
    mean = running_mean + np.float32(rate) * (s - running_mean)
    loss = np.float32(0.5) * np.sum((plus - target) ** 2 + (minus - target) ** 2, axis=-1, dtype=np.float32)
    residual = mean - target
    if gain is not None:
        return mean, s - base_colour_residual(mean, target, gain, uv, texel_srgb, srgb_loss, log_loss), \
            float(loss.sum())
    if texel_srgb is not None and log_loss:
        def texel(x):
            linear = np.exp2(x) - 1.0
            return encode_srgb(linear) if texel_srgb else linear
        residual = texel(mean) - texel(target)
    if texel_srgb is not None:
        residual = np.where(np.abs(residual[..., 3:]) > COVERAGE_TOLERANCE, np.float32(0), residual)
    return mean, s - residual, float(loss.sum())


def filtered_render(samples: list, weights, log: bool = False) -> np.ndarray:
    """score.glsl's filtered render: the weighted mean of sample renders
    (of log2(c + 1) with `log`, as Workbench's TAA averages)."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    if log:
        return (np.exp2(sum(wi * log_space(c) for wi, c in zip(w, samples))) - 1).astype(np.float32)
    return sum(wi * c for wi, c in zip(w, samples)).astype(np.float32)
