"""Shadow maps of a lit fit (issue 24): which lights get one, their light
matrices and atlas tiles (packed after the lights in the `lights` texture,
layout in gpu_kernels/lit_shadows.glsl), and the pass that draws them.

A sun casting shadows gets an orthographic map fitted to the mesh's bounds
along its direction; a spot a perspective one from the lamp, fitted to the
mesh's bounding sphere. Point and area lights cast none (not modelled yet).
The maps are drawn from the positions texture R renders (SHADOW_DEPTH), so a
vertex moved in theta+ moves its shadow in R+.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import gpu_kernels as K

SHADOW_TILE = 512  # texels per side of each light's tile, by default
SHADOW_KINDS = ("SUN", "SPOT")
MAX_SLOTS = 4  # SHADOW_SLOTS in lit_shadows.glsl: lights past it cast no shadow
# Margin around the mesh's bounds, so that perturbed positions stay in the map.
MARGIN = 0.1
# Per-slot lookup constants, in texels: depth bias, normal offset, and the
# bounds of the blocker-search radius.
DEPTH_BIAS = 1.0
NORMAL_OFFSET = 1.0
SEARCH_MIN, SEARCH_MAX = 1.5, 12.0


@dataclass(frozen=True)
class ShadowSlot:
    light: int  # index in Lighting.lights
    kind: str  # SUN or SPOT
    matrix: np.ndarray  # (4, 4) world -> the tile's clip space
    texel: float  # sun: a texel's world size; spot: its size in tan units at unit distance
    softness: float  # sun: tan(angle / 2); spot: the lamp's radius
    search: float  # blocker-search radius in texels


def tile_for(width: int, height: int) -> int:
    """A tile of twice the render's larger side (256 to 2048 texels): past
    about a texel per pixel the lookup's filter sets the edge (128 to 1024
    texels at 128 px renders scored within 0.1 dB on the sun case)."""
    return int(np.clip(2 * max(width, height), 256, 2048))


def casts_shadow(light) -> bool:
    return light.cast_shadow and light.kind in SHADOW_KINDS and light.power > 0 and max(light.color[:3]) > 0


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


def _basis(d: np.ndarray) -> tuple:
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = _unit(np.cross(helper, d))
    return u, np.cross(d, u)


def _sun_slot(index, light, positions, tile) -> ShadowSlot:
    d = _unit(light.direction)
    u, v = _basis(d)
    pu, pv, pd = positions @ u, positions @ v, positions @ d
    cu, cv = (pu.max() + pu.min()) / 2, (pv.max() + pv.min()) / 2
    half = max(pu.max() - pu.min(), pv.max() - pv.min(), 1e-6) / 2 * (1 + MARGIN)
    span = max(pd.max() - pd.min(), 1e-6)
    near, far = pd.min() - MARGIN * span - half * MARGIN, pd.max() + MARGIN * span + half * MARGIN
    m = np.zeros((4, 4))
    m[0, :3], m[0, 3] = u / half, -cu / half
    m[1, :3], m[1, 3] = v / half, -cv / half
    m[2, :3], m[2, 3] = 2 * d / (far - near), -(far + near) / (far - near)
    m[3, 3] = 1.0
    texel = 2 * half / tile
    softness = math.tan(min(light.radius, math.radians(179.0)) / 2)
    search = float(np.clip(span * softness / texel, SEARCH_MIN, SEARCH_MAX))
    return ShadowSlot(index, "SUN", m, texel, softness, search)


def _spot_slot(index, light, positions, tile) -> ShadowSlot:
    o = np.asarray(light.position, np.float64)
    centre = (positions.max(0) + positions.min(0)) / 2
    radius = max(float(np.linalg.norm(positions - centre, axis=1).max()), 1e-6) * (1 + MARGIN)
    dist = float(np.linalg.norm(centre - o))
    if dist > 1.05 * radius:  # the lamp sees the whole mesh: fit the map to it
        axis = _unit(centre - o)
        half = min(math.asin(radius / dist), math.radians(80))
        near, far = dist - radius, dist + radius
    else:  # inside the bounds: the spot's cone
        axis = _unit(light.direction)
        half = min(light.spot_size / 2 * 1.05, math.radians(80))
        near, far = 0.02 * radius, dist + radius
    u, v = _basis(-axis)  # camera looking down -z = axis
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = u, v, -axis
    view[:3, 3] = -view[:3, :3] @ o
    f = 1 / math.tan(half)
    proj = np.array([[f, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]])
    texel = 2 * math.tan(half) / tile
    softness = max(light.radius, 0.0)
    search = float(np.clip(softness * (far - near) / (near * far * texel), SEARCH_MIN, SEARCH_MAX))
    return ShadowSlot(index, "SPOT", proj @ view, texel, softness, search)


def shadow_slots(lighting, positions, tile: int = SHADOW_TILE) -> list:
    """A ShadowSlot for each light that casts shadows the fit models (a sun or
    spot with Cast Shadow on; the first MAX_SLOTS), fitted to `positions` (V, 3)."""
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    slots = []
    for i, light in enumerate(lighting.lights):
        if casts_shadow(light) and len(positions) and len(slots) < MAX_SLOTS:
            make = _sun_slot if light.kind == "SUN" else _spot_slot
            slots.append(make(i, light, positions, tile))
    return slots


def pack_shadow_rows(slots, light_count: int, tile: int = SHADOW_TILE) -> tuple:
    """(header texel 1 (4,), rows (2 * slots, 4, 4)): the shadow part of the
    light texture (lit_shadows.glsl). Tiles sit side by side in the atlas."""
    rows = np.zeros((2 * len(slots), 4, 4), np.float32)
    for k, s in enumerate(slots):
        rows[2 * k] = s.matrix.T  # texel j: column j
        rows[2 * k + 1, 0] = (k * tile, 0, tile, tile)
        rows[2 * k + 1, 1] = (s.light, DEPTH_BIAS, NORMAL_OFFSET, s.search)
        rows[2 * k + 1, 2] = (s.texel, s.softness, 0.0, 0.0 if s.kind == "SUN" else 2.0)
    header = np.array([1 + light_count, tile * max(len(slots), 1), tile if slots else 1, len(slots)], np.float32)
    return header, rows


class ShadowMaps:
    """The lights texture with its shadow rows, and the atlas SHADOW_DEPTH
    draws: `draw(positions)` before the lit draws that read it."""

    def __init__(self, backend, lighting, mesh, tile: int = SHADOW_TILE):
        from .lit_reference import pack_lights

        self.backend, self.tile = backend, tile
        self.slots = shadow_slots(lighting, mesh.positions, tile)
        self.packed = pack_lights(lighting, self.slots, tile)
        self.lights = backend.texture(4, self.packed.shape[0], "RGBA32F", self.packed)
        self.corners = 3 * len(mesh.triangles)
        self.target = self.batch = None
        if self.slots:
            n = len(self.slots)
            self.target = backend.render_target(tile * n, tile)
            self.batch = backend.mesh_batch(np.tile(mesh.triangles.reshape(-1), n),
                                            np.zeros((n * self.corners, 2), np.float32))
            self.atlas = backend.target_textures(self.target)["color"]
        else:
            self.atlas = backend.texture(1, 1, "RGBA32F")  # bound, never read
        self.drawn_from = None  # the positions texture of the last draw

    def draw(self, positions) -> None:
        """Draw every slot's depth from `positions` (a positions texture)."""
        if self.slots:
            self.backend.draw(K.SHADOW_DEPTH, self.target, self.batch,
                              samplers={"positions": positions, "lights": self.lights},
                              constants={"corners": self.corners})
        self.drawn_from = positions
