"""Blender data -> arrays -> Blender data, and every bad input refused with a
clear message while nothing in the scene changes."""
from __future__ import annotations

import math
import os
import tracemalloc

import bmesh
import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

import demo
from sge_optimizer.addon import gpu_context, image_pixels, scene_inputs, target_setup
from sge_optimizer.engine.color import linear_to_srgb
from sge_optimizer.addon.api import OptimizationRun, optimize
from sge_optimizer.addon.errors import InputError
from sge_optimizer.engine import Settings, memory


@pytest.fixture
def small_scene(backend):
    source, collection = demo.build_scene(cameras=4, resolution=48, texture_size=16)
    yield source, collection
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")


def snapshot():
    """Everything a failed validation must leave alone."""
    state = {"objects": sorted(o.name for o in bpy.data.objects),
             "images": sorted(i.name for i in bpy.data.images),
             "meshes": sorted(m.name for m in bpy.data.meshes)}
    for obj in bpy.data.objects:
        if obj.type == "MESH":
            state[obj.name] = scene_inputs.read_local_positions(obj).tobytes()
    for image in bpy.data.images:
        if image.size[0] > 0:  # reading .pixels loads a packed image if it is not yet
            px = np.empty(len(image.pixels), np.float32)
            image.pixels.foreach_get(px)
            state["img " + image.name] = px.tobytes()
    return state


def refuse(obj, collection, *words, settings=None, resolution=32):
    before = snapshot()
    with pytest.raises(InputError) as err:
        OptimizationRun(obj, collection, settings or Settings(steps=2), resolution=resolution)
    message = str(err.value)
    for word in words:
        assert word.lower() in message.lower(), message
    assert snapshot() == before
    return message


def test_reads_mesh_uvs_texture_cameras_and_targets(small_scene):
    source, collection = small_scene
    inputs = scene_inputs.read_scene(source, collection, 32)
    mesh = inputs.arrays.mesh
    # The UV sphere has quads and triangle fans: triangulated internally.
    assert len(mesh.triangles) == sum(len(p.vertices) - 2 for p in source.data.polygons)
    assert mesh.positions.shape == (len(source.data.vertices), 3)
    assert inputs.arrays.texture.shape == (16, 16, 4)
    assert len(inputs.arrays.views) == 4 and inputs.arrays.resolution == (32, 32)
    for view in inputs.arrays.views:
        assert 0.05 < view.target[..., 3].mean() < 0.95  # the reference covers part of the frame
    assert inputs.encoding == "linear"  # renders and targets are compared in linear light
    assert inputs.arrays.texture_srgb  # the sRGB texture is decoded by the rasterizer


def test_ngons_are_triangulated_internally(small_scene):
    source, collection = small_scene
    bm = bmesh.new()
    bm.from_mesh(source.data)
    bmesh.ops.dissolve_faces(bm, faces=[f for f in bm.faces if f.calc_center_median().z > 0.6])
    bm.to_mesh(source.data)
    bm.free()
    assert max(len(p.vertices) for p in source.data.polygons) > 4
    inputs = scene_inputs.read_scene(source, collection, 32)
    assert len(inputs.arrays.mesh.triangles) == sum(len(p.vertices) - 2 for p in source.data.polygons)


@pytest.mark.parametrize("kind", ["persp", "ortho", "shifted", "vertical_fit"])
def test_camera_matrices_match_blender(empty_scene, kind):
    scene = empty_scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    data = bpy.data.cameras.new("cam")
    if kind == "ortho":
        data.type, data.ortho_scale = "ORTHO", 3.0
    if kind == "shifted":
        data.shift_x, data.shift_y = 0.1, -0.05
    if kind == "vertical_fit":
        data.sensor_fit = "VERTICAL"
    cam = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(cam)
    cam.location = (4.0, -3.0, 2.0)
    cam.rotation_euler = (Vector((0, 0, 0)) - cam.location).to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()
    m = scene_inputs.view_projection(cam, scene, 64, 48)
    rng = np.random.default_rng(0)
    for p in rng.uniform(-1, 1, (20, 3)):
        clip = m @ np.append(p, 1.0)
        ndc = clip[:2] / clip[3]
        want = world_to_camera_view(scene, cam, Vector(p))
        np.testing.assert_allclose((ndc + 1) / 2, (want.x, want.y), atol=1e-4)


