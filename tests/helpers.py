"""Shared helpers for the tests (scenes and measures); no fixtures here."""
from __future__ import annotations

import numpy as np

from sge_optimizer.engine import Engine, MeshArrays, SceneArrays, Settings, mean_psnr as _mean_psnr, synthetic
from sge_optimizer.engine.synthetic import flat_texture, render_targets  # noqa: F401 - used by tests

W = H = 48  # the small scene's resolution


def small_engine(backend, **settings):
    """A small sphere fit (both groups, 3 views) on any backend."""
    settings.setdefault("alternate_groups", False)  # one sub-step charges both groups
    mesh = synthetic.uv_sphere(12, 6)
    views = render_targets(backend, mesh, synthetic.checker_texture(8), synthetic.orbit_cameras(3), W, H)
    start = MeshArrays(mesh.positions * np.float32(0.9), mesh.triangles, mesh.corner_uvs)
    return Engine(backend, SceneArrays(start, flat_texture(8, 0.4), views), Settings(**settings))


def read_renders(engine) -> tuple:
    """(plus, minus): the last sub-step's renders as arrays, from the two
    draws or from the pair draw (Engine.renders)."""
    return tuple({k: engine.backend.read(t) for k, t in d.items()}
                 for d in engine.renders(engine.pair_render_applies()))


def flipped_fraction(positions, triangles):
    """Fraction of a sphere-like mesh's faces whose normal points inwards."""
    p = positions[triangles]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return float(np.mean(np.einsum("ij,ij->i", normal, p.mean(1) - positions.mean(0)) < 0))



def silhouette_iou(engine, views):
    scores = []
    for i, view in enumerate(views):
        mine = engine.render(i)["id"] > 0
        theirs = view.target[..., 3] > 0.5
        scores.append((mine & theirs).sum() / max((mine | theirs).sum(), 1))
    return float(np.mean(scores))


def mean_psnr(engine):
    return _mean_psnr(engine.evaluate())
