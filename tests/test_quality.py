"""Fits that hold from every view and never make things worse: the
sub-pixel jitter reaches every texel of a minified texture, the warm-up
keeps a finished fit, and a run hands back its best checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import flat_texture, mean_psnr

from sge_optimizer.engine import Engine, MeshArrays, SceneArrays, Settings, View
from sge_optimizer.engine import reference as ref
from sge_optimizer.engine import synthetic
from sge_optimizer.engine.scoring import KeepBest

RES = 32  # pixels; the texture is minified about 4 texels per pixel
TEX = 128


def minified_scene(backend, views=2):
    mesh = synthetic.uv_sphere(24, 12)
    cams = synthetic.orbit_cameras(views)
    truth = synthetic.checker_texture(TEX, tiles=16)
    targets = [View(f"v{i}", c, np.zeros((RES, RES, 4), np.float32)) for i, c in enumerate(cams)]
    truth_engine = Engine(backend, SceneArrays(mesh, truth, targets), Settings(optimize_positions=False))
    for i, view in enumerate(targets):
        view.target = truth_engine.render_color(i, antialias=True)
    return mesh, cams, targets


def footprint_texels(backend, mesh, cam) -> set:
    """Texels under the pixels' areas: the bilinear footprints of a render 8x denser."""
    fine = RES * 8
    view = View("fine", cam, np.zeros((fine, fine, 4), np.float32))
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), [view]), Settings(optimize_positions=False))
    r = engine.render(0)
    t0, t1, _ = ref.bilinear_footprint(r["uv"][r["id"] > 0], (TEX, TEX))
    return {(int(x), int(y)) for xs, ys in ((t0[:, 0], t0[:, 1]), (t1[:, 0], t0[:, 1]),
                                            (t0[:, 0], t1[:, 1]), (t1[:, 0], t1[:, 1]))
            for x, y in zip(xs, ys)}


def touched_fraction(backend, antialias: bool, substeps: int = 1024) -> float:
    mesh, cams, targets = minified_scene(backend, views=1)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets),
                    Settings(optimize_positions=False, antialias=antialias, texture_strata=1))
    engine.clear_gradients()
    for j in range(substeps):
        engine.params.texture.updates = j  # the texel stratum cycles with the texture's steps
        engine.substep(engine.make_substep(j, 0, 0))
    counts = engine.read_gradients()["texture_count"]
    footprint = footprint_texels(backend, mesh, cams[0])
    return float(np.mean([counts[y, x] > 0 for x, y in footprint]))


def test_jitter_charges_every_texel_in_the_pixel_footprints(backend):
    """At ~4 texels per pixel, pixel-centre samples read a fraction of the
    texels; jittered ones reach (nearly) all of them over the sub-steps (the
    rest lie in pixel corners, which the Gaussian filter rarely samples, and
    where a pixel spans dozens of texels, at grazing angles)."""
    centre = touched_fraction(backend, antialias=False)
    jittered = touched_fraction(backend, antialias=True)
    assert centre < 0.5, centre
    assert jittered > 0.99, jittered


def test_antialiased_render_is_the_mean_of_offset_renders(backend):
    mesh, cams, targets = minified_scene(backend, views=1)
    engine = Engine(backend, SceneArrays(mesh, synthetic.checker_texture(TEX, tiles=16), targets),
                    Settings(optimize_positions=False))
    aa = engine.render_color(0, antialias=True)
    alpha = aa[..., 3]
    assert 0 < np.mean((alpha > 0) & (alpha < 1)), "edges are partly covered"
    np.testing.assert_allclose(aa, targets[0].target, atol=1e-6)


def test_the_pixel_filter_follows_the_settings(backend):
    """Settings.filter_sigma (EEVEE's wider film filter) widens the antialiased
    silhouettes: the renders are the mean of offsets drawn from that filter."""
    from sge_optimizer.engine.samples import gaussian_offsets

    mesh, cams, targets = minified_scene(backend, views=1)
    partial = {}
    for engine_name, sigma in (("CYCLES", 0.21), ("EEVEE", 0.45)):
        engine = Engine(backend, SceneArrays(mesh, synthetic.checker_texture(TEX, tiles=16), targets),
                        Settings(optimize_positions=False, filter_sigma=sigma))
        offsets = engine.samples.antialias[0]
        assert offsets == gaussian_offsets(len(offsets), sigma)
        alpha = engine.render_color(0, antialias=True)[..., 3]
        partial[engine_name] = int(((alpha > 0.01) & (alpha < 0.99)).sum())
    assert partial["EEVEE"] > 1.3 * partial["CYCLES"], partial


