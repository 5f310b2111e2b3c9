"""Colour encoding and image scores shared by the engine, the add-on and the lab:
one sRGB transfer function and one PSNR."""
from __future__ import annotations

import math

import numpy as np


def _as_float(c) -> np.ndarray:
    """`c` as an array computed in its own float precision (float32 for anything else)."""
    c = np.asarray(c)
    return c if np.issubdtype(c.dtype, np.floating) else c.astype(np.float32)


def srgb_to_linear(c) -> np.ndarray:
    """sRGB-encoded values -> linear light (the IEC 61966-2-1 curve), float32."""
    c = _as_float(c)
    return np.where(c <= 0.04045, c / np.float32(12.92), ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(c) -> np.ndarray:
    """Linear light -> sRGB-encoded values, float32 (negative values encode as 0)."""
    c = np.maximum(_as_float(c), 0.0)
    return np.where(c <= 0.0031308, c * np.float32(12.92), 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


def psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] values (inf for 0)."""
    return float("inf") if mse <= 0 else float(-10.0 * math.log10(mse))


def image_metrics(color: np.ndarray, target: np.ndarray, name: str = "") -> dict:
    """{"view", "mse", "psnr"} of an image against its target (mean over every value)."""
    mse = float(np.mean((color.astype(np.float64) - target) ** 2))
    return {"view": name, "mse": mse, "psnr": psnr(mse)}


def mean_psnr(metrics: list) -> float:
    """The mean PSNR of per-view metrics ({"psnr": ...} each)."""
    return float(np.mean([m["psnr"] for m in metrics]))
