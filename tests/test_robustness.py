"""Real scenes and users that do unexpected things (issue 10): Edit Mode,
shape keys, abort after finish, changes during a modal run, opening another
file, the undo memory cap."""
from __future__ import annotations

from types import SimpleNamespace

import bpy
import numpy as np
import pytest

from sge_optimizer.addon import edit_mode, operator_runs, properties
from sge_optimizer.addon.api import run_to_end
from test_operator import (assert_changed, assert_same, registered, saved_and_reopened, scene,  # noqa: F401
                           state)


def set_edit_mode(obj, on: bool = True):
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT" if on else "OBJECT")
    assert obj.mode == ("EDIT" if on else "OBJECT")


def state_any_mode():
    """state(), syncing Edit Mode data first."""
    obj = bpy.data.objects["Source"]
    if obj.mode == "EDIT":
        obj.update_from_editmode()
    return state()


# 1. Edit Mode ------------------------------------------------------------------------
def test_operator_in_edit_mode_runs_and_goes_back(scene):
    obj = bpy.data.objects["Source"]
    bpy.ops.ed.undo_push(message="Before")
    set_edit_mode(obj)
    import bmesh
    bm = bmesh.from_edit_mesh(obj.data)
    bm.verts.ensure_lookup_table()
    bm.verts[0].co.z += 0.25  # an edit not yet in the mesh data
    bmesh.update_edit_mesh(obj.data)
    bpy.ops.ed.undo_push(message="Edit")
    original = state_any_mode()
    assert bpy.ops.sge.optimize_to_targets("EXEC_DEFAULT", True) == {"FINISHED"}
    assert obj.mode == "OBJECT"  # until the operator has returned (its undo step is pushed)
    edit_mode.return_pending()  # what the timer does
    assert obj.mode == "EDIT"
    result = state_any_mode()
    assert_changed(result, original)
    # It started from the edited vertex, not from the stale mesh data.
    assert abs(result[0][2] - original[0][2]) < 0.1
    assert bpy.ops.ed.undo() == {"FINISHED"}  # one step undoes the run, pixels included
    obj = bpy.data.objects["Source"]  # undo replaced the Python object
    assert obj.mode == "EDIT"
    assert_same(state_any_mode(), original)
    assert bpy.ops.ed.redo() == {"FINISHED"}
    obj = bpy.data.objects["Source"]
    set_edit_mode(obj, False)  # the result survives leaving Edit Mode
    assert_same(state(), result)


def test_modal_run_in_edit_mode_goes_back_when_it_ends(scene):
    obj = bpy.data.objects["Source"]
    set_edit_mode(obj)
    original = state_any_mode()
    driver = operator_runs.ModalDriver(operator_runs.make_run(scene), budget_s=None, max_steps_per_tick=10)
    driver.start()
    assert obj.mode == "OBJECT"
    while driver.tick() == operator_runs.RUNNING:
        pass
    assert driver.state == operator_runs.FINISHED
    edit_mode.return_pending()
    assert obj.mode == "EDIT"
    result = state_any_mode()
    assert_changed(result, original)
    set_edit_mode(obj, False)
    assert_same(state(), result)


def test_optimize_api_in_edit_mode_goes_back_at_once(scene):
    from sge_optimizer.addon.api import optimize
    from sge_optimizer.engine import Settings

    obj = bpy.data.objects["Source"]
    set_edit_mode(obj)
    original = state_any_mode()
    # No keep-best or warm-up: 5 steps must change the 8-bit pixels; this checks the mode round trip
    summary = optimize(obj, properties.get(scene).cameras, Settings(steps=5, keep_best=False, warmup_steps=0), resolution=32)
    assert summary["steps"] == 5 and obj.mode == "EDIT"
    result = state_any_mode()
    assert_changed(result, original)
    set_edit_mode(obj, False)
    assert_same(state(), result)


def test_a_file_saved_in_edit_mode_runs(scene, tmp_path):
    from sge_optimizer.addon.api import optimize
    from sge_optimizer.engine import Settings

    set_edit_mode(bpy.data.objects["Source"])
    path = tmp_path / "edit.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))  # what tools/optimize.py does
    obj = bpy.data.objects["Source"]
    assert obj.mode == "EDIT"
    summary = optimize(obj, bpy.data.collections["Targets"], Settings(steps=3), resolution=32)
    assert summary["steps"] == 3 and obj.mode == "EDIT"


