"""Every GPU kernel against its numpy reference (engine/reference.py)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (H, PUSH_CONSTANT_WARNING, W, assert_pair_draw_is_two_draws, flat_texture, flush_c_stdio,
                     read_renders, small_engine)

from sge_optimizer import gpu_kernels as K
from sge_optimizer.engine import Engine, SceneArrays, Settings, View
from sge_optimizer.engine import reference as ref
from sge_optimizer.engine import reference_residual as ref_residual
from sge_optimizer.engine import synthetic
from sge_optimizer.engine.params import perturb
from sge_optimizer.engine.update import vertex_adjacency
from sge_optimizer.engine.visits import mean_steps

def test_readback_layout_is_row_major_bottom_up(backend):
    """Guard against the transposed-buffer trap: a non-square texture
    uploaded and read back keeps (row, column, channel) order."""
    data = np.arange(5 * 3 * 4, dtype=np.float32).reshape(3, 5, 4)
    tex = backend.texture(5, 3, "RGBA32F", data)
    np.testing.assert_array_equal(backend.read(tex), data)
    one = np.arange(7 * 2, dtype=np.float32).reshape(2, 7, 1)
    np.testing.assert_array_equal(backend.read(backend.texture(7, 2, "R32F", one)), one)


def test_perturb_matches_reference_and_hash(backend):
    engine = small_engine(backend)
    g = engine.params.positions
    perturb(backend, g, 0, engine.make_substep(5, 0, 0))
    plus, minus = ref.perturb(backend.read(g.theta), g.count, g.eps, ref.perturbation_key(0, 5, g.salt))
    np.testing.assert_allclose(backend.read(g.plus), plus, atol=1e-6)
    np.testing.assert_allclose(backend.read(g.minus), minus, atol=1e-6)
    # Textures get no copies: R perturbs texels as it fetches them.
    assert engine.params.texture.plus is engine.params.texture.theta


def test_perturbation_signs_are_balanced_and_independent():
    s5 = ref.perturbation_signs(ref.perturbation_key(0, 5, 2), np.arange(10000))
    s6 = ref.perturbation_signs(ref.perturbation_key(0, 6, 2), np.arange(10000))
    assert np.all(np.abs(s5) == 1)
    assert np.all(np.abs(s5.mean(0)) < 0.05)
    assert np.mean(s5 == s6) < 0.6  # a new draw each sub-step
    for a, b in ((0, 1), (1, 2), (0, 2)):  # channels of a texel are not tied
        assert abs(np.mean(s5[:, a] * s5[:, b])) < 0.05


@pytest.mark.parametrize("sign", [1, -1])
def test_rasterize_perturbs_texels_as_p_would(backend, sign):
    """R+ / R- fetch theta +- eps * s: the render of P's reference output."""
    engine = small_engine(backend, optimize_positions=False)
    tex = engine.params.texture
    engine.raster.draw(engine.raster.plus, 1, sign=sign, sub=engine.make_substep(7, 0, 1, stratum=-1))
    gpu = backend.read(backend.target_textures(engine.raster.plus)["color"])
    plus, minus = ref.perturb(engine.texture(), tex.count, tex.eps, ref.perturbation_key(0, 7, tex.salt))
    mesh, view = engine.scene.mesh, engine.scene.views[1]
    color, ids, _ = ref.rasterize(mesh.positions, mesh.triangles, mesh.corner_uvs, view.view_projection,
                                  plus if sign > 0 else minus, W, H)
    plain = engine.render(1)
    agree = (plain["id"] == ids) & (ids > 0)
    assert agree.mean() > 0.2
    np.testing.assert_allclose(gpu[agree], color[agree], atol=2e-3)
    assert np.abs(gpu[agree] - plain["color"][agree]).max() > tex.eps / 2


def test_the_pair_render_is_r_plus_and_r_minus_in_one_draw(backend):
    """RASTERIZE_PAIR (a texture step's R+ and R-, one rasterization) gives
    what the two draws give, and G charges the same from it (no jitter, no
    running mean: two sub-steps alike)."""
    engine = small_engine(backend, optimize_positions=False, antialias=False, running_residual=0.0)
    sub = engine.make_substep(5, 2, 1, offset=(0.3, -0.2), stratum=2)
    assert_pair_draw_is_two_draws(engine, sub, min_difference=engine.params.texture.eps)


def test_a_draw_clears_what_the_last_draw_left(backend):
    """Each draw starts from cleared attachments (one framebuffer clear where
    the driver zeroes the integer id with it): a view drawn after another
    equals its own first draw, background included, in every attachment."""
    engine = small_engine(backend, optimize_positions=False)
    assert backend._framebuffer_clears is not None
    sub = engine.make_substep(0, 0, 0, groups=("texture",))
    for target, pair in ((engine.raster.plus, False), (engine.raster.pair, True)):
        first = None
        for view in (1, 2, 1):
            engine.raster.draw(target, view, sign=1 if pair else 0, sub=sub, pair=pair)
            now = {k: backend.read(t) for k, t in backend.target_textures(target).items()}
            if first is None:
                first = now
                assert (now["id"] == 0).mean() > 0.2 and (now["id"] > 0).mean() > 0.2
            elif view == 2:
                assert np.any(now["id"] != first["id"])  # the other view covers other pixels
        assert set(now) == ({"color", "id", "uv", "color_minus"} if pair else {"color", "id", "uv"})
        for key in now:
            np.testing.assert_array_equal(now[key], first[key], err_msg=key)


