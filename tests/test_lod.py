"""Fit LOD to Reference (addon/lod.py): the decimated, unwrapped, baked copy,
the engine-judged keep-or-revert, and refusals that change nothing."""
from __future__ import annotations

import math

import bpy
import scenes
import numpy as np
import pytest

from sge_optimizer.addon import lod
from sge_optimizer.addon.errors import InputError


def lit_reference(scene, sun: bool = True, world=(0.25, 0.25, 0.3)):
    ref = scenes.lod_reference(scene, segments=32, rings=16, texture=128, sun=sun, world=world)
    scene.eevee.taa_render_samples = 4
    return ref


def _positions(obj):
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co


def test_fit_lod_makes_a_baked_decimated_copy_and_hands_back_no_worse(empty_scene, tmp_path):
    scene = empty_scene
    ref = lit_reference(scene)
    ref_co = _positions(ref)
    scene.view_settings.view_transform = "AgX" if "AgX" in {
        i.identifier for i in scene.view_settings.bl_rna.properties["view_transform"].enum_items} else "Filmic"
    engine_before, transform_before = scene.render.engine, scene.view_settings.view_transform
    bake = scene.render.bake
    bake_before = (bake.use_selected_to_active, bake.cage_extrusion, bake.max_ray_distance, bake.margin)
    options = lod.LodOptions(ratio=0.2, texture_size=64, target_views=3, held_out_views=2, resolution=48, steps=30,
                             pictures=str(tmp_path))
    summary = lod.fit_lod(ref, options, scene=scene)
    for name in ("reference", "baked", "fitted"):  # the README's before/after pictures
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    copy = bpy.data.objects[summary["lod"]]
    assert 0.15 * summary["triangles_reference"] <= summary["triangles_lod"] <= 0.25 * summary["triangles_reference"]
    assert [uv.name for uv in copy.data.uv_layers] == ["UVMap"]
    for name in summary["images"].values():
        image = bpy.data.images[name]
        assert tuple(image.size) == (64, 64)
        px = np.empty(64 * 64 * 4, np.float32)
        image.pixels.foreach_get(px)
        assert np.isfinite(px).all()
    base = np.empty(64 * 64 * 4, np.float32)
    bpy.data.images[summary["images"]["base color"]].pixels.foreach_get(base)
    assert base.reshape(-1, 4)[:, :3].std() > 0.05  # the noise was baked down, not left flat
    # The engine's own renders judge: held-out is reported for the kept maps, never below the bake
    # when the bake was kept, and the decision follows the target views.
    assert math.isfinite(summary["psnr_held_out_before"]) and summary["psnr_held_out_before"] > 20
    # No render of the copy beats what any maps could (its silhouettes' error alone).
    assert summary["psnr_held_out_ceiling"] >= max(summary["psnr_held_out_before"], summary["psnr_held_out_after"])
    if summary["kept"] == "baked":
        assert summary["psnr_held_out_after"] == summary["psnr_held_out_before"]
    else:
        assert summary["psnr_targets_after"] >= summary["psnr_targets_before"]
    # The reference and the scene's render settings are as they were.
    np.testing.assert_array_equal(_positions(ref), ref_co)
    assert not ref.hide_render
    assert (scene.render.engine, scene.view_settings.view_transform) == (engine_before, transform_before)
    assert (bake.use_selected_to_active, bake.cage_extrusion, bake.max_ray_distance, bake.margin) == bake_before
    assert len(bpy.data.collections[summary["target_cameras"]].objects) == 3
    assert summary["lod"] in lod.summary_text(summary)


