"""The estimator is right: unbiased direction, per-pixel scaling, and fits
that converge (texture PSNR, vertex silhouette IoU)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import flat_texture, flipped_fraction, mean_psnr, render_targets, silhouette_iou

from sge_optimizer.engine import Engine, MeshArrays, SceneArrays, Settings, View
from sge_optimizer.engine import reference as ref
from sge_optimizer.engine import synthetic


def texture_scene(backend, tex_size, views=8, res=96, true_tex=None):
    mesh = synthetic.uv_sphere(24, 12)
    truth = synthetic.checker_texture(tex_size) if true_tex is None else true_tex
    targets = render_targets(backend, mesh, truth, synthetic.orbit_cameras(views), res, res)
    return mesh, targets


@pytest.mark.parametrize("strata", [1, 4])
def test_per_pixel_texel_gradient_points_along_exact_gradient(backend, strata):
    """Unbiased, also when each sub-step perturbs one texel stratum of four
    (a texel is then charged in a quarter of the sub-steps: times 4)."""
    mesh, views = texture_scene(backend, 16, views=1, res=64)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(16, 0.5), views),
                    Settings(optimize_positions=False, eps_texture=0.02, texture_strata=strata,
                             antialias=False))
    current = engine.render(0)
    exact = ref.exact_texture_gradient(current["color"], current["id"], current["uv"],
                                       views[0].target, engine.texture())
    engine.clear_gradients()
    samples = 400
    for j in range(samples):
        engine.params.texture.updates = j  # the stratum cycles with the texture's steps
        engine.substep(engine.make_substep(j, 0, 0))
    # E[sum_p dL_p s_i] = 2 eps dL/dtheta_i
    estimate = engine.read_gradients()["texture"] * strata / (2 * 0.02 * samples)
    touched = np.abs(exact).sum(-1) > 0
    a, b = estimate[touched].ravel(), exact[touched].ravel()
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine >= 0.95, cosine
    # Same scale as the exact gradient (it is unbiased for a quadratic loss).
    assert 0.8 < np.linalg.norm(a) / np.linalg.norm(b) < 1.25


def test_per_pixel_beats_full_image_with_thousands_of_parameters(backend):
    mesh, views = texture_scene(backend, 64, views=8, res=96)  # 12,288 parameters
    results = {}
    for estimator in ("per_pixel", "full_image"):
        engine = Engine(backend, SceneArrays(mesh, flat_texture(64, 0.5), views),
                        Settings(optimize_positions=False, estimator=estimator, seed=3, steps=150))
        start = mean_psnr(engine)
        for _ in range(150):
            engine.step()
        results[estimator] = mean_psnr(engine) - start
    assert results["per_pixel"] > 8.0, results
    assert results["per_pixel"] > 4 * max(results["full_image"], 0.5), results


def test_texture_only_fit_reaches_30_db(backend):
    mesh, views = texture_scene(backend, 32, views=12, res=96)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(32, 0.5), views),
                    Settings(optimize_positions=False, views_per_step=2, steps=300,
                             antialias=False))  # the targets are pixel-centre renders
    before = mean_psnr(engine)
    for _ in range(300):
        engine.step()
    after = mean_psnr(engine)
    assert before < 20 and after >= 30.0, (before, after)


def test_vertex_fit_recovers_silhouette_without_tangling(backend):
    mesh, views = texture_scene(backend, 32, views=12, res=128)
    rng = np.random.default_rng(1)
    start = mesh.positions * np.float32(0.8) + rng.normal(0, 0.01, mesh.positions.shape).astype(np.float32)
    assert flipped_fraction(start, mesh.triangles) == 0
    engine = Engine(backend, SceneArrays(MeshArrays(start, mesh.triangles, mesh.corner_uvs),
                                         synthetic.checker_texture(32), views),
                    Settings(optimize_texture=False, views_per_step=2, steps=400))
    assert silhouette_iou(engine, views) < 0.8
    for _ in range(400):
        engine.step()
    fitted = engine.positions()
    assert np.all(np.isfinite(fitted))
    assert silhouette_iou(engine, views) >= 0.97
    assert flipped_fraction(fitted, mesh.triangles) <= 0.01
    radius = np.linalg.norm(fitted, axis=1)
    assert np.abs(radius - 1.0).mean() < 0.05


def _wide_filter_fit(backend, running_residual: float, steps: int = 300) -> float:
    """Fit a fine random texture to targets filtered by a wide Gaussian
    (sigma 0.5 px, 8 samples), jittering as that filter; the mean PSNR of the
    antialiased renders against the targets."""
    mesh = synthetic.uv_sphere(24, 12)
    rng = np.random.default_rng(4)
    truth = np.ones((64, 64, 4), np.float32)
    truth[..., :3] = rng.random((64, 64, 3))
    cameras = synthetic.orbit_cameras(8)
    # The per-step estimator (Adam), where the running residual applies.
    wide = Settings(optimize_positions=False, filter_sigma=0.5, pixel_filter="gaussian", texture_update="adam")
    views = [View(f"view{i}", c, np.zeros((64, 64, 4), np.float32)) for i, c in enumerate(cameras)]
    painter = Engine(backend, SceneArrays(mesh, truth, views), wide)
    for i, view in enumerate(views):
        view.target = painter.render_color(i, antialias=True)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(64, 0.5), views),
                    dataclasses.replace(wide, steps=steps, running_residual=running_residual,
                                        residual_follows_lr=running_residual > 0))
    for _ in range(steps):
        engine.step()
    return mean_psnr(engine)


def test_the_running_residual_does_not_blur_under_a_wide_filter(backend):
    """Charging each jitter sample's own residual also minimises the pixel's
    variance over the jitter, which blurs a fine texture; the residual of the
    view's running mean (residual_target.glsl) does not."""
    own = _wide_filter_fit(backend, 0.0)
    running = _wide_filter_fit(backend, 0.2)
    assert running > own + 1.0, (own, running)