@pytest.mark.parametrize("srgb", [False, True])
def test_rasterize_matches_reference(backend, srgb):
    """R, with an sRGB texture decoded per texel before the bilinear blend."""
    engine = small_engine(backend)
    engine.scene.texture_srgb = srgb
    view = engine.scene.views[1]
    gpu = engine.render(1)
    mesh = engine.scene.mesh
    color, ids, uvs = ref.rasterize(mesh.positions, mesh.triangles, mesh.corner_uvs,
                                    view.view_projection, engine.texture(), W, H, srgb=srgb)
    if srgb:  # decoding darkens the mid-greys: the flag does something
        plain, _, _ = ref.rasterize(mesh.positions, mesh.triangles, mesh.corner_uvs,
                                    view.view_projection, engine.texture(), W, H)
        assert np.abs(plain - color).max() > 0.1
    agree = gpu["id"] == ids
    assert (ids > 0).mean() > 0.2
    assert agree.mean() > 0.98  # edge pixels may break ties differently
    both = agree & (ids > 0)
    np.testing.assert_allclose(gpu["uv"][both], uvs[both], atol=2e-3)
    np.testing.assert_allclose(gpu["color"][both], color[both], atol=2e-3)
    assert np.all(gpu["color"][ids == 0] == 0)


@pytest.mark.parametrize("estimator,silhouette,loss,strata", [
    ("per_pixel", False, "linear", 4), ("per_pixel", True, "linear", 4), ("per_pixel", False, "srgb", 1),
    ("per_pixel", False, "log", 4), ("full_image", False, "linear", 1)])
def test_accumulate_gradient_matches_reference(backend, estimator, silhouette, loss, strata):
    engine = small_engine(backend, estimator=estimator, silhouette_fraction=1.0 if silhouette else 0.0,
                          texture_strata=strata, pixel_filter="workbench" if loss == "log" else "gaussian")
    sub = engine.make_substep(3, 0, 2)
    assert sub.silhouette_only == silhouette
    srgb = loss == "srgb"
    target = engine.scene.views[2].target
    if srgb:  # the loss of an sRGB texture's fit compares sRGB-encoded values
        engine.loss.srgb = True
        target = ref.encode_srgb(target)
        engine.targets[2] = backend.texture(W, H, "RGBA32F", target)
    if loss == "log":  # Workbench's space: the target is uploaded as log2(c + 1)
        assert engine.loss.flag() == K.FLAG_LOG_LOSS
        target = engine.loss_targets[2]
        np.testing.assert_allclose(target, np.log2(np.clip(engine.scene.views[2].target, 0, 1) + 1), atol=1e-6)
    engine.clear_gradients()
    engine.substep(sub)
    got = engine.read_gradients()
    plus, minus = read_renders(engine, sub)
    mesh, tex = engine.scene.mesh, engine.params.texture
    want = ref.accumulate_gradient(
        plus["color"], minus["color"], np.rint(plus["id"][..., 0]).astype(int),
        np.rint(minus["id"][..., 0]).astype(int), plus["uv"][..., :2], minus["uv"][..., :2],
        target, mesh.triangles, len(mesh.positions), (tex.width, tex.rows),
        key_pos=ref.perturbation_key(0, 3, engine.params.positions.salt),
        key_tex=ref.perturbation_key(0, 3, tex.salt),
        full_image=(estimator == "full_image"), silhouette=silhouette, srgb_loss=srgb,
        tex_stratum=sub.stratum("texture"), log_loss=(loss == "log"), sensitivity=tex.sensitivity)
    assert sub.stratum("texture") == (0 if strata == 4 else -1)
    # SART's sensitivities need one perturbed texel a footprint: strata 4.
    assert tex.sensitivity == (strata == 4 and estimator == "per_pixel")
    resolution = 4.0 / K.FIXED_SCALE  # a few counts per contribution (float32 dL rounding)
    if estimator == "full_image":
        assert got["global"][0] == pytest.approx(want["full"], abs=W * H * resolution)
        assert abs(want["full"]) > 0
        return
    for name in ("positions", "texture"):
        assert np.abs(want[name]).max() > 1e-3, "the test scene must produce gradients"
        np.testing.assert_array_equal(got[name + "_count"], want[name + "_count"])
        tol = (want[name + "_count"] + 1)[..., None] * resolution
        assert np.all(np.abs(got[name] - want[name]) <= tol)
    if tex.sensitivity:
        assert want["texture_sensitivity"].max() > 1e-3
        tol = (want["texture_count"] + 1)[..., None] * resolution
        assert np.all(np.abs(got["texture_sensitivity"] - want["texture_sensitivity"]) <= tol)
    else:
        assert "texture_sensitivity" not in got


@pytest.mark.parametrize("settings", [{}, {"alternate_groups": True, "optimize_positions": False},
                                      {"estimator": "full_image"}])
