"""Edit Mode around a run.

In Edit Mode the mesh data is stale (the edit mesh holds the truth, and UV
layers read as empty), and leaving Edit Mode overwrites whatever was written
into the mesh meanwhile. So a run leaves Edit Mode first (which syncs the
edit data into the mesh) and goes back afterwards.

The operator goes back *after* its undo step was pushed (`enter_edit_mode_later`):
that step is then a whole-file step, which brings back the image's undo token
(see image_undo) as well as the mesh; an Edit Mode step would only restore
the mesh.
"""
from __future__ import annotations

from contextlib import contextmanager

import bpy

_pending: list = []  # objects to put back into Edit Mode by the timer


def _mode_set(obj, mode: str) -> None:
    # No undo push of its own (the second positional argument): the run's
    # step covers it.
    with bpy.context.temp_override(active_object=obj, object=obj):
        bpy.ops.object.mode_set("EXEC_DEFAULT", False, mode=mode)


def leave_edit_mode(obj) -> bool:
    """Switch `obj` from Edit Mode to Object Mode, syncing its edit data.
    Returns True when it was in Edit Mode."""
    if obj is None or getattr(obj, "mode", None) != "EDIT":
        return False
    _mode_set(obj, "OBJECT")
    return True


def enter_edit_mode(obj) -> None:
    """Back into Edit Mode; a removed object or one already there is skipped."""
    try:
        if obj.mode == "EDIT" or obj.name not in bpy.context.view_layer.objects:
            return
    except ReferenceError:
        return
    _mode_set(obj, "EDIT")


@contextmanager
def out_of_edit_mode(obj):
    """For blocking scripted runs: Object Mode inside, the old mode after."""
    left = leave_edit_mode(obj)
    try:
        yield left
    finally:
        if left:
            enter_edit_mode(obj)


def return_pending() -> None:
    """Put the objects queued by `enter_edit_mode_later` back into Edit Mode.
    The timer calls it; tests call it directly (timers never fire in
    background mode, where the object therefore stays in Object Mode)."""
    while _pending:
        obj = _pending.pop(0)
        try:
            enter_edit_mode(obj)
        except Exception as exc:  # noqa: BLE001 - a timer must never raise
            print(f"SGE Optimizer: could not go back to Edit Mode: {exc}")


def _timer():
    return_pending()
    return None  # once


def enter_edit_mode_later(obj) -> None:
    """Go back to Edit Mode once the running operator has returned."""
    _pending.append(obj)
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.0)


def forget_pending() -> None:
    """Before another file is loaded: its objects are not ours to switch."""
    _pending.clear()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
