"""engine/pixel_filter.py: Workbench's antialiasing as point samples, checked
against Workbench's own render."""
from __future__ import annotations

import numpy as np
import pytest

from sge_optimizer.engine import pixel_filter as pf


@pytest.mark.parametrize("samples", pf.WORKBENCH_SAMPLES)
def test_workbench_sample_pattern_is_a_centred_stratified_set(samples):
    offsets = pf.workbench_offsets(samples)
    assert offsets.shape == (samples, 2)
    # Blender wraps with fmodf, which keeps the sign: a few land below -1, as there
    assert np.all((offsets > -2.0) & (offsets <= 1.0))
    assert np.isclose(np.abs(offsets).sum(1), 0).sum() == 1  # the sample nearest the centre moved onto it
    # stratified: no two samples closer than a fraction of the mean spacing
    gaps = np.linalg.norm(offsets[:, None] - offsets[None], axis=-1) + 10 * np.eye(samples)
    assert gaps.min() > 0.5 * 2.0 / np.sqrt(samples)
    points, weights = pf.workbench_points(samples)
    assert np.isclose(weights.sum(), 1.0) and np.all(weights > 0)
    assert np.all(np.abs(points) <= 2.0)
    # near the pixel, a little lopsided (Workbench's point spread is too: README)
    assert np.linalg.norm(weights @ points) < 0.25


def test_workbench_samples_outside_its_menu_are_refused():
    with pytest.raises(ValueError, match="Workbench renders"):
        pf.workbench_points(7)


def _bilinear(tex, x, y):
    """Bilinear lookup, clamped, at texel coordinates (x, y) (texel centres at i + 0.5)."""
    h, w = tex.shape[:2]
    x, y = x - 0.5, y - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]

    def at(i, j):
        return tex[np.clip(j, 0, h - 1), np.clip(i, 0, w - 1)]

    return (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) + (at(x0, y0 + 1) * (1 - fx)
                                                                         + at(x0 + 1, y0 + 1) * fx) * fy


def test_the_model_reproduces_workbench_on_a_random_texture(empty_scene, tmp_path):
    """A plane filling an orthographic 64² frame, one texel per pixel, random
    colours: Workbench's render (8 samples) against the model's log-space
    mean of bilinear point samples, and against a plain linear mean."""
    import bpy
    import scenes

    from sge_optimizer.addon import target_setup
    from sge_optimizer.engine.color import linear_to_srgb, psnr, srgb_to_linear

    size = 64
    scene = bpy.context.scene
    scenes.setup_workbench(scene, size)
    assert scene.display.render_aa == "8"
    bpy.ops.mesh.primitive_plane_add(size=2.0)
    plane = bpy.context.active_object
    rng = np.random.default_rng(3)
    tex = np.ones((size, size, 4), np.float32)
    tex[..., :3] = rng.integers(0, 256, (size, size, 3)) / 255.0
    plane.data.materials.append(target_setup.textured_material("M", target_setup.new_image("T", tex)))
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.type, cam_data.ortho_scale = "ORTHO", 2.0
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.0, 0.0, 5.0)
    truth = scenes.render_pixels(scene, cam, tmp_path)[..., :3][4:-4, 4:-4]

    linear = srgb_to_linear(tex[..., :3].astype(np.float64))
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    points, weights = pf.workbench_points(8)
    samples = [_bilinear(linear, xs + dx, ys + dy) for dx, dy in points]
    log_mean = np.exp2(sum(w * pf.log_space(c) for w, c in zip(weights, samples))) - 1.0
    lin_mean = sum(w * c for w, c in zip(weights, samples))

    def model_psnr(model):
        err = linear_to_srgb(np.clip(model, 0, 1))[4:-4, 4:-4] - truth
        return psnr(float(np.mean(err ** 2)))

    assert model_psnr(log_mean) > 45.0, model_psnr(log_mean)
    assert model_psnr(log_mean) > model_psnr(lin_mean) + 3.0  # the log space matters