def test_warm_up_compiles_without_charging(backend, settings):
    """Engine.warm_up runs the fit's G variants and pair draw once so the
    driver compiles them before the first step: it charges nothing, and the
    fit then takes the same steps as one that was not warmed up."""
    warmed, cold = small_engine(backend, **settings), small_engine(backend, **settings)
    warmed.warm_up()
    got = warmed.read_gradients()
    assert all(not np.any(v) for v in got.values()), {k: float(np.abs(v).max()) for k, v in got.items()}
    assert backend.read(warmed.gradient.worklist_length)[0, 0, 0] == 0
    for _ in range(3):
        warmed.step()
        cold.step()
    for a, b in zip(warmed.params.all, cold.params.all):
        np.testing.assert_array_equal(backend.read(a.theta), backend.read(b.theta))


def test_each_kind_of_step_gets_its_g():
    g = K.accumulate_gradient_kernel
    assert g(K.FLAG_POSITIONS | K.FLAG_SILHOUETTE).name == "accumulate_gradient_positions"
    assert g(K.FLAG_TEXTURE | K.FLAG_COUPLED).name == "accumulate_gradient_texels"
    assert g(K.FLAG_TEXTURE | K.FLAG_TEXEL_WEIGHTS).name == "accumulate_gradient_texel_weights"
    assert g(K.FLAG_POSITIONS | K.FLAG_TEXTURE).name == "accumulate_gradient_positions_texels"
    assert g(K.FLAG_FULL_IMAGE | K.FLAG_POSITIONS | K.FLAG_TEXTURE).name == "accumulate_gradient_full_image"
    assert g(K.FLAG_POSITIONS | K.FLAG_TEXEL_WEIGHTS) is K.ACCUMULATE_GRADIENT  # no fit makes it: all in
    assert all(v in K.ALL_KERNELS for v in K.ACCUMULATE_GRADIENT_VARIANTS.values())


@pytest.mark.parametrize("group", ["positions", "texture"])
def test_g_compiled_per_charge_matches_the_reference(backend, group):
    """A step that charges one group runs G compiled with that charge alone
    (accumulate_gradient_kernel): it charges what the reference does, and
    what the all-in kernel does."""
    engine = small_engine(backend)
    pos, tex = engine.params.positions, engine.params.texture
    sub = engine.make_substep(3, 0, 2, offset=(0.25, -0.125), groups=(group,))
    flag = K.FLAG_POSITIONS if group == "positions" else K.FLAG_TEXTURE
    kernel = K.accumulate_gradient_kernel(flag | K.FLAG_SENSITIVITY | K.FLAG_EFFECTIVE_TARGET)
    assert kernel.defines == {**K.ACCUMULATE_GRADIENT.defines, "G_POSITIONS": int(group == "positions"),
                              "G_TEXELS": int(group == "texture"), "G_TEXEL_WEIGHTS": 0, "G_FULL_IMAGE": 0}
    results = []
    for specialized in (True, False):
        engine.gradient.specialized = specialized
        engine.clear_gradients()
        engine.substep(sub)  # the same renders
        results.append(engine.read_gradients())
    got, all_in = results
    plus, minus = read_renders(engine, sub)
    mesh = engine.scene.mesh
    want = ref.accumulate_gradient(
        plus["color"], minus["color"], np.rint(plus["id"][..., 0]).astype(int),
        np.rint(minus["id"][..., 0]).astype(int), plus["uv"][..., :2], minus["uv"][..., :2],
        engine.scene.views[2].target, mesh.triangles, len(mesh.positions), (tex.width, tex.rows),
        key_pos=ref.perturbation_key(0, 3, pos.salt), key_tex=ref.perturbation_key(0, 3, tex.salt),
        positions=group == "positions", texture=group == "texture", tex_stratum=sub.stratum("texture"),
        sensitivity=tex.sensitivity, silhouette=sub.silhouette_only)
    resolution = 4.0 / K.FIXED_SCALE
    assert np.abs(want[group]).max() > 1e-3, "the test scene must produce gradients"
    np.testing.assert_array_equal(got[group + "_count"], want[group + "_count"])
    assert np.all(np.abs(got[group] - want[group]) <= (want[group + "_count"] + 1)[..., None] * resolution)
    other = "texture" if group == "positions" else "positions"
    assert not np.any(got[other]) and not np.any(got[other + "_count"])
    for name in got:
        np.testing.assert_allclose(got[name], all_in[name], atol=resolution)


@pytest.mark.parametrize("pixel_filter,antialias,space,coverage", [
    ("gaussian", True, "linear", False), ("workbench", True, "log", False), ("gaussian", False, "srgb", False),
    ("gaussian", True, "linear", True)])
