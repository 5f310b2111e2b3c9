"""Real scenes and users that do unexpected things (issue 10): Edit Mode,
shape keys, abort after finish, changes during a modal run, opening another
file, the undo memory cap."""
from __future__ import annotations

import bpy
import numpy as np
import pytest

from sge_optimizer.addon import modal, modes, properties
from test_operator import assert_changed, assert_same, registered, scene, state  # noqa: F401 - fixtures


def edit_mode(obj, on: bool = True):
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
    edit_mode(obj)
    import bmesh
    bm = bmesh.from_edit_mesh(obj.data)
    bm.verts.ensure_lookup_table()
    bm.verts[0].co.z += 0.25  # an edit not yet in the mesh data
    bmesh.update_edit_mesh(obj.data)
    bpy.ops.ed.undo_push(message="Edit")
    original = state_any_mode()
    assert bpy.ops.sge.optimize_to_targets("EXEC_DEFAULT", True) == {"FINISHED"}
    assert obj.mode == "OBJECT"  # until the operator has returned (its undo step is pushed)
    modes.return_pending()  # what the timer does
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
    edit_mode(obj, False)  # the result survives leaving Edit Mode
    assert_same(state(), result)


def test_optimize_api_in_edit_mode_goes_back_at_once(scene):
    from sge_optimizer.addon.api import optimize
    from sge_optimizer.engine import Settings

    obj = bpy.data.objects["Source"]
    edit_mode(obj)
    original = state_any_mode()
    summary = optimize(obj, properties.get(scene).cameras, Settings(steps=5), resolution=32)
    assert summary["steps"] == 5 and obj.mode == "EDIT"
    result = state_any_mode()
    assert_changed(result, original)
    edit_mode(obj, False)
    assert_same(state(), result)


def test_run_built_in_edit_mode_is_refused_by_name(scene):
    from sge_optimizer.addon.api import OptimizationRun
    from sge_optimizer.addon.scene_io import InputError
    from sge_optimizer.engine import Settings

    obj = bpy.data.objects["Source"]
    edit_mode(obj)
    with pytest.raises(InputError, match="'Source' is in Edit Mode"):
        OptimizationRun(obj, properties.get(scene).cameras, Settings(steps=5), resolution=32)
