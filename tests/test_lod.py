"""Fit LOD to Reference (addon/lod.py): the decimated, unwrapped, baked copy,
the engine-judged keep-or-revert, and refusals that change nothing."""
from __future__ import annotations

import math

import bpy
import scenes
import numpy as np
import pytest

from sge_optimizer.addon import lod, scene_inputs
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
    # The engine's own renders judge, on the held-out views (never trained on): the fit is kept only if
    # it scores at least the bake there, and held-out is reported for the kept maps.
    assert math.isfinite(summary["psnr_held_out_before"]) and summary["psnr_held_out_before"] > 20
    # No render of the copy beats what any maps could (its silhouettes' error alone).
    assert summary["psnr_held_out_ceiling"] >= max(summary["psnr_held_out_before"], summary["psnr_held_out_after"])
    if summary["kept"] == "baked":
        assert summary["psnr_held_out_after"] == summary["psnr_held_out_before"] > summary["psnr_held_out_fitted"]
    else:
        assert summary["psnr_held_out_after"] == summary["psnr_held_out_fitted"] >= summary["psnr_held_out_before"]
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


REFUSALS = {"not a mesh": "mesh", "ratio": "ratio", "dark scene": "nothing to see",
            "hidden": "'Reference' is hidden", "steps": "steps must be", "cycles samples": "Cycles samples",
            "nan vertex": "vertex 7 of 'Reference' lies at (nan,", "huge vertex": "vertex 7 of 'Reference' lies at (",
            "excluded": "'Reference' is in collection 'Excluded', which is excluded from view layer"}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_fit_lod_refuses_bad_input_and_changes_nothing(empty_scene, case):
    """Refused at the first step, before the copy, the bake or a render, and
    named by the user's object and vertex (not the temporary copy's)."""
    scene = empty_scene
    ref = lit_reference(scene, sun=(case != "dark scene"), world=(0, 0, 0) if case == "dark scene" else (0.2,) * 3)
    options = lod.LodOptions(ratio=0.0 if case == "ratio" else 0.2, texture_size=64, target_views=2,
                             held_out_views=1, resolution=32, steps=-5 if case == "steps" else 5,
                             render_engine="CYCLES" if case == "cycles samples" else "EEVEE",
                             cycles_samples=0 if case == "cycles samples" else 64)
    target = bpy.data.objects["Sun"] if case == "not a mesh" else ref
    if case == "hidden":
        ref.hide_set(True)
    if case in ("nan vertex", "huge vertex"):
        ref.data.vertices[7].co = (float("nan") if case == "nan vertex" else 1e30, 0.0, 0.0)
    if case == "excluded":
        excluded = bpy.data.collections.new("Excluded")
        scene.collection.children.link(excluded)
        for collection in ref.users_collection:
            collection.objects.unlink(ref)
        excluded.objects.link(ref)
        bpy.context.view_layer.layer_collection.children["Excluded"].exclude = True
    counts = (len(bpy.data.objects), len(bpy.data.images), len(bpy.data.meshes), len(bpy.data.materials))
    reported = []
    with pytest.raises(InputError) as err:
        lod.fit_lod(target, options, scene=scene, progress=reported.append)
    assert REFUSALS[case] in str(err.value)
    assert "Reference LOD" not in str(err.value)
    if case == "excluded":
        assert "unhide" not in str(err.value)
    assert reported == []  # nothing was started
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
    # A calling script's view layer holds no stale (None) entries for what was removed.
    assert None not in list(bpy.context.view_layer.objects)
    assert all(o.select_get() in (True, False) for o in bpy.context.view_layer.objects)


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


# What it handles (issue 23): each run is tiny, by Cycles at 1 sample a pixel --------------
def _cycles_options(**overrides):
    return lod.LodOptions(**{"ratio": 0.3, "texture_size": 16, "target_views": 1, "held_out_views": 1,
                             "resolution": 16, "render_engine": "CYCLES", "cycles_samples": 1, "steps": 3,
                             **overrides})


def _mean_rgb(image_name):
    image = bpy.data.images[image_name]
    px = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(-1, 4)[:, :3]