def test_score_matches_reference(backend, pixel_filter, antialias, space, coverage):
    """score.glsl: the MSE of a view's antialiased render (the weighted mean of
    its sample renders, in log2(c + 1) for Workbench) in the loss's space, as
    numpy computes it from the read-back sample renders; the filtered render
    it leaves is render_color's."""
    engine = small_engine(backend, pixel_filter=pixel_filter, antialias=antialias)
    engine.loss.srgb = space == "srgb"
    engine.loss_targets[1] = engine.loss.encoded(np.clip(engine.scene.views[1].target, 0, 1))
    engine.targets[1] = backend.texture(W, H, "RGBA32F", engine.loss_targets[1])
    assert engine.loss.workbench == (space == "log")
    offsets, weights = engine.samples.points(antialias)
    assert len(offsets) == (1 if not antialias else 22 if pixel_filter == "workbench" else 8)
    samples = []
    for offset in offsets:
        engine.raster.draw(engine.raster.plus, 1, offset=offset)
        samples.append(backend.read(backend.target_textures(engine.raster.plus)["color"]))
    filtered = ref_residual.filtered_render(samples, weights, log=engine.loss.workbench and antialias)
    np.testing.assert_allclose(engine.render_color(1, antialias), filtered, atol=1e-5)
    color = engine.loss.encoded(filtered)
    target = engine.loss_targets[1]
    if coverage:
        color, target = color[..., 3:], target[..., 3:]
    want = float(np.mean((color.astype(np.float64) - target) ** 2))
    got = engine.scorer.score_view(1, antialias, coverage=coverage)
    assert want > 1e-4  # the start differs from the target
    assert got == pytest.approx(want, rel=1e-4)
    assert engine.scorer.score_view(1, antialias, coverage=coverage) == pytest.approx(got, rel=1e-9)  # starts afresh


@pytest.mark.parametrize("pixel_filter", ["gaussian", "workbench"])
def test_residual_target_matches_reference(backend, pixel_filter):
    """The running mean of a view's visits and the target G then compares
    with: s - (mean - t), so G charges (c+ - c-) 2 (mean - t)."""
    engine = small_engine(backend, running_residual=0.25, pixel_filter=pixel_filter, residual_follows_lr=False)
    engine.scene.texture_srgb = engine.loss.srgb = pixel_filter == "gaussian"
    G = engine.gradient
    mean = np.zeros((H, W, 4), np.float32)
    for visit in range(3):
        engine.clear_gradients()
        before = backend.read(G.running_means[2])
        np.testing.assert_allclose(before, mean, atol=1e-5)
        sub = engine.make_substep(visit, 0, 2)
        engine.substep(sub)
        plus, minus = (r["color"] for r in read_renders(engine, sub))
        rate = max(1.0 / (visit + 1), 0.25)
        mean, effective, loss = ref_residual.residual_target(plus, minus, engine.loss_targets[2], mean, rate,
                                                    srgb_loss=engine.loss.srgb, log_loss=engine.loss.workbench)
        np.testing.assert_allclose(backend.read(G.running_means[2]), mean, atol=1e-5)
        np.testing.assert_allclose(backend.read(G.effective_target), effective, atol=1e-5)
        got_loss = float(backend.read_fixed(G.loss_acc, 1)[0, 0, 0])
        assert got_loss == pytest.approx(loss, rel=1e-4, abs=W * H * 4.0 / K.FIXED_SCALE)
        backend.clear(G.loss_acc, 0)
    assert G.view_visits == [0, 0, 3]
    if visit:  # after the first visit the residual is no longer the step's own
        s = 0.5 * (engine.loss.encoded(plus) + engine.loss.encoded(minus))
        assert np.abs(effective - engine.loss_targets[2]).max() > 1e-3
        assert np.abs(s - mean).max() > 1e-4