def test_run_built_in_edit_mode_is_refused_by_name(scene):
    from sge_optimizer.addon.api import OptimizationRun
    from sge_optimizer.addon.errors import InputError
    from sge_optimizer.engine import Settings

    obj = bpy.data.objects["Source"]
    set_edit_mode(obj)
    with pytest.raises(InputError, match="'Source' is in Edit Mode"):
        OptimizationRun(obj, properties.get(scene).cameras, Settings(steps=5), resolution=32)


# 2. Shape keys -----------------------------------------------------------------------
def shown_positions(name="Source"):
    """Local vertex positions as the viewport shows them (shape keys mixed)."""
    obj = bpy.data.objects[name]
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def key_positions(block):
    co = np.empty(len(block.data) * 3, np.float32)
    block.data.foreach_get("co", co)
    return co.reshape(-1, 3)


def add_bulge_key(obj, value):
    obj.shape_key_add(name="Basis")
    bulge = obj.shape_key_add(name="Bulge", from_mix=False)
    co = key_positions(bulge)
    co[:, 2] += 0.3 * np.sign(co[:, 2])
    bulge.data.foreach_set("co", co.ravel())
    bulge.value = value
    return bulge


def test_shape_keys_basis_gets_the_result_and_keeps_it(scene):
    obj = bpy.data.objects["Source"]
    add_bulge_key(obj, 0.5)
    obj.active_shape_key_index = 0  # Basis
    run = operator_runs.make_run(scene)
    assert np.allclose(run.inputs.arrays.mesh.positions,
                       shown_positions() @ np.array(obj.matrix_world)[:3, :3].T + np.array(obj.matrix_world)[:3, 3],
                       atol=1e-5)  # reads the mix, not the Basis
    bpy.ops.ed.undo_push(message="Before")
    shown, keys = shown_positions(), [key_positions(kb) for kb in obj.data.shape_keys.key_blocks]
    assert bpy.ops.sge.optimize_to_targets("EXEC_DEFAULT", True) == {"FINISHED"}
    assert operator_runs.last_summary["shape_key"] == "Basis"
    assert "shape key 'Basis'" in operator_runs.report_line(operator_runs.last_summary)
    result = shown_positions()
    assert not np.allclose(result, shown), "the visible mesh did not change"
    assert bpy.ops.ed.undo() == {"FINISHED"}
    obj = bpy.data.objects["Source"]
    assert np.array_equal(shown_positions(), shown)
    for kb, co in zip(obj.data.shape_keys.key_blocks, keys):
        assert np.array_equal(key_positions(kb), co)
    assert bpy.ops.ed.redo() == {"FINISHED"}
    obj = bpy.data.objects["Source"]
    assert np.array_equal(shown_positions(), result)
    set_edit_mode(obj)
    set_edit_mode(obj, False)
    assert np.allclose(shown_positions(), result, atol=1e-6), "Edit Mode threw the result away"
    bulge = obj.data.shape_keys.key_blocks["Bulge"]  # its offset from the Basis is kept
    assert np.allclose(key_positions(bulge) - key_positions(obj.data.shape_keys.key_blocks["Basis"]),
                       keys[1] - keys[0], atol=1e-5)


def test_shape_keys_active_key_at_full_value_gets_the_result(scene):
    obj = bpy.data.objects["Source"]
    bulge = add_bulge_key(obj, 1.0)
    obj.active_shape_key_index = 1
    basis = key_positions(obj.data.shape_keys.key_blocks["Basis"])
    shown = shown_positions()
    original = state()
    driver = operator_runs.ModalDriver(operator_runs.make_run(scene), budget_s=None, max_steps_per_tick=5)
    driver.start()
    assert driver.tick() == operator_runs.RUNNING
    driver.request_stop()
    assert driver.tick() == operator_runs.FINISHED
    assert driver.summary["shape_key"] == "Bulge"
    assert np.array_equal(key_positions(obj.data.shape_keys.key_blocks["Basis"]), basis)
    assert not np.allclose(shown_positions(), shown)
    assert np.allclose(shown_positions(), key_positions(bulge), atol=1e-6)
    driver.run.abort()  # restores the keys too
    assert np.array_equal(shown_positions(), shown)
    assert_same(state(), original)