def test_no_held_out_views_runs_without_held_out_scoring(registered):
    """0 held-out views (the dialog's minimum): the run is judged on its
    targets only, and says so; from the API and from the operator."""
    scene = registered
    ref = lit_reference(scene)
    summary = lod.fit_lod(ref, _cycles_options(held_out_views=0), scene=scene)
    assert summary["psnr_held_out_before"] is None and summary["psnr_held_out_after"] is None
    assert summary["psnr_held_out_ceiling"] is None and summary["held_out_cameras"] is None
    assert summary["kept"] in ("fitted", "baked") and math.isfinite(summary["psnr_targets_after"])
    assert "no held-out views" in lod.summary_text(summary)
    bpy.context.view_layer.objects.active = ref
    assert bpy.ops.sge.fit_lod("EXEC_DEFAULT", True, ratio=0.3, texture_size=16, target_views=1, held_out_views=0,
                               resolution=16, render_engine="CYCLES", steps=3) == {"FINISHED"}


def test_a_reference_without_a_uv_map_is_unwrapped_and_baked(empty_scene):
    """High-poly sculpts rarely have UVs; the copy gets its own unwrap."""
    scene = empty_scene
    ref = lit_reference(scene)
    while ref.data.uv_layers:
        ref.data.uv_layers.remove(ref.data.uv_layers[0])
    summary = lod.fit_lod(ref, _cycles_options(), scene=scene)
    assert [uv.name for uv in bpy.data.objects[summary["lod"]].data.uv_layers] == ["UVMap"]
    assert not ref.data.uv_layers  # the reference is left as it was
    assert np.isfinite(_mean_rgb(summary["images"]["normal"])).all()


def _emission_surface(ref, mix: bool):
    """The reference's image through an Emission node, alone or mixed half
    and half with its Principled BSDF, on the Material Output."""
    tree = ref.active_material.node_tree
    nodes, links = tree.nodes, tree.links
    output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    emission = nodes.new("ShaderNodeEmission")
    links.new(next(n for n in nodes if n.type == "TEX_IMAGE").outputs["Color"], emission.inputs["Color"])
    if mix:
        mixer = nodes.new("ShaderNodeMixShader")
        links.new(bsdf.outputs[0], mixer.inputs[1])
        links.new(emission.outputs[0], mixer.inputs[2])
        links.new(mixer.outputs[0], output.inputs["Surface"])
    else:
        links.new(emission.outputs[0], output.inputs["Surface"])