@pytest.mark.parametrize("charge", ["weights", "perturbation"])
def test_a_sart_visit_charges_the_residual_of_the_filtered_render(backend, charge):
    """A SART visit's mean is the view's filtered render (Workbench's weighted
    log mean of its points), G's target carries the residual in the texels'
    sRGB encoding, and the texels change only at the visit's end. Charged by
    weights, a point's G matches the reference: every footprint texel, 2 w r."""
    engine = small_engine(backend, optimize_positions=False, pixel_filter="workbench", visit_charge=charge)
    engine.scene.texture_srgb = True
    G, raster = engine.gradient, engine.raster
    assert engine.visits_enabled and engine.params.texture.sensitivity
    texture = engine.texture()
    engine.step()
    visit = engine.visits.current
    view, offsets, weights, points = visit.view, visit.offsets, visit.weights, visit.points
    assert visit.first == 0 and len(points) == engine.settings.visit_points > 1
    # A visit's mean leaves out Workbench's faintest points (7 % of the
    # weight; filtered renders keep 22); the charges draw some of the 9.
    assert (offsets, weights) == engine.samples.visit
    assert len(offsets) == 9 < len(engine.samples.antialias[0]) == 22 and len(offsets) > len(points)
    assert engine.visits.length == mean_steps(len(offsets)) + len(points) == 5 + len(points)
    for _ in range(mean_steps(len(offsets)) - 1):  # the mean: two filter points a step
        engine.step()
    mean = backend.read(G.running_means[view])
    filtered = engine.loss.encoded(engine.render_color(view, antialias=True, samples=engine.samples.visit))
    np.testing.assert_allclose(mean, filtered, atol=1e-5)
    single = engine.loss.encoded(engine.render_color(view, antialias=True, samples=(offsets[:-1], weights[:-1])))
    assert np.abs(single - mean).max() > 1e-3  # the last step's lone point counts
    np.testing.assert_array_equal(engine.texture(), texture)
    for k in range(len(points)):
        engine.step()
        if k == 0:
            plus, minus = read_renders(engine, engine.make_substep(0, 0, view, (0.0, 0.0), ("texture",)))
            if charge == "weights":  # one plain render
                plus = minus = {k: backend.read(t) for k, t in backend.target_textures(raster.plus).items()}
            _, want, _ = ref_residual.residual_target(plus["color"], minus["color"], engine.loss_targets[view], mean, 0.0,
                                             log_loss=True, texel_srgb=True)
            effective = backend.read(G.effective_target)
            np.testing.assert_allclose(effective, want, atol=1e-5)
            # The start (the sphere at 0.9x) misses the targets' silhouette: there the texels are asked nothing.
            coverage = np.exp2(mean[..., 3]) - 1, np.exp2(engine.loss_targets[view][..., 3]) - 1
            miss = np.abs(coverage[0] - coverage[1]) > K.COVERAGE_TOLERANCE
            assert 0 < miss.sum() < (coverage[1] > 0.5).sum() / 2
            s = 0.5 * (engine.loss.encoded(plus["color"]) + engine.loss.encoded(minus["color"]))
            np.testing.assert_allclose(effective[miss], s[miss], atol=1e-5)
            np.testing.assert_allclose(backend.read(G.running_means[view]), mean, atol=1e-6)  # kept
            if charge == "weights":
                got = engine.read_gradients()
                ids = np.rint(plus["id"][..., 0]).astype(int)
                expected = ref.accumulate_gradient(
                    plus["color"], plus["color"], ids, ids, plus["uv"][..., :2], plus["uv"][..., :2], effective,
                    engine.scene.mesh.triangles, len(engine.scene.mesh.positions),
                    (engine.params.texture.width, engine.params.texture.rows), 0, 0,
                    positions=False, log_loss=True, texel_weights=True)
                touched = (ids > 0).sum()
                assert expected["texture_count"].sum() > 3 * touched  # most pixels charge 4 texels
                np.testing.assert_array_equal(got["texture_count"], expected["texture_count"])
                tol = (expected["texture_count"] + 1)[..., None] * 4.0 / K.FIXED_SCALE
                for name in ("texture", "texture_sensitivity"):
                    assert np.abs(expected[name]).max() > 1e-3
                    assert np.all(np.abs(got[name] - expected[name]) <= tol)
        if k < len(points) - 1:
            np.testing.assert_array_equal(engine.texture(), texture)
    assert engine.visits.current is None and engine.step_index == engine.visits.length
    assert np.abs(engine.texture() - texture).max() > 0.01


def test_a_visit_without_antialias_renders_and_charges_the_pixel_centre(backend):
    """Targets of pixel-centre samples (antialias off): a visit's mean is the
    plain render, and its one point is charged once."""
    engine = small_engine(backend, optimize_positions=False, antialias=False)
    assert engine.visits_enabled and engine.visits.length == 2
    texture = engine.texture()
    engine.step()  # the mean: one render
    view, points = engine.visits.current.view, engine.visits.current.points
    assert points == [(0.0, 0.0)]
    np.testing.assert_allclose(backend.read(engine.gradient.running_means[view]),
                               engine.loss.encoded(engine.render_color(view)), atol=1e-6)
    engine.step()
    assert engine.visits.current is None and np.abs(engine.texture() - texture).max() > 0.01


def test_residual_follows_the_learning_rate(backend):
    """With residual_follows_lr, each visit replaces at least the current
    learning-rate scale of the mean: at full rate the step's own sample, so
    G's target is the true one (the plain estimator), later a running mean."""
    engine = small_engine(backend, running_residual=0.25, steps=100, lr_decay=0.01, keep_best=False)
    for visit in range(2):
        engine.substep(engine.make_substep(visit, 0, 2))
    np.testing.assert_allclose(backend.read(engine.gradient.effective_target), engine.loss_targets[2], atol=1e-5)
    engine.step_index = 100  # lr scale 0.01: the running share, 0.25, rules
    engine.substep(engine.make_substep(2, 0, 2))
    assert np.abs(backend.read(engine.gradient.effective_target) - engine.loss_targets[2]).max() > 1e-3


def test_worklist_holds_each_touched_texel_once(backend):
    """G appends a texel on its first touch (count 0 -> 1) since the last
    Adam step; the worklist Adam visits is exactly the touched set."""
    engine = small_engine(backend)
    engine.clear_gradients()
    groups = ("positions", "texture")
    engine.substep(engine.make_substep(0, 0, 1, groups=groups))
    engine.substep(engine.make_substep(1, 1, 2, groups=groups))  # a second view: texels seen twice are listed once
    counts = engine.read_gradients()["texture_count"]
    G = engine.gradient
    length = int(backend.read(G.worklist_length)[0, 0, 0])
    entries = backend.read(G.worklist).reshape(-1)[:length].astype(np.int64)
    touched = np.flatnonzero(counts.reshape(-1) > 0)
    assert length == len(touched) > 0
    np.testing.assert_array_equal(np.sort(entries), touched)
    engine.update.adam_step(groups, 0, 2, engine.schedule.lr_scale(1))
    assert backend.read(G.worklist_length)[0, 0, 0] == 0


