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


def read_renders(engine, sub) -> tuple:
    """(plus, minus): sub-step `sub`'s renders as arrays, from the two draws
    or from the pair draw (Rasterizer.textures)."""
    return tuple({k: engine.backend.read(t) for k, t in d.items()}
                 for d in engine.raster.textures(engine.raster.pair_applies(sub)))


def assert_pair_draw_is_two_draws(engine, sub, min_difference: float, groups=("texture",)) -> None:
    """The pair draw (RASTERIZE_PAIR / RASTERIZE_LIT_FIT_PAIR) gives the two
    draws' R+ and R- colours, IDs and UVs, and sub-step `sub` charges
    `groups` the same gradients and counts either way. Needs no running
    mean (two sub-steps alike)."""
    backend, r = engine.backend, engine.raster
    r.draw(r.pair, sub.view, 1, sub, sub.offset, pair=True)
    both = {k: backend.read(t) for k, t in backend.target_textures(r.pair).items()}
    for sign, target, key in ((1, r.plus, "color"), (-1, r.minus, "color_minus")):
        r.draw(target, sub.view, sign, sub, sub.offset)
        single = {k: backend.read(t) for k, t in backend.target_textures(target).items()}
        np.testing.assert_array_equal(both[key], single["color"])
        np.testing.assert_array_equal(both["id"], single["id"])
        np.testing.assert_array_equal(both["uv"], single["uv"])
    assert np.abs(both["color"] - both["color_minus"]).max() > min_difference  # perturbed apart
    grads = []
    for pair in (True, False):
        engine.clear_gradients()
        r.pair_draw = pair  # False: the two-draw path
        assert r.pair_applies(sub) == pair
        engine.substep(sub)
        grads.append(engine.read_gradients())
    r.pair_draw = True
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


def flush_c_stdio() -> None:
    """Flush C's stdout and stderr (Blender's printf), so that pytest's capfd
    sees what C printed so far."""
    import ctypes

    ctypes.CDLL(None).fflush(None)


PUSH_CONSTANT_WARNING = "Push constants have a minimum supported size"
