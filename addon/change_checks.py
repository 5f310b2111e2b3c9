"""Checks a modal run makes every tick: the object and image it writes
into may have been deleted, reshaped or replaced (by an undo) since the last
tick. All cheap: no pixels or vertices are read."""
from __future__ import annotations

import bpy

from . import scene_inputs


def _alive(id_block) -> bool:
    try:
        id_block.name  # noqa: B018 - raises once Blender freed it (deleted, or an undo)
        return True
    except ReferenceError:
        return False


def mesh_changed(inputs: scene_inputs.SceneInputs) -> str | None:
    """Why the run's object can no longer take its positions, or None. Cheap."""
    obj = inputs.obj
    if not _alive(obj) or bpy.data.objects.get(obj.name) != obj:
        return "the object was deleted (or the scene undone)"
    if obj.type != "MESH" or len(obj.data.vertices) != len(inputs.original_positions):
        return f"vertices of '{obj.name}' were added or removed"
    saved = inputs.original_shape_keys
    keys = obj.data.shape_keys
    if (0 if keys is None else len(keys.key_blocks)) != (0 if saved is None else len(saved)):
        return f"shape keys of '{obj.name}' were added or removed"
    if obj.mode == "EDIT":
        return f"'{obj.name}' entered Edit Mode"
    return None


def image_changed(inputs: scene_inputs.SceneInputs) -> str | None:
    """Why the run's image can no longer take its pixels, or None. Cheap."""
    image = inputs.image
    if not _alive(image) or bpy.data.images.get(image.name) != image:
        return "the image was deleted (or the scene undone)"
    if len(image.pixels) != len(inputs.original_pixels):
        return f"image '{image.name}' was resized"
    return None


def inputs_changed(inputs: scene_inputs.SceneInputs) -> str | None:
    """Why a running optimization cannot go on, or None."""
    return mesh_changed(inputs) or image_changed(inputs)