def test_coverage_ceiling_leaves_only_what_the_silhouette_decides():
    truth = np.zeros((4, 4, 4))
    truth[...] = (0.8, 0.8, 0.8, 1.0)  # opaque everywhere
    render = np.zeros((4, 4, 4))
    render[:, :2] = (0.1, 0.2, 0.3, 1.0)  # left half covered whole: any colour there is reachable
    render[:, 2:3, 3] = 0.5  # half covered: at most 0.5 of colour, alpha 0.5 short
    # The right column is uncovered: colour and alpha all missed.
    right = 3 * 0.8 ** 2 + 1.0
    half = 3 * 0.3 ** 2 + 0.5 ** 2
    mse = (half + right) / 4 / 4  # a quarter of the pixels each, four channels
    assert lod.coverage_ceiling([render], [truth]) == pytest.approx(-10 * math.log10(mse))
    # Mean over views, like the held-out PSNR it bounds.
    full = truth.copy()
    full[:, 2:] = 0.0
    both = lod.coverage_ceiling([render, render], [truth, full])
    assert both == pytest.approx((lod.coverage_ceiling([render], [truth]) + lod.coverage_ceiling([render], [full])) / 2)


@pytest.mark.parametrize("case", ["not a mesh", "ratio", "dark scene", "hidden"])
def test_fit_lod_refuses_bad_input_and_changes_nothing(empty_scene, case):
    scene = empty_scene
    ref = lit_reference(scene, sun=(case != "dark scene"), world=(0, 0, 0) if case == "dark scene" else (0.2,) * 3)
    options = lod.LodOptions(ratio=0.0 if case == "ratio" else 0.2, texture_size=64, target_views=2,
                             held_out_views=1, resolution=32, steps=5)
    target = bpy.data.objects["Sun"] if case == "not a mesh" else ref
    if case == "hidden":
        ref.hide_set(True)
    counts = (len(bpy.data.objects), len(bpy.data.images), len(bpy.data.meshes), len(bpy.data.materials))
    with pytest.raises(InputError) as err:
        lod.fit_lod(target, options, scene=scene)
    assert {"not a mesh": "mesh", "ratio": "ratio", "dark scene": "nothing to see",
            "hidden": "unhide"}[case] in str(err.value)
    assert (len(bpy.data.objects), len(bpy.data.images), len(bpy.data.meshes), len(bpy.data.materials)) == counts


@pytest.fixture
def registered(backend, empty_scene):
    import sge_optimizer

    sge_optimizer.register()
    yield empty_scene
    sge_optimizer.unregister()


def test_the_operator_makes_the_copy_and_one_undo_removes_it(registered):
    scene = registered
    ref = lit_reference(scene)
    bpy.context.view_layer.objects.active = ref
    before = {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in ("objects", "images", "meshes")}
    bpy.ops.ed.undo_push(message="Before LOD")
    assert bpy.ops.sge.fit_lod("EXEC_DEFAULT", True, ratio=0.2, texture_size=32, target_views=2,
                               held_out_views=1, resolution=32, steps=5) == {"FINISHED"}
    assert "Reference LOD" in bpy.data.objects
    assert bpy.ops.ed.undo() == {"FINISHED"}
    after = {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in ("objects", "images", "meshes")}
    assert after == before


def test_a_failure_midway_leaves_nothing_behind(empty_scene):
    """An error (here: an interrupt while baking) removes the half-made copy,
    its images, cameras and collections, and puts the render settings back."""
    scene = empty_scene
    ref = lit_reference(scene)
    kinds = ("objects", "meshes", "materials", "images", "cameras", "collections")
    before = {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in kinds}
    engine = scene.render.engine

    def interrupt(text):
        if text.startswith("rendering"):
            raise KeyboardInterrupt

    options = lod.LodOptions(ratio=0.2, texture_size=32, target_views=2, held_out_views=1, resolution=32, steps=5)
    with pytest.raises(KeyboardInterrupt):
        lod.fit_lod(ref, options, scene=scene, progress=interrupt)
    assert {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in kinds} == before
    assert scene.render.engine == engine and not ref.hide_render


# From the UI: a unit of work per tick (addon/operator_runs.py LodDriver) ------------------
def _small_options(**overrides):
    return lod.LodOptions(**{"ratio": 0.2, "texture_size": 32, "target_views": 2, "held_out_views": 1,
                             "resolution": 32, "steps": 40, **overrides})