def test_target_flip_and_encoding(small_scene):
    source, collection = small_scene
    cam = sorted(collection.objects, key=lambda o: o.name)[0]
    lin = np.zeros((32, 32, 4), np.float32)
    lin[..., 0] = np.linspace(0, 1, 32)[None, :]
    lin[..., 3] = 1
    cam.data.background_images[0].image = target_setup.new_image("linear target", lin, linear=True)
    cam.data.background_images[0].use_flip_x = True
    target = scene_inputs.read_target(cam, bpy.context.scene, 32, 32, "srgb")
    want = linear_to_srgb(lin[:, ::-1, 0])
    np.testing.assert_allclose(target[..., 0], want, atol=1e-4)


def test_api_run_changes_only_the_mesh_and_image(small_scene):
    source, collection = small_scene
    before = snapshot()
    summary = optimize(source, collection, Settings(steps=200, views_per_step=2), resolution=48)
    after = snapshot()
    image = summary["image"]
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {source.name, "img " + image}
    assert summary["steps"] == 200
    # 2.8 dB here; a sign-flipped estimator reached 0.6, no gradient 0 (keep-best keeps the start).
    assert summary["mean_psnr_after"] > summary["mean_psnr_before"] + 1.5, summary
    assert len(summary["psnr_after"]) == 4


# Bad input -------------------------------------------------------------------------
def test_no_object(small_scene):
    refuse(None, small_scene[1], "no object")


def test_not_a_mesh(small_scene):
    cam = small_scene[1].objects[0]
    refuse(cam, small_scene[1], "not a mesh")


def test_no_uv_map(small_scene):
    source, collection = small_scene
    while source.data.uv_layers:
        source.data.uv_layers.remove(source.data.uv_layers[0])
    refuse(source, collection, "no UV map", source.data.name)


def test_no_base_colour_image(small_scene):
    source, collection = small_scene
    mat = source.data.materials[0]
    tex = next(n for n in mat.node_tree.nodes if n.type == "TEX_IMAGE")
    mat.node_tree.nodes.remove(tex)
    refuse(source, collection, "no base-colour image", source.name)


def test_no_cameras(small_scene):
    source, _ = small_scene
    empty = bpy.data.collections.new("Empty")
    bpy.context.scene.collection.children.link(empty)
    refuse(source, empty, "no cameras", "Empty")


def test_camera_without_background_image(small_scene):
    source, collection = small_scene
    cam = sorted(collection.objects, key=lambda o: o.name)[1]
    cam.data.background_images.clear()
    refuse(source, collection, "no background image", cam.name)


def test_target_aspect_mismatch(small_scene):
    source, collection = small_scene
    cam = sorted(collection.objects, key=lambda o: o.name)[2]
    cam.data.background_images[0].image = target_setup.new_image("wide", np.ones((16, 40, 4), np.float32))
    refuse(source, collection, "aspect", cam.name)


def test_unsupported_background_options_are_named(small_scene):
    source, collection = small_scene
    cam = sorted(collection.objects, key=lambda o: o.name)[0]
    cam.data.background_images[0].rotation = 0.3
    refuse(source, collection, "rotation", cam.name)


def test_unreadable_image(small_scene):
    source, collection = small_scene
    cam = sorted(collection.objects, key=lambda o: o.name)[0]
    missing = bpy.data.images.new("missing", 8, 8)
    missing.source = "FILE"
    missing.filepath = "/nonexistent/target.png"
    cam.data.background_images[0].image = missing
    refuse(source, collection, "could not be read", "missing")


