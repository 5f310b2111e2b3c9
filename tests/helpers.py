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


def assert_pair_draw_is_two_draws(engine, view_index: int, substep: int, min_difference: float,
                                  groups=("texture",), offset=(0.0, 0.0)) -> None:
    """The pair draw (RASTERIZE_PAIR / RASTERIZE_LIT_FIT_PAIR) gives the two
    draws' R+ and R- colours, IDs and UVs, and a sub-step charges `groups`
    the same gradients and counts either way. Needs no jitter and no running
    mean (two sub-steps alike)."""
    backend = engine.backend
    engine.rasterize(engine.render_pair, view_index, 1, substep, offset=offset, pair=True)
    both = {k: backend.read(t) for k, t in backend.target_textures(engine.render_pair).items()}
    for sign, target, key in ((1, engine.render_plus, "color"), (-1, engine.render_minus, "color_minus")):
        engine.rasterize(target, view_index, sign, substep, offset=offset)
        single = {k: backend.read(t) for k, t in backend.target_textures(target).items()}
        np.testing.assert_array_equal(both[key], single["color"])
        np.testing.assert_array_equal(both["id"], single["id"])
        np.testing.assert_array_equal(both["uv"], single["uv"])
    assert np.abs(both["color"] - both["color_minus"]).max() > min_difference  # perturbed apart
    grads = []
    for pair in (True, False):
        engine.clear_gradients()
        assert engine.pair_render_applies()
        if not pair:
            engine.render_pair = None  # the two-draw path
        engine.substep(substep=substep, slot=2, view_index=view_index)
        grads.append(engine.read_gradients())
    for name in groups:
        np.testing.assert_array_equal(grads[0][name], grads[1][name])
        np.testing.assert_array_equal(grads[0][name + "_count"], grads[1][name + "_count"])
        assert np.abs(grads[0][name]).max() > 0


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