def test_the_lod_driver_runs_the_job_a_unit_per_tick(empty_scene):
    """The operator's modal path: each tick is one bake, one render or one
    slice of the fit; the job ends as the blocking one does."""
    from sge_optimizer.addon import operator_runs

    scene = empty_scene
    ref = lit_reference(scene)
    driver = operator_runs.LodDriver(ref, _small_options(), scene, fit_budget_s=0.001)
    driver.start()
    assert driver.message == "making the copy" and "Reference LOD" not in bpy.data.objects
    messages = []
    while driver.tick() == operator_runs.RUNNING:
        messages.append(driver.message)
    assert driver.state == operator_runs.FINISHED, driver.error
    assert driver.summary["lod"] in bpy.data.objects and math.isfinite(driver.summary["psnr_held_out_after"])
    # 2 target and 1 held-out renders of the reference, each view again for the bake and the
    # fit, the bake, and the fit in slices (at least one step each).
    fitting = [m for m in messages if m.startswith("step")]
    assert len(fitting) >= 5, messages
    assert driver.ticks >= 3 + 3 + 2 + len(fitting)
    assert not ref.hide_render


def test_stopping_the_lod_driver_midway_removes_what_it_made(empty_scene):
    """Esc during the fit: the copy, its images, cameras and collections go,
    and the render settings and the reference are as they were."""
    from sge_optimizer.addon import operator_runs

    scene = empty_scene
    ref = lit_reference(scene)
    kinds = ("objects", "meshes", "materials", "images", "cameras", "collections")
    before = {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in kinds}
    engine, resolution = scene.render.engine, scene.render.resolution_x
    driver = operator_runs.LodDriver(ref, _small_options(steps=400), scene, fit_budget_s=0.001)
    driver.start()
    # The modal operator's events (LodDriver.on_event): a timer runs a unit, others pass through.
    while not driver.message.startswith("step"):
        assert driver.on_event("TIMER", "NOTHING") == operator_runs.RUNNING, driver.error
    assert "Reference LOD" in bpy.data.objects  # made, baked, rendered, fitting
    ticks, message = driver.ticks, driver.message
    assert driver.on_event("MOUSEMOVE", "NOTHING") is None and driver.on_event("ESC", "RELEASE") is None
    assert (driver.ticks, driver.message) == (ticks, message)
    assert driver.on_event("ESC", "PRESS") == operator_runs.CANCELLED and "stopped" in driver.error
    assert {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in kinds} == before
    assert (scene.render.engine, scene.render.resolution_x) == (engine, resolution)
    assert not ref.hide_render
    assert driver.tick() == operator_runs.CANCELLED  # nothing more happens


# Keeping the bake, and cleaning up after errors ----------------------------------------
def _lod_maps(name: str) -> dict:
    """{image name: pixels} of the copy's material, and its Principled BSDF's unlinked constants."""
    mat = bpy.data.objects[name].active_material
    maps = {}
    for node in mat.node_tree.nodes:
        if node.type == "TEX_IMAGE" and node.image is not None:
            px = np.empty(len(node.image.pixels), np.float32)
            node.image.pixels.foreach_get(px)
            maps[node.image.name] = px
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    constants = {k: bsdf.inputs[k].default_value for k in ("Roughness", "Metallic") if not bsdf.inputs[k].is_linked}
    return maps, constants


