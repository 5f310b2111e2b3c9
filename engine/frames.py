"""Shading frames that follow the positions: a lit fit that moves vertices
recomputes every corner's normal and tangent from theta, theta+ or theta-
before each draw (gpu_kernels/corner_frames.glsl), as Blender recomputes
them once the fitted positions are written back.

The rule is read off the frames Blender gave at the start (`frame_fans`):
a corner's normal is the corner-angle-weighted sum of the face normals of
the corners at its vertex that share its normal there (its smooth fan; a
flat face's corners share only their own face's), as Blender's vertex
normals are (a face normal is its polygon's); its tangent is MikkTSpace's:
each triangle's UV tangent off the normal, weighted by the corner's angle
off the normal, summed over the corners of its fan that also share its UV
and bitangent sign, with a quad split along its diagonal shorter in UV, as
MikkTSpace splits it. `corner_frames` is the numpy reference of the
kernel; tests compare it with the kernel and with Blender's own frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import gpu_kernels as K
from .params import PARAM_WIDTH, pack_rows

# Normals (unit) and UVs equal to this many decimals share a fan: Blender
# gives a smooth vertex's corners the same floats.
NORMAL_DECIMALS = 4
UV_DECIMALS = 5


@dataclass
class FrameFans:
    """For each corner (3 per triangle, in MeshArrays' order): its normal fan
    and tangent fan as ranges of `entries` (corner indices), and its
    bitangent sign (kept from Blender's tangents)."""
    normal_start: np.ndarray  # (C,) int
    normal_count: np.ndarray
    tangent_start: np.ndarray
    tangent_count: np.ndarray
    entries: np.ndarray  # (E,) int corner indices
    signs: np.ndarray  # (C,) float +-1
    # Each triangle's polygon (CornerFrames.polygons: start, count into `face_vertices`, and each
    # polygon corner's UV in `face_uvs`), whose normal is the face normal of its corners
    face_start: np.ndarray
    face_count: np.ndarray
    face_vertices: np.ndarray
    face_uvs: np.ndarray
    winding: float = 1.0  # -1: the face normals point against the frames (a mirroring transform)

    def influence_ring(self, triangles: np.ndarray) -> tuple:
        """Per triangle, the vertices beyond its own three that its corners'
        normals depend on (the other vertices of their fans' faces), as CSR:
        (start, count) per triangle and the vertex list. G charges them
        too: moving one turns this triangle's shading."""
        triangles = np.asarray(triangles, np.int64)
        owner, entry = fan_pairs(self.normal_start, self.normal_count, self.entries)
        tri = np.repeat(owner // 3, 3)
        vertex = triangles[entry // 3].reshape(-1)
        own = (triangles[tri] == vertex[:, None]).any(1)
        pairs = np.unique(np.stack([tri[~own], vertex[~own]], 1), axis=0)
        count = np.bincount(pairs[:, 0], minlength=len(triangles)) if len(pairs) else np.zeros(len(triangles), int)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        return start, count, pairs[:, 1] if len(pairs) else np.zeros(0, np.int64)


def fan_pairs(start: np.ndarray, count: np.ndarray, entries: np.ndarray) -> tuple:
    """(owner corner, entry corner) for every entry of every corner's fan."""
    owner = np.repeat(np.arange(len(start)), count)
    within = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    return owner, entries[np.repeat(start, count) + within]


def _groups(keys: np.ndarray, listed: np.ndarray | None = None) -> tuple:
    """Corners grouped by equal key rows: (start, count) of each corner's
    group in `entries`, and `entries` (the `listed` corners, all by default,
    sorted by group)."""
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    listed = np.ones(len(inverse), bool) if listed is None else listed
    entries = np.flatnonzero(listed)
    entries = entries[np.argsort(inverse[entries], kind="stable")]
    counts = np.bincount(inverse[entries], minlength=inverse.max() + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return starts[inverse], counts[inverse], entries


def frame_fans(positions: np.ndarray, triangles: np.ndarray, frames, corner_uvs: np.ndarray) -> FrameFans:
    """The fans of Blender's frames at the start (`frames`: CornerFrames,
    normals (T, 3, 3), tangents (T, 3, 4) with the bitangent sign, and the
    triangles' quads), for the mesh at `positions` with `corner_uvs` (T, 3, 2)."""
    normals, tangents = frames.normals, frames.tangents
    t = len(triangles)
    polygons = frames.polygons or (3 * np.arange(t), np.full(t, 3), np.asarray(triangles).reshape(-1),
                                   np.asarray(corner_uvs).reshape(-1, 2))
    vertex = np.asarray(triangles, np.int64).reshape(-1, 1)
    n = np.round(np.asarray(normals, np.float64).reshape(-1, 3), NORMAL_DECIMALS)
    uv = np.round(np.asarray(corner_uvs, np.float64).reshape(-1, 2), UV_DECIMALS)
    sign = np.where(np.asarray(tangents, np.float64).reshape(-1, 4)[:, 3] < 0, -1.0, 1.0)
    n_start, n_count, n_entries = _groups(np.concatenate([vertex, n], 1))
    # A quad's corner is one tangent entry however many of its loop triangles hold it
    # (its MikkTSpace triangles are the quad's own split: mikk_tangent_shares).
    quad_corner = np.repeat(np.asarray(polygons[1]) == 4, 3)
    corner_key = np.where(quad_corner, np.repeat(np.asarray(polygons[0]), 3), -1 - np.arange(3 * t))
    _, first = np.unique(np.stack([corner_key, vertex[:, 0]], 1), axis=0, return_index=True)
    listed = np.zeros(3 * t, bool)
    listed[first] = True
    t_start, t_count, t_entries = _groups(np.concatenate([vertex, n, uv, sign[:, None]], 1), listed)
    offset = len(n_entries)
    fans = FrameFans(n_start, n_count, t_start + offset, t_count, np.concatenate([n_entries, t_entries]),
                     sign.astype(np.float32), *(np.asarray(a, np.int64) for a in polygons[:3]),
                     np.asarray(polygons[3], np.float32).reshape(-1, 2))
    # A mirroring transform turns the winding: the face normals then point in.
    face_normal = face_terms(positions, triangles, fans)[0]
    fans.winding = -1.0 if np.sum(face_normal * n) < 0 else 1.0
    return fans


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(length > 1e-30, v / np.maximum(length, 1e-30), 0.0)


def face_terms(positions: np.ndarray, triangles: np.ndarray, fans: FrameFans) -> tuple:
    """Per corner (C,): its face's unit normal (its polygon's, Newell's sum
    about the first vertex, as Blender's) and its corner angle, as the
    kernel computes them."""
    positions = np.asarray(positions, np.float64)
    p = positions[np.asarray(triangles)]  # (T, 3, 3)
    face_normal = np.zeros((len(p), 3))
    first = positions[fans.face_vertices[fans.face_start]]
    for i in range(1, int(fans.face_count.max()) - 1):
        has = i + 1 < fans.face_count
        a = positions[fans.face_vertices[fans.face_start + np.where(has, i, 0)]] - first
        b = positions[fans.face_vertices[fans.face_start + np.where(has, i + 1, 0)]] - first
        face_normal += np.where(has[:, None], np.cross(a, b), 0.0)
    face_normal = fans.winding * _unit(face_normal)
    angles = np.empty((len(p), 3))
    for k in range(3):
        a = _unit(p[:, (k + 1) % 3] - p[:, k])
        b = _unit(p[:, (k + 2) % 3] - p[:, k])
        angles[:, k] = np.arccos(np.clip(np.sum(a * b, -1), -1.0, 1.0))
    return np.repeat(face_normal, 3, 0), angles.reshape(-1)


def _mikk_share(p: np.ndarray, uv: np.ndarray, n: np.ndarray) -> np.ndarray:
    """MikkTSpace's share of a triangle's first corner: the triangle's UV
    tangent (p, uv: (P, 3, 3) and (P, 3, 2), corner 0 first) off the
    normal n, times the corner's angle between its edges off the normal."""
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    t = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * np.where(det < 0, -1.0, 1.0)[:, None]

    def off(v):
        return _unit(v - n * np.sum(n * v, -1, keepdims=True))

    cos = np.sum(off(e1) * off(e2), -1)
    return np.arccos(np.clip(cos, -1.0, 1.0))[:, None] * off(t)


def mikk_tangent_shares(positions, triangles, corner_uvs, fans: FrameFans, entry: np.ndarray,
                        n: np.ndarray) -> np.ndarray:
    """Each tangent-fan entry's share (P, 3), given its owner's normal `n`:
    its loop triangle's (_mikk_share), or, for a quad's corner, the shares
    of the one or two triangles of the quad's own MikkTSpace split that hold
    it: along the diagonal shorter in UV (in position on a tie)."""
    positions = np.asarray(positions, np.float64)
    triangles = np.asarray(triangles)
    tri, k = entry // 3, entry % 3
    order = np.stack([k, (k + 1) % 3, (k + 2) % 3], 1)
    p = positions[triangles[tri[:, None], order]]
    uv = np.asarray(corner_uvs, np.float64)[tri[:, None], order]
    shares = _mikk_share(p, uv, n)
    quad = fans.face_count[tri] == 4
    if not quad.any():
        return shares
    q_tri, q_n = tri[quad], n[quad]
    at = fans.face_start[q_tri][:, None] + np.arange(4)
    q_vertex = fans.face_vertices[at]  # (Q, 4)
    q_uv = fans.face_uvs[at].astype(np.float32)
    q_p = positions[q_vertex]
    mine = np.argmax(q_vertex == triangles[q_tri, k[quad]][:, None], axis=1)
    uv02 = np.sum((q_uv[:, 2] - q_uv[:, 0]) ** 2, -1, dtype=np.float32)
    uv13 = np.sum((q_uv[:, 3] - q_uv[:, 1]) ** 2, -1, dtype=np.float32)
    p02 = np.sum((q_p[:, 2] - q_p[:, 0]) ** 2, -1)
    p13 = np.sum((q_p[:, 3] - q_p[:, 1]) ** 2, -1)
    diag02 = np.where(uv02 != uv13, uv02 < uv13, ~(p13 < p02))
    q_shares = np.zeros((len(q_tri), 3))
    for split, pair in ((True, ((0, 1, 2), (0, 2, 3))), (False, ((0, 1, 3), (1, 2, 3)))):
        for corners in pair:
            corners = np.array(corners)
            has = (diag02 == split) & np.isin(mine, corners)
            if not has.any():
                continue
            # The triangle's corners from this one on, in its winding.
            where = np.argmax(corners[None, :] == mine[has][:, None], axis=1)
            turn = corners[(where[:, None] + np.arange(3)) % 3]
            rows = np.flatnonzero(has)[:, None]
            q_shares[has] += _mikk_share(q_p[rows, turn], q_uv[rows, turn].astype(np.float64), q_n[has])
    shares[quad] = q_shares
    return shares


def _fan_sum(values: np.ndarray, start: np.ndarray, count: np.ndarray, entries: np.ndarray) -> np.ndarray:
    owner, entry = fan_pairs(start, count, entries)
    out = np.zeros((len(start), values.shape[1]))
    np.add.at(out, owner, values[entry])
    return out


def corner_frames(positions: np.ndarray, triangles: np.ndarray, corner_uvs: np.ndarray,
                  fans: FrameFans) -> tuple:
    """numpy reference of gpu_kernels/corner_frames.glsl: (normals (T, 3, 3),
    tangents (T, 3, 4)) of the corners at `positions`."""
    face_normal, angle = face_terms(positions, triangles, fans)
    normals = _unit(_fan_sum(angle[:, None] * face_normal, fans.normal_start, fans.normal_count, fans.entries))
    owner, entry = fan_pairs(fans.tangent_start, fans.tangent_count, fans.entries)
    tangents = np.zeros_like(normals)
    np.add.at(tangents, owner, mikk_tangent_shares(positions, triangles, corner_uvs, fans, entry, normals[owner]))
    tangents = _unit(tangents - normals * np.sum(normals * tangents, -1, keepdims=True))
    t = len(np.asarray(triangles))
    return (normals.reshape(t, 3, 3).astype(np.float32),
            np.concatenate([tangents, fans.signs[:, None]], 1).reshape(t, 3, 4).astype(np.float32))


def fan_textures(fans: FrameFans, corner_uvs: np.ndarray) -> dict:
    """The kernel's inputs as float arrays, PARAM_WIDTH wide (indices are
    exact in float32 below 2**24): `fan_range` (normal start, count, tangent
    start, count) and `corner_data` (u, v, sign) per corner; `fan` entries;
    `face_range` (start, count) per triangle into `face_vertices` (each
    polygon corner's vertex and UV)."""
    c = len(fans.signs)
    ranges = np.stack([fans.normal_start, fans.normal_count, fans.tangent_start, fans.tangent_count], 1)
    uv = np.asarray(corner_uvs, np.float32).reshape(c, 2)
    data = np.concatenate([uv, fans.signs[:, None], np.zeros((c, 1), np.float32)], 1)
    return {"fan_range": pack_rows(ranges.astype(np.float32), PARAM_WIDTH),
            "corner_data": pack_rows(data, PARAM_WIDTH),
            "fan": pack_rows(fans.entries.astype(np.float32)[:, None], PARAM_WIDTH, 1),
            "face_range": pack_rows(np.stack([fans.face_start, fans.face_count], 1).astype(np.float32), PARAM_WIDTH),
            "face_vertices": pack_rows(np.concatenate([fans.face_vertices.astype(np.float32)[:, None],
                                                       fans.face_uvs], 1), PARAM_WIDTH)}


def frames_rows(corners: int) -> int:
    """Rows of the frames texture (PARAM_WIDTH wide, two texels per corner)."""
    return max(1, math.ceil(2 * corners / PARAM_WIDTH))


def pack_frames(normals: np.ndarray, tangents: np.ndarray) -> np.ndarray:
    """Frames as the vertex shader reads them: corner c's normal at texel
    2c, its tangent (with the sign) at 2c + 1, PARAM_WIDTH wide."""
    c = normals.size // 3
    both = np.empty((2 * c, 4), np.float32)
    both[0::2, :3] = np.asarray(normals, np.float32).reshape(c, 3)
    both[0::2, 3] = 0.0
    both[1::2] = np.asarray(tangents, np.float32).reshape(c, 4)
    return pack_rows(both, PARAM_WIDTH)


class ShadingFrames:
    """A lit fit's corner frames on the GPU (`texture`, as pack_frames lays
    them out): Blender's own while the positions stay; recomputed from the
    positions of each draw when they move (`moving`), with the ring of
    vertices G charges besides a triangle's own (`ring_range`, `ring`)."""

    def __init__(self, backend, mesh, frames, moving: bool):
        self.backend, self.moving = backend, moving
        self.corners = 3 * len(mesh.triangles)
        fixed = None if moving else pack_frames(frames.normals, frames.tangents)
        self.texture = backend.texture(PARAM_WIDTH, frames_rows(self.corners), "RGBA32F", fixed)
        self.ring_range = self.ring = None
        if not moving:
            return
        fans = frame_fans(mesh.positions, mesh.triangles, frames, mesh.corner_uvs)
        self.winding = fans.winding
        inputs = fan_textures(fans, mesh.corner_uvs)
        inputs["triangles"] = pack_rows(mesh.triangles.astype(np.float32), PARAM_WIDTH)
        self.inputs = {name: backend.texture(a.shape[1], a.shape[0], "RGBA32F" if a.shape[2] == 4 else "R32F", a)
                       for name, a in inputs.items()}
        start, count, vertices = fans.influence_ring(mesh.triangles)
        ranges = pack_rows(np.stack([start, count], 1).astype(np.float32), PARAM_WIDTH)
        ring = pack_rows(vertices.astype(np.float32)[:, None], PARAM_WIDTH, 1)
        self.ring_range = backend.texture(PARAM_WIDTH, ranges.shape[0], "RGBA32F", ranges)
        self.ring = backend.texture(PARAM_WIDTH, ring.shape[0], "R32F", ring)

    def follow(self, positions):
        """The frames texture for a draw of `positions` (a positions texture:
        theta, theta+, theta- or a snapshot's), recomputed if they move."""
        if self.moving:
            rows = max(1, math.ceil(self.corners / PARAM_WIDTH))
            self.backend.dispatch(K.CORNER_FRAMES, K.CORNER_FRAMES.groups(PARAM_WIDTH, rows),
                                  images={"frames": self.texture}, samplers={"positions": positions, **self.inputs},
                                  constants={"corner_count": self.corners, "winding": self.winding})
        return self.texture
