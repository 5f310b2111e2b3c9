"""Shadow maps of a lit fit (issue 24): which lights get one, their light
matrices and atlas tiles (packed after the lights in the `lights` texture,
layout in gpu_kernels/lit_shadows.glsl), and the pass that draws them.

A sun casting shadows gets an orthographic map fitted to the mesh's bounds
along its direction; a spot a perspective one from the lamp, fitted to the
mesh's bounding sphere; a point light a cube map (six perspective tiles, the
face picked per fragment). Area lights cast none (not modelled yet).
The maps are drawn from the positions texture R renders (SHADOW_DEPTH), so a
vertex moved in theta+ moves its shadow in R+.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import gpu_kernels as K
from .lit_reference import pack_lights, unit_vector

SHADOW_TILE = 512  # texels per side of each light's tile, by default
SHADOW_KINDS = ("SUN", "SPOT", "POINT")
# SHADOW_LIGHTS in lit_shadows.glsl: lights past it cast no shadow.
MAX_SLOTS = 4
KIND_CODES = {"SUN": 0.0, "POINT": 1.0, "SPOT": 2.0}  # a slot's t2.w
# A cube face's half-angle past 45 degrees (tan 1.1): the lookup's taps near
# the face's edge stay in its tile.
CUBE_FACE_TAN = 1.1
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
    kind: str  # SUN, SPOT or POINT (one of a cube's six faces: +x, -x, +y, -y, +z, -z)
    matrix: np.ndarray  # (4, 4) world -> the tile's clip space
    texel: float  # sun: a texel's world size; spot, point: its size in tan units at unit distance
    softness: float  # sun: tan(angle / 2); spot, point: the lamp's radius
    search: float  # blocker-search radius in texels


# The atlas's largest side: its render target (RGBA32F depth, the R32I and
# RGBA32F attachments R's targets have, a depth buffer) stays under 170 MB;
# more slots get smaller tiles.
ATLAS_MAX = 2048


def tile_for(width: int, height: int) -> int:
    """A tile of twice the render's larger side (256 to 2048 texels): past
    about a texel per pixel the lookup's filter sets the edge (128 to 1024
    texels at 128 px renders scored within 0.1 dB on the sun case)."""
    return int(np.clip(2 * max(width, height), 256, 2048))


def casts_shadow(light) -> bool:
    return light.cast_shadow and light.kind in SHADOW_KINDS and light.power > 0 and max(light.color[:3]) > 0


def _basis(d: np.ndarray) -> tuple:
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = unit_vector(np.cross(helper, d))
    return u, np.cross(d, u)


def _sun_slot(index, light, positions, tile) -> ShadowSlot:
    d = unit_vector(light.direction)
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
        axis = unit_vector(centre - o)
        half = min(math.asin(radius / dist), math.radians(80))
        near, far = dist - radius, dist + radius
    else:  # inside the bounds: the spot's cone
        axis = unit_vector(light.direction)
        half = min(light.spot_size / 2 * 1.05, math.radians(80))
        near, far = 0.02 * radius, dist + radius
    return _perspective_slot(index, "SPOT", light, o, axis, math.tan(half), near, far, tile)


def _perspective_slot(index, kind, light, o, axis, tan_half, near, far, tile) -> ShadowSlot:
    u, v = _basis(-axis)  # camera looking down -z = axis
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = u, v, -axis
    view[:3, 3] = -view[:3, :3] @ o
    f = 1 / tan_half
    proj = np.array([[f, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]])
    texel = 2 * tan_half / tile
    softness = max(light.radius, 0.0)
    search = float(np.clip(softness * (far - near) / (near * far * texel), SEARCH_MIN, SEARCH_MAX))
    return ShadowSlot(index, kind, proj @ view, texel, softness, search)


def _point_slots(index, light, positions, tile) -> list:
    """A cube map: six faces, +x, -x, +y, -y, +z, -z (the lookup picks one by
    the major axis of the point's offset from the lamp)."""
    o = np.asarray(light.position, np.float64)
    centre = (positions.max(0) + positions.min(0)) / 2
    radius = max(float(np.linalg.norm(positions - centre, axis=1).max()), 1e-6) * (1 + MARGIN)
    dist = float(np.linalg.norm(centre - o))
    # A face's view depth is the distance over sqrt(1 + tan_x^2 + tan_y^2): the
    # near plane must clear the mesh's nearest point at the face's corner too.
    corner = math.sqrt(1 + 2 * CUBE_FACE_TAN ** 2)
    near, far = max((dist - radius) / corner, 0.02 * radius), dist + radius
    return [_perspective_slot(index, "POINT", light, o, sign * np.eye(3)[axis], CUBE_FACE_TAN, near, far, tile)
            for axis in range(3) for sign in (1.0, -1.0)]


def shadow_slots(lighting, positions, tile: int = SHADOW_TILE) -> list:
    """ShadowSlots of each light that casts shadows the fit models (a sun,
    spot or point light with Cast Shadow on; the first MAX_SLOTS of them): one
    for a sun or spot, six for a point light; fitted to `positions` (V, 3)."""
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    slots, lights = [], 0
    for i, light in enumerate(lighting.lights):
        if casts_shadow(light) and len(positions) and lights < MAX_SLOTS:
            if light.kind == "POINT":
                slots += _point_slots(i, light, positions, tile)
            else:
                slots.append((_sun_slot if light.kind == "SUN" else _spot_slot)(i, light, positions, tile))
            lights += 1
    return slots


def atlas_grid(slots: int) -> tuple:
    """(columns, rows) of tiles in the atlas: near square, so 24 tiles of
    2048 texels stay under a texture's 16384."""
    columns = max(1, math.ceil(math.sqrt(slots)))
    return columns, max(1, math.ceil(slots / columns))


def pack_shadow_rows(slots, light_count: int, tile: int = SHADOW_TILE) -> tuple:
    """(header texels 1..3 (3, 4), rows (2 * slots, 4, 4), {light: shadowed
    light index}): the shadow part of the light texture (lit_shadows.glsl)."""
    rows = np.zeros((2 * len(slots), 4, 4), np.float32)
    columns, grid_rows = atlas_grid(len(slots))
    first, count, shadowed = np.zeros(4, np.float32), np.zeros(4, np.float32), {}
    for k, s in enumerate(slots):
        rows[2 * k] = s.matrix.T  # texel j: column j
        rows[2 * k + 1, 0] = ((k % columns) * tile, (k // columns) * tile, tile, tile)
        rows[2 * k + 1, 1] = (s.light, DEPTH_BIAS, NORMAL_OFFSET, s.search)
        rows[2 * k + 1, 2] = (s.texel, s.softness, 0.0, KIND_CODES[s.kind])
        if s.light not in shadowed:
            shadowed[s.light] = len(shadowed)
            first[shadowed[s.light]] = k
        count[shadowed[s.light]] += 1
    size = (tile * columns, tile * grid_rows) if slots else (1, 1)
    header = np.array([[1 + light_count, *size, len(shadowed)], first, count], np.float32)
    return header, rows, shadowed


def pack_lights_with_shadows(lighting, slots, tile: int = SHADOW_TILE) -> np.ndarray:
    """(1 + lights + 2 slots, 4, 4): lit_reference.pack_lights' texture with
    the shadow header (row 0, texels 1..3) and the slots' rows after the lights."""
    out = pack_lights(lighting)
    header, rows, shadowed = pack_shadow_rows(slots, len(lighting.lights), tile)
    out[0, 1:] = header
    for light, index in shadowed.items():  # its shadowed-light index + 1 (a sun's, spot's or point's axis is unused)
        out[1 + light, 3, 0] = index + 1
    return np.concatenate([out, rows]) if len(rows) else out


class ShadowMaps:
    """The lights texture with its shadow rows, and the atlas SHADOW_DEPTH
    draws: `draw(positions)` before the lit draws that read it."""

    def __init__(self, backend, lighting, mesh, tile: int = SHADOW_TILE):
        probe = shadow_slots(lighting, mesh.positions, tile)
        tile = min(tile, ATLAS_MAX // max(atlas_grid(len(probe)))) if probe else tile
        self.backend, self.tile = backend, tile
        self.slots = shadow_slots(lighting, mesh.positions, tile)
        self.packed = pack_lights_with_shadows(lighting, self.slots, tile)
        self.lights = backend.texture(4, self.packed.shape[0], "RGBA32F", self.packed)
        self.corners = 3 * len(mesh.triangles)
        self.target = self.batch = None
        if self.slots:
            n = len(self.slots)
            columns, rows = atlas_grid(n)
            self.target = backend.render_target(tile * columns, tile * rows)
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