def test_shape_key_weighted_by_vertex_group_is_refused_by_name(scene):
    from sge_optimizer.addon.errors import InputError

    obj = bpy.data.objects["Source"]
    bulge = add_bulge_key(obj, 0.5)
    obj.vertex_groups.new(name="Top")
    bulge.vertex_group = "Top"
    with pytest.raises(InputError, match="shape key 'Bulge'.*vertex group 'Top'"):
        operator_runs.make_run(scene)


# 6. abort() after finish(), and generated images -------------------------------------
def test_abort_after_finish_restores_the_packed_copy(scene, tmp_path):
    original = state()
    run = operator_runs.make_run(scene)
    summary = run_to_end(run)
    assert summary["image_storage"] == "packed"
    assert_changed(state(), original)
    run.abort()
    assert_same(state(), original)
    assert_same(saved_and_reopened(tmp_path / "aborted.blend"), original)


def use_generated_image(scene):
    """Give the source a generated (never saved) base-colour image."""
    image = bpy.data.images.new("Generated Albedo", 32, 32)
    pixels = np.full((32 * 32, 4), 0.5, np.float32)
    pixels[:, 3] = 1.0  # opaque: the image has no alpha plane
    image.pixels.foreach_set(pixels.ravel())
    material = bpy.data.objects["Source"].material_slots[0].material
    next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE").image = image
    assert image.source == "GENERATED" and image.packed_file is None
    return image.name


def test_generated_image_is_packed_in_the_runs_undo_step(scene, tmp_path):
    name = use_generated_image(scene)
    bpy.ops.ed.undo_push(message="Before")
    original = state(image=name)
    assert bpy.ops.sge.optimize_to_targets("EXEC_DEFAULT", True) == {"FINISHED"}
    assert operator_runs.last_summary["image_storage"] == "generated_packed"
    assert "packed into the .blend" in operator_runs.report_line(operator_runs.last_summary)
    result = state(image=name)
    assert_changed(result, original)
    assert bpy.ops.ed.undo() == {"FINISHED"}  # one step: pixels, mesh and the packing
    assert bpy.data.images[name].packed_file is None
    assert_same(state(image=name), original)
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert bpy.data.images[name].packed_file is not None
    path = tmp_path / "generated.blend"
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert_same(state(image=name), result)


def test_abort_after_finish_unpacks_a_generated_image(scene):
    name = use_generated_image(scene)
    original = state(image=name)
    run = operator_runs.make_run(scene)
    assert run_to_end(run)["image_storage"] == "generated_packed"
    run.abort()
    image = bpy.data.images[name]
    assert image.source == "GENERATED" and image.packed_file is None
    assert_same(state(image=name), original)


# 7. Changes during a modal run -------------------------------------------------------
def running_driver(scene):
    driver = operator_runs.ModalDriver(operator_runs.make_run(scene), budget_s=None, max_steps_per_tick=2)
    driver.start()
    assert driver.tick() == operator_runs.RUNNING
    return driver


def assert_cancelled(driver, *words):
    assert driver.tick() == operator_runs.CANCELLED  # not an exception
    for word in words:
        assert word in driver.error, driver.error
    assert operator_runs.active_driver is None and not bpy.ops.sge.stop.poll()
    reason = operator_runs.why_not(bpy.context.scene)
    assert reason is None or "already running" not in reason
    assert driver.tick() == operator_runs.CANCELLED  # stays ended


def test_deleting_the_object_mid_run_cancels_and_restores_the_image(scene):
    original = state()
    driver = running_driver(scene)
    bpy.data.objects.remove(bpy.data.objects["Source"])
    assert_cancelled(driver, "object was deleted", "not restored")
    img = bpy.data.images["Source Albedo"]
    px = np.empty(len(img.pixels), np.float32)
    img.pixels.foreach_get(px)
    assert np.array_equal(px, original[1])