def test_warmup_keeps_a_finished_fit(backend):
    """From the exact answer, the first steps must not wreck it: without the
    warm-up Adam moves every touched texel by the full rate at once."""
    mesh, _, targets = minified_scene(backend, views=4)
    truth = synthetic.checker_texture(TEX, tiles=16)
    after = {}
    for warmup in (0, 20):
        engine = Engine(backend, SceneArrays(mesh, truth, targets),
                        Settings(optimize_positions=False, warmup_steps=warmup, steps=400, texture_update="adam"))
        assert mean_psnr(engine) == np.inf  # the targets are this very render
        for _ in range(5):
            engine.step()
        after[warmup] = mean_psnr(engine)
    assert after[20] > 45.0, after
    assert after[0] < after[20] - 10.0, after  # the warm-up is what holds it


def test_patience_ends_a_fit_once_its_best_stands_and_only_with_it(backend):
    """From the exact answer little is left to gain: with patience 2 the run
    ends once two checkpoints in a row have not beaten keep-best's best, and
    hands back that best; without patience it runs every step."""
    mesh, _, targets = minified_scene(backend, views=4)
    truth = synthetic.checker_texture(TEX, tiles=16)
    ended = {}
    for patience in (0, 2):
        engine = Engine(backend, SceneArrays(mesh, truth, targets),
                        Settings(optimize_positions=False, steps=400, check_every=20, patience=patience))
        engine.start()
        while engine.step_index < 400 and not engine.converged():
            engine.step()
        ended[patience] = engine.step_index
        if patience:
            assert engine.keep_best.since_best() >= 2
            best = engine.best_step
            assert engine.finish() == best <= ended[patience] - 40  # the best stood two checkpoints
    assert ended[0] == 400
    assert ended[2] < 400, ended


def test_sart_keeps_a_finished_fit_without_a_warmup(backend):
    """SART's step is the residual the texel's pixels ask of it: from the
    exact answer it asks (nearly) nothing, warm-up or not."""
    mesh, _, targets = minified_scene(backend, views=4)
    truth = synthetic.checker_texture(TEX, tiles=16)
    after = {}
    for visits in (True, False):
        engine = Engine(backend, SceneArrays(mesh, truth, targets),
                        Settings(optimize_positions=False, warmup_steps=0, steps=400, texture_update="sart",
                                 sart_visits=visits))
        assert engine.params.texture.sensitivity and engine.params.texture.lr == 1.0
        assert engine.visits_enabled == visits
        for _ in range(7 * engine.visits.length):  # seven visits
            engine.step()
        after[visits] = mean_psnr(engine)
    # A visit's residual is exact: nothing moves. A step's own sample's is not.
    assert after[True] > 60.0, after
    assert after[False] < after[True] - 10.0, after


def test_sart_fits_a_minified_texture_faster_than_adam(backend):
    """The default texel update earns its place: from a flat start, the same
    steps bring the target views closer with SART than with Adam (each at
    its default step size), closer still in SART visits, and most with the
    visits charged by bilinear weights rather than by perturbation."""
    mesh, _, targets = minified_scene(backend, views=4)
    after = {}
    for update, visits, charge in (("sart", True, "weights"), ("sart", True, "perturbation"),
                                   ("sart", False, "weights"), ("adam", False, "weights")):
        engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets),
                        Settings(optimize_positions=False, steps=200, texture_update=update, sart_visits=visits,
                                 visit_charge=charge))
        start = mean_psnr(engine)
        for _ in range(200):
            engine.step()
        after[update, visits, charge] = mean_psnr(engine)
    # Visits by weights / by perturbation, per-step SART, Adam: 39.2, 29.0, 28.3 and 20.3 dB when
    # written (a visit's steps include its mean's renders, 8 of its 12 here).
    assert after["adam", False, "weights"] > start + 3.0, (start, after)
    assert after["sart", False, "weights"] > after["adam", False, "weights"] + 1.0, after
    assert after["sart", True, "weights"] > after["sart", False, "weights"] + 5.0, after
    assert after["sart", True, "weights"] > after["sart", True, "perturbation"] + 5.0, after


def test_engine_restores_its_best_checkpoint(backend):
    """A run that got worse hands back the best parameters it saw."""
    mesh, _, targets = minified_scene(backend, views=4)
    truth = synthetic.checker_texture(TEX, tiles=16)
    engine = Engine(backend, SceneArrays(mesh, truth, targets),
                    Settings(optimize_positions=False, warmup_steps=0, lr_texture=0.3, texture_update="adam"))
    start = engine.checkpoint()
    for _ in range(5):
        engine.step()
    worse = engine.checkpoint()
    assert worse > start and engine.best_step == 0
    assert engine.restore_best()
    assert engine.checkpoint() == start