@pytest.mark.parametrize("texture_update", ["sart", "adam"])
def test_adam_step_matches_reference(backend, texture_update):
    """Adam on positions; on texels Adam or the SART-style step (FLAG_SENSITIVITY)."""
    engine = small_engine(backend, smoothness=50.0, texture_update=texture_update)
    assert engine.params.texture.sensitivity == (texture_update == "sart")
    engine.clear_gradients()
    engine.substep(engine.make_substep(0, 0, 1, groups=("positions", "texture")))
    grads = engine.read_gradients()
    smoothness = engine.update.smoothness
    smoothness.gradient()
    regularizer = backend.read(smoothness.grad)
    groups = {"positions": engine.params.positions, "texture": engine.params.texture}
    before = {name: [backend.read(t) for t in (g.theta, g.moment1, g.moment2)] for name, g in groups.items()}
    engine.update.adam_step(tuple(groups), substep0=0, substeps=1, lr_scale=engine.schedule.lr_scale(1))
    for name, g in groups.items():
        grad, count = grads[name], grads[name + "_count"]
        if name == "positions":
            grad, count = _pack(grad, g), _pack(count[:, None], g)[..., 0]
        reg = regularizer if name == "positions" else None
        theta, m, v = ref.adam_step(
            *before[name], grad, count, t=1, lr=g.lr * engine.settings.lr_decay ** (1 / engine.settings.steps)
            / engine.settings.warmup_steps,
            grad_scale=(engine.settings.texture_strata if name == "texture" else 1) / (2 * g.eps * W * H),
            beta1=0.9, beta2=0.99, clamp01=g.clamp01, regularizer=reg,
            reg_weight=smoothness.weight if reg is not None else 0.0,
            sensitivity=grads.get(name + "_sensitivity"))
        # SART's steps are residual-sized: float32 rounding of the ratio shows a little more.
        np.testing.assert_allclose(backend.read(g.theta), theta, atol=1e-5 if g.lr < 1.0 else 5e-5)
        np.testing.assert_allclose(backend.read(g.moment1), m, rtol=1e-3, atol=1e-12)
        np.testing.assert_allclose(backend.read(g.moment2), v, rtol=1e-3, atol=1e-16)
        assert not np.array_equal(backend.read(g.theta), before[name][0])
    # Adam clears the accumulators.
    after = engine.read_gradients()
    assert np.all(after["texture"] == 0) and np.all(after["texture_count"] == 0)
    assert np.all(after.get("texture_sensitivity", 0) == 0)
    assert np.all(after["positions"] == 0)


def test_a_visits_update_matches_reference(backend):
    """A SART visit's update: the whole relaxation, no running mean (beta1 0),
    the bilinear weights' sensitivity, summed in channel 0 alone, serving
    all three channels (ADAM_SHARED_SENSITIVITY), and damped (SART_DAMPING)."""
    engine = small_engine(backend, optimize_positions=False)
    assert engine.visits_enabled and engine.settings.visit_charge == "weights"
    g = engine.params.texture
    seen = {}
    real = engine.update.adam_step

    def adam_step(groups, substep0, substeps, lr_scale, visit=False):
        seen.update(grads=engine.read_gradients(), substeps=substeps, visit=visit,
                    before=[backend.read(t) for t in (g.theta, g.moment1, g.moment2)])
        real(groups, substep0, substeps, lr_scale, visit)

    engine.update.adam_step = adam_step  # sees the sums the update reads
    for _ in range(engine.visits.length):
        engine.step()
    assert seen["visit"] and seen["substeps"] == engine.settings.visit_points
    sensitivity = seen["grads"]["texture_sensitivity"]
    assert sensitivity[..., 0].max() > 0 and not sensitivity[..., 1:].any()  # one channel summed
    theta, m, v = ref.adam_step(
        *seen["before"], seen["grads"]["texture"], seen["grads"]["texture_count"], t=1,
        lr=engine.settings.texture_rate(True, visit=True),
        grad_scale=engine.settings.texture_strata / (2 * g.eps * seen["substeps"] * W * H),
        beta1=0.0, beta2=engine.settings.beta2, clamp01=True, sensitivity=sensitivity, shared_sensitivity=True,
        damping=engine.update.visit_damping(g))
    changed = np.abs(theta - seen["before"][0]).max(axis=-1) > 1e-3
    assert changed.mean() > 0.05
    np.testing.assert_allclose(backend.read(g.theta), theta, atol=5e-5)
    undamped, _, _ = ref.adam_step(
        *seen["before"], seen["grads"]["texture"], seen["grads"]["texture_count"], t=1,
        lr=engine.settings.texture_rate(True, visit=True), grad_scale=1.0, beta1=0.0, beta2=engine.settings.beta2,
        clamp01=True, sensitivity=sensitivity, shared_sensitivity=True)
    assert np.abs(undamped - theta).max() > 1e-2  # the damping holds back barely seen texels
    np.testing.assert_allclose(backend.read(g.moment2), v, rtol=1e-3, atol=1e-16)