def test_deleting_the_image_mid_run_cancels_and_restores_the_mesh(scene):
    original = state()
    driver = running_driver(scene)
    bpy.data.images.remove(bpy.data.images["Source Albedo"])
    assert_cancelled(driver, "image was deleted")
    obj = bpy.data.objects["Source"]
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    assert np.array_equal(co, original[0])


def test_adding_a_vertex_mid_run_cancels(scene):
    original = state()
    driver = running_driver(scene)
    bpy.data.objects["Source"].data.vertices.add(1)
    assert_cancelled(driver, "vertices of 'Source' were added or removed")
    assert np.array_equal(state()[1], original[1])


def test_adding_a_shape_key_mid_run_cancels(scene):
    original = state()
    driver = running_driver(scene)
    bpy.data.objects["Source"].shape_key_add(name="Basis")
    assert_cancelled(driver, "shape keys of 'Source' were added or removed")
    assert np.array_equal(state()[1], original[1])


def test_resizing_the_image_mid_run_cancels(scene):
    original = state()
    driver = running_driver(scene)
    bpy.data.images["Source Albedo"].scale(16, 16)
    assert_cancelled(driver, "'Source Albedo' was resized")
    assert np.array_equal(state()[0], original[0])


def test_entering_edit_mode_mid_run_cancels_and_restores(scene):
    original = state()
    driver = running_driver(scene)
    obj = bpy.data.objects["Source"]
    set_edit_mode(obj)
    assert_cancelled(driver, "entered Edit Mode", "scene restored")
    assert obj.mode == "EDIT"
    assert_same(state_any_mode(), original)


def test_undo_mid_run_cancels(scene):
    bpy.ops.ed.undo_push(message="Before")
    driver = running_driver(scene)
    bpy.ops.ed.undo_push(message="Something")
    bpy.ops.ed.undo()  # the run's Python references are gone
    assert_cancelled(driver, "undone")


# 8. Opening another file during a run ------------------------------------------------
def test_opening_a_file_mid_run_ends_the_run(scene, tmp_path):
    path = tmp_path / "other.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    driver = running_driver(scene)
    assert "already running" in operator_runs.why_not(scene)
    bpy.ops.wm.open_mainfile(filepath=str(path))  # runs the load_pre handler
    assert driver.state == operator_runs.CANCELLED and "another file" in driver.error
    assert operator_runs.active_driver is None
    assert bpy.ops.sge.optimize_to_targets.poll()


def test_operator_cancel_ends_the_run_and_cleans_up(scene):
    """What Blender calls when it drops the modal handler; the timer goes."""
    from sge_optimizer.addon.operators import SGE_OT_optimize_to_targets as Op

    driver = running_driver(scene)
    wm = bpy.context.window_manager
    op = SimpleNamespace(_driver=driver, _timer=wm.event_timer_add(1.0, window=bpy.context.window))
    op._cleanup = lambda context: Op._cleanup(op, context)
    wm.progress_begin(0, 10)
    Op.cancel(op, bpy.context)
    assert op._timer is None and driver.state == operator_runs.CANCELLED
    assert operator_runs.active_driver is None


# 9. The undo snapshots' memory -------------------------------------------------------
def test_undo_snapshots_are_capped_by_bytes_oldest_first(registered, empty_scene):
    from sge_optimizer.addon import image_undo

    image_undo.clear()
    image = bpy.data.images.new("T", 32, 32)
    one = 32 * 32 * 4 * 4  # bytes of one float snapshot
    for i in range(6):
        before = np.empty(len(image.pixels), np.float32)
        image.pixels.foreach_get(before)
        image.pixels.foreach_set(np.full(len(before), i / 10, np.float32))
        image_undo.record(image, before, limit=3 * one)
        assert image_undo.memory_bytes() <= 3 * one
    assert "base:T" not in image_undo._snapshots  # the oldest went first
    assert image[image_undo.TOKEN] in image_undo._snapshots
    image_undo.record(image, before, limit=1)  # the last run's pair stays, even over the limit
    assert len(image_undo._snapshots) == 2
    assert operator_runs.undo_limit_bytes() == 1024 * 2 ** 20  # the preference's default
    assert properties.SGE_AP_preferences.bl_idname == "sge_optimizer"
    assert properties.SGE_AP_preferences.is_registered
    image_undo.clear()