def test_a_checkpoint_scored_view_by_view_matches_one_scored_at_once(backend):
    """The run scores checkpoints a view per step (no UI stall) on a copy of
    the parameters; the steps taken meanwhile must not change its score."""
    mesh, _, targets = minified_scene(backend, views=4)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets),
                    Settings(optimize_positions=False, sart_visits=False))  # an update every step
    engine.step()
    at_once = engine.checkpoint_loss()
    assert engine.best_step is None
    engine.begin_checkpoint()
    while len(engine.queue):
        engine.step()  # each step scores one more view
    assert engine.best_step == 1
    assert engine.keep_best.loss == at_once
    assert engine.checkpoint_loss() != at_once  # the steps went on meanwhile


def test_a_joint_fit_from_the_true_shape_keeps_it_exactly(backend):
    """At the end of the shape phase the start's vertices are scored against
    the fitted ones with the same texture; the true shape wins and is kept."""
    mesh, _, targets = minified_scene(backend, views=4)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets),
                    Settings(steps=80, shape_fraction=0.5, keep_best=False))
    for _ in range(40):
        engine.step()
    assert not np.array_equal(engine.positions(), mesh.positions)  # the shape phase moved them
    for _ in range(40):
        engine.step()
    assert engine.shape.kept == "start"
    np.testing.assert_array_equal(engine.positions(), mesh.positions)


def test_a_joint_fit_from_the_true_shape_ends_its_shape_phase_early(backend):
    """The early shape check (where the silhouette phase ends) finds the
    fitted vertices no better than the true start's: they come back, and the
    texture has the rest of the steps alone."""
    mesh, _, targets = minified_scene(backend, views=4)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets),
                    Settings(steps=100, shape_fraction=0.8, silhouette_fraction=0.4, keep_best=False))
    schedule = engine.schedule
    assert schedule.early_shape_check() == 40 and schedule.shape_end() == 80
    for _ in range(40):
        engine.step()
    assert not np.array_equal(engine.positions(), mesh.positions)  # the shape phase moved them
    while engine.shape.kept is None:
        engine.step()
    assert engine.step_index <= 50  # 4 views scored twice
    assert schedule.shape_end() == engine.step_index - 1 and schedule.early_shape_check() is None
    np.testing.assert_array_equal(engine.positions(), mesh.positions)
    for _ in range(10):
        assert schedule.groups(engine.step_index, ("positions", "texture")) == ("texture",)
        assert schedule.visiting(engine.step_index, engine.visits_enabled, False)  # the texture phase is SART visits
        engine.step()
    np.testing.assert_array_equal(engine.positions(), mesh.positions)


def test_a_coarse_start_goes_on_moving_after_the_early_shape_check(backend):
    """From a coarse shape the fitted vertices cover the targets clearly better
    at the early check: the shape phase goes on to `shape_fraction`."""
    mesh, _, targets = minified_scene(backend, views=4)
    coarse = MeshArrays(mesh.positions * np.float32(0.85), mesh.triangles, mesh.corner_uvs)
    engine = Engine(backend, SceneArrays(coarse, flat_texture(TEX), targets),
                    Settings(steps=300, shape_fraction=0.8, silhouette_fraction=0.4, keep_best=False))
    for _ in range(140):
        engine.step()
    assert engine.shape.kept is None and engine.schedule.shape_end() == 240
    (check,) = engine.shape.scores
    assert check["early"] and check["start"] > 1.25 * check["fitted"]
    groups = ("positions", "texture")
    assert "positions" in engine.schedule.groups(engine.step_index, groups) + engine.schedule.groups(
        engine.step_index + 1, groups)  # the vertices still move


def test_a_finished_start_is_replaced_only_by_a_clear_gain(backend):
    """A start that already fits (40 dB here) needs a 2 dB gain to be replaced."""
    mesh, _, targets = minified_scene(backend, views=2)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets), Settings(optimize_positions=False))
    keep = KeepBest(engine.params, start_margin_db=2.0)
    start = 1e-4
    assert keep.offer(engine.params.snapshot(), start, 0) and keep.step == 0
    assert not keep.offer(engine.params.snapshot(), start * 0.7, 7)  # within 2 dB: noise, or our renderer's own bias
    assert keep.step == 0
    assert keep.offer(engine.params.snapshot(), start * 0.5, 8) and keep.step == 8
    assert keep.offer(engine.params.snapshot(), start * 0.49, 9)  # past the start, any gain counts
    assert keep.step == 9 and keep.history == [(0, start), (7, start * 0.7), (8, start * 0.5), (9, start * 0.49)]