def _pack(values, group):
    out = np.zeros((group.rows * group.width, values.shape[1]), np.float64)
    out[: len(values)] = values
    return out.reshape(group.rows, group.width, values.shape[1])


def _regularizer(engine, positions):
    """L^T (L x - L x0) of `positions` (x0: the engine's start), packed like the parameter texture."""
    mesh = engine.scene.mesh
    start, degree, nb = vertex_adjacency(mesh.triangles, len(mesh.positions))
    rest = ref.laplacian(mesh.positions, start, degree, nb)
    delta = ref.laplacian(positions, start, degree, nb, rest=rest)
    return _pack(ref.laplacian(delta, start, degree, nb, transpose=True), engine.params.positions)


def test_laplacian_matches_reference(backend):
    """The smoothness gradient keeps the start's shape: zero there, and the
    reference's L^T (L x - L x0) once the vertices moved."""
    engine = small_engine(backend, smoothness=1.0)
    smoothness = engine.update.smoothness
    smoothness.gradient()
    assert np.abs(backend.read(smoothness.grad)[..., :3]).max() < 1e-5
    rng = np.random.default_rng(4)
    moved = engine.scene.mesh.positions + rng.normal(0, 0.05, engine.scene.mesh.positions.shape)
    g = engine.params.positions
    backend_theta = _pack(np.c_[moved, np.zeros(len(moved))], g).astype(np.float32)
    g.theta = backend.texture(g.width, g.rows, "RGBA32F", backend_theta)
    smoothness.gradient()
    got = backend.read(smoothness.grad)[..., :3]
    want = _regularizer(engine, moved)[..., :3]
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_copy_matches_reference(backend):
    """COPY keeps and restores the best parameters: a texel-exact copy."""
    engine = small_engine(backend, keep_best=False)
    g = engine.params.texture
    before = backend.read(g.theta)
    assert engine.checkpoint() == pytest.approx(engine.checkpoint_loss())
    np.testing.assert_array_equal(backend.read(engine.keep_best.best.textures["texture"]), before)
    engine.step()
    engine.step()
    assert not np.array_equal(backend.read(g.theta), before)
    assert engine.restore_best()
    np.testing.assert_array_equal(backend.read(g.theta), before)


def test_alternate_groups_perturb_one_group_per_step(backend):
    """Joint fits perturb and update positions on even steps, texture on odd
    (after the silhouette phase)."""
    engine = small_engine(backend, alternate_groups=True, silhouette_fraction=0.0)
    pos, tex = engine.params.positions, engine.params.texture
    start = {g: backend.read(g.theta) for g in (pos, tex)}
    assert engine.schedule.groups(0, ("positions", "texture")) == ("positions",)
    engine.step()
    assert not np.array_equal(backend.read(pos.theta), start[pos])
    np.testing.assert_array_equal(backend.read(tex.theta), start[tex])
    moved = backend.read(pos.theta)
    assert engine.schedule.groups(1, ("positions", "texture")) == ("texture",)
    engine.step()
    np.testing.assert_array_equal(backend.read(pos.theta), moved)
    assert not np.array_equal(backend.read(tex.theta), start[tex])
    assert (pos.updates, tex.updates) == (1, 1)


def test_the_silhouette_phase_moves_the_vertices_alone(backend):
    """Coverage does not depend on the texels: while vertices are charged
    coverage differences only, every step is theirs and the texels stay."""
    engine = small_engine(backend, alternate_groups=True, steps=10, silhouette_fraction=0.3, shape_fraction=0.8)
    pos, tex = engine.params.positions, engine.params.texture
    texels = backend.read(tex.theta)
    for step in range(3):
        assert engine.schedule.groups(step, ("positions", "texture")) == ("positions",)
        engine.step()
    np.testing.assert_array_equal(backend.read(tex.theta), texels)
    assert pos.updates == 3 and tex.updates == 0
    engine.step()
    assert (pos.updates, tex.updates) == (3, 1)  # then they take turns


def test_kernels_fit_the_portable_image_limit():
    for spec in K.ALL_KERNELS:
        assert len(spec.images) <= K.MAX_IMAGES_PER_KERNEL, spec.name


# The constants of RASTERIZE_LIT_FIT before LIT_DRAW: Blender printed "Push
# constants ... already reach N bytes" for N = 136, 136, 144, 152, 144 as they were added.
FORMER_LIT_FIT_CONSTANTS = K.RASTERIZE.push_constants + (
    ("VEC3", "camera_position"), ("FLOAT", "normal_strength"), ("INT", "material_key"), ("FLOAT", "material_eps"),
    ("INT", "material_stratum"), ("INT", "material_channels"), ("INT", "normal_key"), ("FLOAT", "normal_eps"),
    ("INT", "normal_stratum"))
FORMER_WARNINGS = [136, 136, 144, 152, 144]