def test_non_finite_vertex(small_scene):
    source, collection = small_scene
    source.data.vertices[3].co = (float("nan"), 0.0, 0.0)
    refuse(source, collection, "non-finite vertex", "3")


def test_topology_changing_modifier(small_scene):
    source, collection = small_scene
    source.modifiers.new("Subdivide me", "SUBSURF")
    refuse(source, collection, "Subdivide me", "topology")


def look_away(cam):
    cam.rotation_euler.rotate_axis("X", math.pi)  # turns the camera round: it faces away from the origin
    bpy.context.view_layer.update()


def test_no_camera_sees_the_object(small_scene):
    source, collection = small_scene
    for cam in collection.objects:
        look_away(cam)
    refuse(source, collection, "no target camera sees 'Source'", "aim the cameras")


def test_a_camera_that_sees_none_of_the_object_is_warned_about(small_scene):
    source, collection = small_scene
    cams = sorted(collection.objects, key=lambda o: o.name)
    look_away(cams[1])
    run = OptimizationRun(source, collection, Settings(steps=2), resolution=32)
    assert len(run.warnings) == 1
    assert f"camera '{cams[1].name}' sees none of 'Source'" in run.warnings[0]
    assert "target pixels with alpha > 0 cannot be matched" in run.warnings[0]
    assert optimize(source, collection, Settings(steps=2), resolution=32)["warnings"] == run.warnings


def test_an_infinite_coordinate_is_refused(small_scene):
    source, collection = small_scene
    source.data.vertices[5].co.z = float("inf")
    assert source.data.vertices[5].co.z == pytest.approx(3.4e38, rel=0.01)  # what Blender stores
    refuse(source, collection, "vertex 5 of 'Source'", "beyond")


def test_an_object_too_small_for_its_distance_from_the_origin_is_refused(small_scene):
    source, collection = small_scene
    source.location.x += 1e5
    source.scale = (1e-3, 1e-3, 1e-3)
    bpy.context.view_layer.update()
    refuse(source, collection, "units across", "move it nearer the origin")


def test_a_shared_mesh_is_refused(small_scene):
    source, collection = small_scene
    twin = bpy.data.objects.new("Twin", source.data)
    bpy.context.scene.collection.objects.link(twin)
    refuse(source, collection, f"mesh '{source.data.name}' is shared by objects 'Source', 'Twin'",
           "Make Single User")


def test_a_texture_that_is_also_a_target_is_refused(small_scene):
    source, collection = small_scene
    cam = sorted(collection.objects, key=lambda o: o.name)[2]
    cam.data.background_images[0].image = bpy.data.images["Source Albedo"]
    refuse(source, collection, "'Source Albedo' is both the texture being optimized and the target",
           cam.name)


def test_a_run_that_cannot_fit_in_memory_is_refused_before_reading(small_scene, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**28)
    tracemalloc.start()
    try:
        message = refuse(*small_scene, "resolution 16384 with 4 views", "GiB of memory", resolution=16384)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**26, peak  # refused from sizes: not one 16384-pixel frame (4 GiB) was made
    fits = int(message.split("working resolution of ")[1].split()[0])
    assert 256 < fits < 16384
    width = height = fits  # the demo scene renders square
    assert memory.run_bytes(width, height, 4, 16 * 16, len(small_scene[0].data.vertices), 48 * 48) <= 2**28
    OptimizationRun(*small_scene, Settings(steps=2), resolution=fits)  # what it suggests is accepted


def test_resampling_up_keeps_float32_temporaries():
    small = np.random.default_rng(0).random((8, 8, 4), dtype=np.float32)
    tracemalloc.start()
    try:
        out = image_pixels.resample(small, 512, 512)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.dtype == np.float32
    assert peak < 5 * out.nbytes  # float64 weights made it about 8x