def test_a_poor_start_is_replaced_by_any_gain(backend):
    mesh, _, targets = minified_scene(backend, views=2)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets), Settings(optimize_positions=False))
    start = engine.checkpoint()
    assert engine.keep_best.offer(engine.params.snapshot(), start * 0.99, 3)
    assert engine.best_step == 3


def test_a_checkpoint_begun_with_the_shape_choice_is_scored_too(backend):
    """Keep-best's checkpoints and the shape choice share one scoring queue,
    first in first out: a checkpoint begun where the early shape check
    begins its scoring (as a run's keep-best did at step 480 of Standard's
    1200) is scored too, and so is the shape choice. With one pending slot
    the shape choice overwrote the checkpoint, which was never scored."""
    mesh, _, targets = minified_scene(backend, views=4)
    coarse = MeshArrays(mesh.positions * np.float32(0.85), mesh.triangles, mesh.corner_uvs)
    engine = Engine(backend, SceneArrays(coarse, flat_texture(TEX), targets),
                    Settings(steps=100, shape_fraction=0.8, silhouette_fraction=0.4, keep_best=False))
    scored = []
    for _ in range(40):
        engine.step()
    engine.begin_checkpoint(on_done=lambda loss, step: scored.append((step, loss)))
    for _ in range(1 + 3 * len(targets)):  # the shape choice begins; the checkpoint, then its two scorings
        engine.step()
    assert [step for step, _ in scored] == [40] and scored[0][1] > 0
    (check,) = engine.shape.scores
    assert check["early"] and check["step"] == 40 + 3 * len(targets)


def test_keep_best_checkpoints_go_on_through_the_shape_phases(backend):
    """With keep-best the fit queues a checkpoint every interval itself; at
    the early shape check and the shape's end both are scored, in order."""
    mesh, _, targets = minified_scene(backend, views=4)
    coarse = MeshArrays(mesh.positions * np.float32(0.85), mesh.triangles, mesh.corner_uvs)
    engine = Engine(backend, SceneArrays(coarse, flat_texture(TEX), targets),
                    Settings(steps=100, shape_fraction=0.8, silhouette_fraction=0.4, check_every=10))
    engine.start()
    for _ in range(100):
        engine.step()
    kept = engine.finish()
    steps = [step for step, _ in engine.keep_best.history]
    # 50 and 90 come while the shape's scorings (begun at 40 and 80) are still queued: none is begun then.
    assert steps == [0, 10, 20, 30, 40, 60, 70, 80, 100], steps
    assert [c["early"] for c in engine.shape.scores] == [True, False]
    assert kept == engine.best_step and engine.keep_best.loss == min(loss for _, loss in engine.keep_best.history)


def test_validation_views_are_never_charged(backend):
    """A view set aside to judge the checkpoints never reaches the fit: two
    fits whose validation view shows different targets take the same steps
    (a joint fit: vertices and texels, then SART visits)."""
    mesh, _, targets = minified_scene(backend, views=6)
    results, views = [], []
    for garbage in (False, True):
        views = [View(v.name, v.view_projection, v.target.copy()) for v in targets]
        engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), views),
                        Settings(steps=60, keep_best=False, shape_fraction=0.5, silhouette_fraction=0.2,
                                 validation_views=-1))
        (held,) = engine.validation
        assert held not in engine.training and len(engine.training) == 5
        if garbage:
            engine.targets[held] = backend.texture(RES, RES, "RGBA32F", np.ones((RES, RES, 4), np.float32))
        for _ in range(60):
            engine.step()
        results.append((engine.positions(), engine.texture()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(results[0][1], flat_texture(TEX))  # the fit moved


def test_checkpoints_are_judged_on_the_validation_views(backend):
    """With validation views the checkpoints score them alone; with fewer
    than 6 targets there are none and the targets judge (the rule is said)."""
    mesh, _, targets = minified_scene(backend, views=6)
    engine = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets),
                    Settings(optimize_positions=False, validation_views=-1))
    assert engine.queue.views == engine.validation and len(engine.validation) == 1
    (held,) = engine.validation
    assert engine.checkpoint() == pytest.approx(engine.scorer.checkpoint_mse(held))
    assert "1 of 6 target views set aside" in engine.validation_rule()
    few = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets[:5]),
                 Settings(optimize_positions=False, validation_views=-1))
    assert few.validation == () and few.queue.views == tuple(range(5))
    assert "5 targets, fewer than 6" in few.validation_rule()
    default = Engine(backend, SceneArrays(mesh, flat_texture(TEX), targets), Settings(optimize_positions=False))
    assert default.validation == () and "validation views 0" in default.validation_rule()