def test_push_constants_stay_within_128_bytes_as_blender_counts_them():
    """Every kernel's push constants, counted as Blender counts them after
    each one is added, stay at or under 128 bytes (Vulkan's guaranteed size;
    the rest goes in a uniform block); the count is calibrated on Blender's
    warnings for the former lit kernel."""
    sizes = [K.push_constant_bytes(FORMER_LIT_FIT_CONSTANTS[:i]) for i in range(1, len(FORMER_LIT_FIT_CONSTANTS) + 1)]
    assert [n for n in sizes if n > K.MAX_PUSH_CONSTANT_BYTES] == FORMER_WARNINGS
    for spec in K.ALL_KERNELS:
        assert K.max_push_constant_bytes(spec) <= K.MAX_PUSH_CONSTANT_BYTES, spec.name
    lit = (K.RASTERIZE_LIT_FIT, K.RASTERIZE_LIT_FIT_PAIR)
    assert all(spec.uniform_block is K.LIT_DRAW for spec in lit)


def test_blender_builds_every_kernel_without_a_push_constant_warning(backend, capfd):
    """Blender itself agrees: building each kernel's create-info prints no
    "Push constants ... Consider using UBO", where the former lit kernel's
    constants print the sizes push_constant_bytes predicts."""
    import re

    from gpu.types import GPUShaderCreateInfo

    from sge_optimizer.addon.gpu_backend import _create_info

    flush_c_stdio()
    capfd.readouterr()
    former = GPUShaderCreateInfo()
    for kind, name in FORMER_LIT_FIT_CONSTANTS:
        former.push_constant(kind, name)
    flush_c_stdio()
    printed = capfd.readouterr()
    assert [int(n) for n in re.findall(r"already reach (\d+) bytes", printed.out + printed.err)] == FORMER_WARNINGS
    for spec in K.ALL_KERNELS:
        _create_info(spec)
    flush_c_stdio()
    printed = capfd.readouterr()
    assert PUSH_CONSTANT_WARNING not in printed.out + printed.err


def test_a_uniform_block_packs_std140_vec4s():
    """UniformBlock: each member 16 bytes in order, integers as integers
    (a key whose bits spell a NaN passes unchanged), all members required."""
    block = K.LIT_DRAW
    values = {"camera": (1.0, 2.0, 3.0, 0.5), "eps": (0.25, -0.125, 0, 0),
              "material_step": (0x7F800001, -1, 3, 0), "normal_step": (-5, 2, 0, 0)}
    words = np.frombuffer(block.pack(values), np.int32)
    assert words.size == 16
    np.testing.assert_array_equal(words[:8].view(np.float32), [1, 2, 3, 0.5, 0.25, -0.125, 0, 0])
    np.testing.assert_array_equal(words[8:], [0x7F800001, -1, 3, 0, -5, 2, 0, 0])
    assert "struct LitDraw { vec4 camera; vec4 eps; ivec4 material_step; ivec4 normal_step; };" in block.struct_source()
    with pytest.raises(KeyError, match="normal_step"):
        block.pack({k: v for k, v in values.items() if k != "normal_step"})


def test_fixed_point_sum_carries_past_32_bits(backend):
    """4 units per pixel over 1024 x 1024 pixels is 2**46 counts: the 64-bit
    (hi, lo) accumulator must hold it exactly."""
    mesh = synthetic.uv_sphere(6, 3)
    size = 1024
    target = np.ones((size, size, 4), np.float32)
    behind = synthetic.perspective(0.8, 1.0) @ synthetic.look_at((0, 0, 5.0), (0, 0, 10.0))
    views = [View("away", behind.astype(np.float32), target)]
    engine = Engine(backend, SceneArrays(mesh, flat_texture(4), views),
                    Settings(optimize_positions=False))
    engine.substep(engine.make_substep(0, 0, 0))
    assert engine.take_loss_estimate() == pytest.approx(4.0, abs=1e-6)


def test_dispatch_sees_previous_pass_writes(backend):
    """Barrier check: P's output is what R reads, R's output what G reads, in
    back-to-back passes without readback in between. A run that reads every
    pass's outputs back before the next pass starts (which waits for the GPU)
    is the reference: a missing barrier reads stale data and differs."""
    from sge_optimizer.addon.gpu_backend import BlenderGPUBackend

    class ReadBetweenPasses(BlenderGPUBackend):
        def dispatch(self, spec, groups, images, samplers, constants):
            super().dispatch(spec, groups, images, samplers, constants)
            for texture in images.values():
                texture.read()  # raw: an R32I one reads as garbage, but it is read, after the pass

        def draw(self, spec, target, batch, samplers, constants):
            super().draw(spec, target, batch, samplers, constants)
            self.finish()
            for texture in self.target_textures(target).values():
                texture.read()

    engines = small_engine(backend), small_engine(ReadBetweenPasses())
    for step in range(3):
        got = []
        for engine in engines:
            engine.clear_gradients()
            engine.substep(engine.make_substep(step, 0, 0))
            got.append(engine.read_gradients())
        assert np.abs(got[0]["texture"]).sum() > 0 and np.abs(got[0]["positions"]).sum() > 0
        assert got[0].keys() == got[1].keys()
        for name in got[0]:
            np.testing.assert_array_equal(got[0][name], got[1][name], err_msg=f"step {step}: {name}")