@pytest.mark.parametrize("surface", ["emission", "mix"])
def test_an_emission_or_mix_surface_is_baked_where_it_can_be(empty_scene, surface):
    """The reference is only rendered and baked: what a bake can read is
    baked, the rest starts from a neutral value, and the summary says which."""
    scene = empty_scene
    ref = lit_reference(scene)
    _emission_surface(ref, mix=surface == "mix")
    started = {}

    def progress(text):  # the maps the fit starts from, as the baked copy is rendered
        if text == "rendering the baked copy":
            started["base color"] = _mean_rgb("Reference LOD base color").copy()

    summary = lod.fit_lod(ref, _cycles_options(steps=1), scene=scene, progress=progress)
    warning = " ".join(summary["warnings"])
    assert "'reference'" in warning and ("'Emission'" if surface == "emission" else "'Mix Shader'") in warning
    copy = bpy.data.objects[summary["lod"]]
    bsdf = next(n for n in copy.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    if surface == "emission":  # no BSDF to bake colour or roughness from: neutral starts
        assert "base colour starts at grey" in warning and "roughness at 0.5" in warning
        assert "roughness" not in summary["images"]
        np.testing.assert_allclose(started["base color"], 0.5, atol=1 / 255)  # 8 bits a channel
        assert summary["fit"]["material"]["roughness"]["before"] == pytest.approx(0.5)
    else:  # the Principled BSDF inside the mix is baked
        assert "roughness" in summary["images"] and bsdf.inputs["Roughness"].is_linked
        assert started["base color"].std() > 0.05
    assert summary["lod"] in lod.summary_text(summary)


def test_a_copy_with_the_references_silhouettes_has_no_ceiling():
    """--ratio 1: the copy covers what the reference covers, so any maps
    could match it: the ceiling is infinite (not float rounding's 353 dB)
    and the summary line names none."""
    rng = np.random.default_rng(1)
    alpha = rng.random((8, 8, 1))
    # Premultiplied float32, as `lod.premultiplied` reads renders; the same coverage.
    truth = np.concatenate([rng.random((8, 8, 3)) * alpha, alpha], -1).astype(np.float32)
    render = np.concatenate([rng.random((8, 8, 3)) * alpha, alpha], -1).astype(np.float32)
    assert lod.coverage_ceiling([render], [truth]) == math.inf
    summary = {"lod": "Ref LOD", "triangles_lod": 10, "triangles_reference": 10, "render_engine": "EEVEE",
               "psnr_held_out_before": 40.0, "psnr_held_out_after": 41.0, "psnr_held_out_ceiling": math.inf,
               "kept": "fitted", "seconds": 3.0}
    text = lod.summary_text(summary)
    assert "40.0 -> 41.0" in text and "at most" not in text and "inf" not in text

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
            baked["vertices"] = scene_inputs.read_local_positions(bpy.data.objects["Reference LOD"])

    real_finish = fit_run.OptimizationRun.finish

    def worse_finish(self):
        summary = real_finish(self)
        lod_obj = bpy.data.objects["Reference LOD"]
        assert self.settings.optimize_positions  # the joint fit moves the copy's vertices too
        moved = scene_inputs.read_local_positions(lod_obj) + np.float32(0.05)
        lod_obj.data.vertices.foreach_set("co", moved.ravel())
        lod_obj.data.update()
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
    assert summary["psnr_held_out_fitted"] < summary["psnr_held_out_before"]  # judged where it did not train
    maps, constants = _lod_maps(summary["lod"])
    assert baked["maps"] and maps.keys() == baked["maps"].keys()
    assert set(summary["images"].values()) <= set(maps)
    for name, px in maps.items():
        np.testing.assert_array_equal(px, baked["maps"][name], err_msg=name)
    # The reference's constant roughness: fitted, scrambled, put back; the rest untouched.
    assert "roughness" in summary["fit"].get("material", {}), summary["fit"]
    assert constants == pytest.approx(baked["constants"]) and constants["Roughness"] != pytest.approx(0.02)
    # ... and the decimated vertices with them.
    np.testing.assert_array_equal(scene_inputs.read_local_positions(bpy.data.objects[summary["lod"]]),
                                  baked["vertices"])
    assert summary["psnr_held_out_after"] == summary["psnr_held_out_before"]
    assert "kept the bake" in lod.summary_text(summary)


def test_keep_shape_fits_the_maps_alone():
    """Move Vertices off (--keep-shape): the LOD's fit leaves the vertices,
    with the one-group preset's steps; on (the default) a joint fit's."""
    from sge_optimizer.engine.settings import quality_preset

    joint, maps = lod.LodOptions().fit_settings(), lod.LodOptions(fit_positions=False).fit_settings()
    assert joint.optimize_positions and joint.steps == quality_preset("standard", joint=True)["steps"]
    assert not maps.optimize_positions and maps.steps == quality_preset("standard", joint=False)["steps"]
    assert maps.optimize_texture and maps.optimize_normal and maps.lit


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


@pytest.mark.parametrize("options", [{"triangles": 100}, {"ratio": 0.005}])
def test_a_triangle_budget_and_a_half_percent_ratio(empty_scene, options):
    """--triangles N keeps at most N triangles (near N); --ratio 0.005 keeps 0.5 %."""
    scene = empty_scene
    ref = lit_reference(scene)
    summary = lod.fit_lod(ref, _cycles_options(**{"ratio": 0.3, **options}), scene=scene)
    reference, kept = summary["triangles_reference"], summary["triangles_lod"]
    if "triangles" in options:
        assert 70 <= kept <= 100 and summary["triangle_budget"] == 100, (reference, kept)
    else:
        assert kept <= 0.01 * reference and summary["triangle_budget"] is None, (reference, kept)
    assert summary["kept"] in ("fitted", "baked")


def test_a_triangle_budget_below_four_is_refused():
    with pytest.raises(InputError, match="triangle budget"):
        lod.LodOptions(triangles=3).validate()