def test_gpu_start_drops_only_the_harmless_egl_lines(capfd):
    with gpu_context._harmless_lines_dropped():
        os.write(2, b"EGL Error (0x3009): EGL_BAD_MATCH: Arguments are inconsistent\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"


def test_bad_settings(small_scene):
    refuse(small_scene[0], small_scene[1], "views per step", settings=Settings(views_per_step=0))
    refuse(small_scene[0], small_scene[1], "nothing to optimize",
           settings=Settings(optimize_positions=False, optimize_texture=False))
    for seed in (-1, 2**31, 2**64, 1.5):
        refuse(small_scene[0], small_scene[1], "seed must be", settings=Settings(seed=seed))
    Settings(seed=2**31 - 1).validate()  # the largest the kernels take


def test_failure_during_a_run_restores_the_scene(small_scene, monkeypatch):
    """An error mid-run (here: the engine's step raising) leaves the mesh and
    image exactly as before."""
    from sge_optimizer.engine import Engine

    source, collection = small_scene
    before = snapshot()
    calls = {"n": 0}
    real_step = Engine.step

    def failing_step(self):
        calls["n"] += 1
        if calls["n"] == 12:
            raise RuntimeError("simulated GPU failure")
        real_step(self)

    monkeypatch.setattr(Engine, "step", failing_step)
    with pytest.raises(RuntimeError, match="simulated"):
        optimize(source, collection, Settings(steps=20, write_back_every=5), resolution=32)
    assert snapshot() == before


def test_gpu_bootstrap_leaves_the_scene_as_it_was(small_scene):
    """The Workbench fallback (Blender < 5.2) renders in a throw-away scene and
    removes everything it made."""
    from sge_optimizer.addon import gpu_context

    def everything():
        return {attr: sorted(x.name for x in getattr(bpy.data, attr))
                for attr in ("scenes", "objects", "cameras", "meshes", "images", "collections")}

    before, active = everything(), bpy.context.window.scene if bpy.context.window else bpy.context.scene
    gpu_context._render_throwaway_frame()
    gpu_context.ensure_gpu()
    assert everything() == before
    assert (bpy.context.window.scene if bpy.context.window else bpy.context.scene) == active


# The targets' pixel filter --------------------------------------------------------
@pytest.mark.parametrize("engine,aa,expected", [
    ("BLENDER_WORKBENCH", "8", ("workbench", 8, 0.21)), ("BLENDER_WORKBENCH", "16", ("workbench", 16, 0.21)),
    ("BLENDER_WORKBENCH", "FXAA", ("gaussian", 8, 0.21)), ("BLENDER_WORKBENCH", "OFF", ("gaussian", 8, 0.21)),
    ("CYCLES", "8", ("gaussian", 8, 0.2121)), ("EEVEE", "8", ("gaussian", 8, 0.426))])
def test_auto_pixel_filter_follows_the_scenes_engine(small_scene, engine, aa, expected):
    """Settings.pixel_filter "auto" takes the targets as the scene's engine
    renders them: the run's settings say which filter, how many samples and
    how wide (EEVEE's default film filter is twice Cycles')."""
    source, collection = small_scene
    scene = bpy.context.scene
    scene.render.engine = ("BLENDER_EEVEE" if bpy.app.version >= (5, 0, 0) else "BLENDER_EEVEE_NEXT") \
        if engine == "EEVEE" else engine
    scene.display.render_aa = aa
    assert scene.render.filter_size == 1.5 and scene.cycles.filter_width == 1.5  # Blender's defaults
    for cam in scene_inputs.collection_cameras(collection):  # as if the engine had rendered them
        del cam.data.background_images[0].image[scene_inputs.CAPTURED]
    got = scene_inputs.pixel_filter_for(scene)
    assert (got["pixel_filter"], got["workbench_samples"]) == expected[:2]
    assert got["filter_sigma"] == pytest.approx(expected[2], abs=1e-3)
    settings = Settings(steps=2)
    run = OptimizationRun(source, collection, settings, resolution=32)
    assert (run.settings.pixel_filter, run.settings.workbench_samples) == expected[:2]
    assert run.settings.filter_sigma == pytest.approx(expected[2], abs=1e-3)
    assert settings.pixel_filter == "auto"  # the caller's settings are not changed


def test_captured_targets_keep_our_own_filter(small_scene):
    """Targets Capture Targets made were filtered by our rasterizer, not by
    the scene's engine: "auto" keeps the Gaussian for them, and a set with
    one target from elsewhere follows the engine again."""
    source, collection = small_scene
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.render_aa = "8"
    cameras = scene_inputs.collection_cameras(collection)
    assert all(c.data.background_images[0].image.get(scene_inputs.CAPTURED) for c in cameras)  # demo captured them
    run = OptimizationRun(source, collection, Settings(steps=2), resolution=32)
    assert (run.settings.pixel_filter, run.settings.filter_sigma) == ("gaussian", Settings.filter_sigma)
    del cameras[0].data.background_images[0].image[scene_inputs.CAPTURED]
    assert scene_inputs.pixel_filter_for(scene, cameras)["pixel_filter"] == "workbench"


# Which image, which faces, which targets (issue 23) -------------------------------
def pixels_of(image) -> np.ndarray:
    px = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(px)
    return px


def two_bsdf_material(source):
    """The source's material rebuilt with two Principled BSDFs: an unconnected
    one first in node order holding DECOY, then the one wired to the Material
    Output holding REAL (the source's flat start image). Returns (REAL, DECOY)."""
    real = bpy.data.images["Source Albedo"]
    real.name = "REAL"
    decoy = target_setup.new_image("DECOY", np.random.default_rng(5).uniform(0, 1, (16, 16, 4)).astype(np.float32))
    mat = bpy.data.materials.new("Two BSDFs")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    bsdfs = []
    for image in (decoy, real):
        bsdf, tex = nodes.new("ShaderNodeBsdfPrincipled"), nodes.new("ShaderNodeTexImage")
        tex.image = image
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        bsdfs.append(bsdf)
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(bsdfs[1].outputs[0], output.inputs["Surface"])
    source.data.materials.clear()
    source.data.materials.append(mat)
    return real, decoy


def add_lights():
    """A sun, a dim world and the Standard view transform: what a lit fit needs."""
    from lit_scene import add_light, set_world

    scene = bpy.context.scene
    scene.view_settings.view_transform = "Standard"
    add_light(scene, "SUN", "Sun", (0, 0, 0), (0.6, 0.2, 0.4), energy=3.0)
    set_world(scene, (0.05, 0.05, 0.05))


@pytest.mark.parametrize("lit", [False, True], ids=["unlit", "lit"])
def test_the_image_fitted_is_the_one_wired_to_the_material_output(small_scene, lit):
    """An unconnected Principled BSDF first in node order (DECOY) is not what
    renders: the fit changes REAL, the image of the BSDF on the Material
    Output, and leaves DECOY bit-exact."""
    source, collection = small_scene
    real, decoy = two_bsdf_material(source)
    if lit:
        add_lights()
    real_before, decoy_before = pixels_of(real), pixels_of(decoy)
    summary = optimize(source, collection, Settings(steps=20, optimize_positions=not lit, lit=lit, keep_best=False), resolution=32)
    assert summary["image"] == "REAL"
    assert not np.array_equal(pixels_of(real), real_before)
    np.testing.assert_array_equal(pixels_of(decoy), decoy_before)


def test_a_surface_that_is_not_a_principled_bsdf_is_refused_by_name(small_scene):
    source, collection = small_scene
    mat = source.data.materials[0]
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    mix = nodes.new("ShaderNodeMixShader")
    links.new(bsdf.outputs[0], mix.inputs[1])
    links.new(mix.outputs[0], output.inputs["Surface"])
    refuse(source, collection, "material 'Source'", "'Mix Shader'", "Principled BSDF")
    links.remove(mix.outputs[0].links[0])
    refuse(source, collection, "material 'Source'", "nothing feeds", "Surface")
    nodes.remove(output)
    refuse(source, collection, "material 'Source'", "no Material Output")


def test_faces_showing_different_images_are_refused_by_slot(small_scene):
    """An unlit fit optimizes one image: faces whose materials show different
    images (or none) are refused, naming the slots, materials, images and faces."""
    source, collection = small_scene
    other = target_setup.textured_material("Other", target_setup.new_image("Other Albedo", np.ones((8, 8, 4), np.float32)))
    source.data.materials.append(other)
    for face in list(source.data.polygons)[100:110]:
        face.material_index = 1
    message = refuse(source, collection, "slot 1 'Source'", "'Source Albedo'", "slot 2 'Other'",
                     "'Other Albedo'", "10 faces (the first is face 100)")
    assert "one base-colour image" in message
    source.data.materials[1] = None
    refuse(source, collection, "slot 2 (empty) on 10 faces")


def test_materials_sharing_one_image_are_fitted_together(small_scene):
    source, collection = small_scene
    image = bpy.data.images["Source Albedo"]
    source.data.materials.append(target_setup.textured_material("Other", image))
    for face in list(source.data.polygons)[100:110]:
        face.material_index = 1
    before = pixels_of(image)
    summary = optimize(source, collection, Settings(steps=20, keep_best=False), resolution=32)
    assert summary["image"] == "Source Albedo" and not np.array_equal(pixels_of(image), before)


def clear_alpha(image) -> None:
    px = pixels_of(image).reshape(-1, 4)
    px[:, 3] = 0.0
    image.pixels.foreach_set(px.ravel())
    image.update()


def test_targets_with_no_coverage_are_refused_before_anything_changes(small_scene):
    """All-transparent targets in a joint fit used to shrink the mesh and
    darken the texture: refused by camera and image, nothing changed."""
    source, collection = small_scene
    cams = scene_inputs.collection_cameras(collection)
    clear_alpha(cams[2].data.background_images[0].image)
    image = cams[2].data.background_images[0].image.name
    refuse(source, collection, f"camera '{cams[2].name}'", f"'{image}'", "transparent")
    for cam in cams:
        clear_alpha(cam.data.background_images[0].image)
    refuse(source, collection, f"camera '{cams[0].name}'", "transparent")


def test_a_black_normal_map_is_warned_about(small_scene):
    """Texels far from unit tangent-space normals (black: (-1, -1, -1) decoded)
    are read and fitted, with a warning that says what probably happened."""
    source, collection = small_scene
    add_lights()
    image = target_setup.add_normal_map(source, np.zeros((8, 8, 3), np.float32), name="Black Normal")
    settings = Settings(steps=2, optimize_positions=False, lit=True)
    warned = [w for w in OptimizationRun(source, collection, settings, resolution=32).warnings if "normal" in w]
    assert len(warned) == 1, warned
    assert "'Black Normal'" in warned[0] and "100%" in warned[0] and "Non-Color" in warned[0]
    flat = np.zeros((8, 8, 4), np.float32)
    flat[...] = (0.5, 0.5, 1.0, 1.0)
    flat[:1, :1] = 0.0  # one black texel in 64 is not worth a word
    image.pixels.foreach_set(flat.ravel())
    assert not [w for w in OptimizationRun(source, collection, settings, resolution=32).warnings if "normal" in w]
    # Texels no UV reaches (a bake leaves them black) are not counted: the UVs
    # squeezed into the lower-left quarter, the rest of the map black.
    uv = np.empty(len(source.data.loops) * 2, np.float32)
    source.data.uv_layers.active.uv.foreach_get("vector", uv)
    source.data.uv_layers.active.uv.foreach_set("vector", uv * 0.45)
    flat[:] = 0.0
    flat[:4, :4] = (0.5, 0.5, 1.0, 1.0)
    image.pixels.foreach_set(flat.ravel())
    assert not [w for w in OptimizationRun(source, collection, settings, resolution=32).warnings if "normal" in w]
