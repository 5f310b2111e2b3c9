"""Which views can see the mesh at all, from the vertices alone (no render)."""
from __future__ import annotations

import numpy as np

from .scene import MeshArrays


def triangles_in_frame(mesh: MeshArrays, view_projection: np.ndarray) -> int:
    """How many triangles may show in the view's frame: those not wholly
    outside one clip plane (the frame's four sides, near and far). It can
    overcount (a triangle past a corner), never undercount."""
    corners = np.c_[mesh.positions.astype(np.float64), np.ones(len(mesh.positions))]
    x, y, z, w = (corners @ np.asarray(view_projection, np.float64).T).T
    outside = np.stack([x > w, x < -w, y > w, y < -w, z > w, z < -w], axis=1)
    culled = outside[mesh.triangles].all(axis=1).any(axis=1)
    return int(np.count_nonzero(~culled))