def test_a_fit_worse_than_the_bake_puts_the_bake_back(empty_scene, monkeypatch):
    """When the fitted copy renders worse than the baked one on the target
    views, the baked pixels and the constants the fit changed are put back
    exactly. The fit is made worse than any fit by scrambling what it wrote."""
    from sge_optimizer.addon import fit_run

    scene = empty_scene
    ref = lit_reference(scene)
    baked = {}

    def progress(text):
        if text == "fitting":  # baked, not yet fitted
            baked["maps"], baked["constants"] = _lod_maps("Reference LOD")

    real_finish = fit_run.OptimizationRun.finish

    def worse_finish(self):
        summary = real_finish(self)
        maps, constants = _lod_maps("Reference LOD")
        for name, px in maps.items():
            image = bpy.data.images[name]
            image.pixels.foreach_set(np.random.default_rng(1).random(px.size, dtype=np.float32))
            image.update()
        bsdf = next(n for n in self.inputs.obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        for channel in summary.get("material", {}):  # the constants this fit changed
            bsdf.inputs[channel.title()].default_value = 0.02
        return summary

    monkeypatch.setattr(fit_run.OptimizationRun, "finish", worse_finish)
    options = _small_options(steps=10)
    summary = lod.fit_lod(ref, options, scene=scene, progress=progress)
    assert summary["kept"] == "baked", summary
    assert summary["psnr_targets_after"] < summary["psnr_targets_before"]
    maps, constants = _lod_maps(summary["lod"])
    assert baked["maps"] and maps.keys() == baked["maps"].keys()
    assert set(summary["images"].values()) <= set(maps)
    for name, px in maps.items():
        np.testing.assert_array_equal(px, baked["maps"][name], err_msg=name)
    # The reference's constant roughness: fitted, scrambled, put back; the rest untouched.
    assert "roughness" in summary["fit"].get("material", {}), summary["fit"]
    assert constants == pytest.approx(baked["constants"]) and constants["Roughness"] != pytest.approx(0.02)
    assert summary["psnr_held_out_after"] == summary["psnr_held_out_before"]
    assert "kept the bake" in lod.summary_text(summary)


def _names(kinds=("objects", "meshes", "materials", "images", "cameras", "collections")):
    return {kind: sorted(x.name for x in getattr(bpy.data, kind)) for kind in kinds}


def _break(monkeypatch, where: str) -> None:
    """An error in the bake (after it made its images) or in the fit's first slice."""
    from sge_optimizer.addon import fit_run

    if where == "bake":
        real_bake = lod.bake_down

        def broken_bake(*args, **kwargs):
            real_bake(*args, **kwargs)
            raise RuntimeError("simulated bake failure")

        monkeypatch.setattr(lod, "bake_down", broken_bake)
    else:
        def broken_advance(self, *args, **kwargs):
            self.engine.step()
            raise RuntimeError("simulated fit failure")

        monkeypatch.setattr(fit_run.OptimizationRun, "advance", broken_advance)


@pytest.mark.parametrize("where", ["bake", "fit"])
def test_an_error_in_the_bake_or_the_fit_leaves_nothing_behind(empty_scene, monkeypatch, where):
    scene = empty_scene
    ref = lit_reference(scene)
    before, engine, resolution = _names(), scene.render.engine, scene.render.resolution_x
    ref_co = _positions(ref)
    _break(monkeypatch, where)
    with pytest.raises(RuntimeError, match=f"simulated {where} failure"):
        lod.fit_lod(ref, _small_options(steps=5), scene=scene)
    assert _names() == before
    assert (scene.render.engine, scene.render.resolution_x) == (engine, resolution)
    assert not ref.hide_render
    np.testing.assert_array_equal(_positions(ref), ref_co)


@pytest.mark.parametrize("where", ["bake", "fit"])
def test_an_error_through_the_lod_driver_leaves_nothing_behind(empty_scene, monkeypatch, where):
    """The operator's path: the tick that fails ends the job CANCELLED with
    the reason, and what the job made is gone."""
    from sge_optimizer.addon import operator_runs

    scene = empty_scene
    ref = lit_reference(scene)
    before, engine = _names(), scene.render.engine
    _break(monkeypatch, where)
    driver = operator_runs.LodDriver(ref, _small_options(steps=5), scene, fit_budget_s=0.001)
    driver.start()
    ticks = 0
    while driver.tick() == operator_runs.RUNNING:
        ticks += 1
        assert ticks < 100
    assert driver.state == operator_runs.CANCELLED and f"simulated {where} failure" in driver.error
    assert _names() == before
    assert scene.render.engine == engine and not ref.hide_render
    assert driver.tick() == operator_runs.CANCELLED  # nothing more happens
