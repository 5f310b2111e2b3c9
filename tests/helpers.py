"""Shared helpers for the tests (scenes and measures); no fixtures here."""
from __future__ import annotations

import numpy as np

from sge_optimizer.engine import Engine, SceneArrays, Settings, View


def render_targets(backend, mesh, texture, cameras, width, height):
    """Views whose targets are renders of (mesh, texture) by the same rasterizer."""
    views = [View(f"view{i}", c, np.zeros((height, width, 4), np.float32)) for i, c in enumerate(cameras)]
    engine = Engine(backend, SceneArrays(mesh, texture, views),
                    Settings(optimize_positions=False, optimize_texture=True))
    for i, view in enumerate(views):
        view.target = engine.render(i)["color"]
    return views


def flat_texture(size, value=0.5):
    tex = np.full((size, size, 4), value, np.float32)
    tex[..., 3] = 1.0
    return tex


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
    return float(np.mean([m["psnr"] for m in engine.evaluate()]))
