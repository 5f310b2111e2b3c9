"""An equirectangular environment image as 9 spherical-harmonic coefficients.

Plain radiance SH (no cosine lobe applied): L(d) ~= sum_k sh[k] * Y_k(d),
real SH bands 0..2 in the order
  Y00, Y1-1 (y), Y10 (z), Y11 (x), Y2-2 (xy), Y2-1 (yz), Y20, Y21 (xz), Y22.
Directions are Blender world space (Z up). The mapping is Blender's
Environment Texture (equirectangular, as in Cycles' kernel):
u = 0.5 - atan2(d.y, d.x) / (2 pi), v = 1 - acos(d.z) / pi.
"""
from __future__ import annotations

import numpy as np


def sh9_basis(dirs: np.ndarray) -> np.ndarray:
    """(..., 3) unit directions -> (..., 9) real SH basis values."""
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    return np.stack([
        np.full_like(x, 0.282095),
        0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1),
        1.092548 * x * z, 0.546274 * (x * x - y * y)], -1)


def equirect_directions(width: int, height: int) -> tuple:
    """(h, w, 3) world directions of the pixel centres (rows bottom-up) and
    (h, w) solid angle of each pixel."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    phi = (0.5 - u) * 2 * np.pi  # atan2(y, x)
    elevation = (v - 0.5) * np.pi
    ce = np.cos(elevation)[:, None]
    dirs = np.stack(np.broadcast_arrays(np.cos(phi)[None, :] * ce, np.sin(phi)[None, :] * ce,
                                        np.sin(elevation)[:, None]), -1)
    solid = np.broadcast_to(ce * (2 * np.pi / width) * (np.pi / height), (height, width))
    return dirs, solid


def equirect_to_sh9(radiance: np.ndarray) -> np.ndarray:
    """(h, w, 3) linear radiance, bottom-up -> (9, 3) float32 SH coefficients."""
    h, w = radiance.shape[:2]
    dirs, solid = equirect_directions(w, h)
    basis = sh9_basis(dirs) * solid[..., None]  # (h, w, 9)
    return np.einsum("hwk,hwc->kc", basis, radiance[..., :3].astype(np.float64)).astype(np.float32)


def sh9_eval(sh: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Radiance (..., 3) in the directions (..., 3) from (9, 3) coefficients."""
    return sh9_basis(dirs) @ sh
