"""What a run writes into Blender: one object per fitted parameter.

Each object reads its state before the run when it is made, and then knows
how to
- `write` the engine's current value into Blender;
- `keep_in_blend`: at the end of a run, make a save of the .blend keep it;
- `restore` Blender as it was before the run (what `keep_in_blend` changed
  too); `restore_if_possible` does it after data may have changed under a
  modal run, and says why not where it cannot;
- give the image undo its snapshot (`undo_snapshot`);
- `summarize` itself into the run's summary.

`OptimizationRun` (addon/fit_run.py) iterates over the list `for_run` makes.
A newly fitted map (displacement, a roughness image of its own, ...) is one
new class here and one line in `for_run`.
"""
from __future__ import annotations

import numpy as np

from . import change_checks, edit_mode, material_io, scene_inputs, shape_keys
from .image_pixels import keep_in_blend, storage_state, stored_pixels, undo_keep_in_blend, write_image_pixels

MATERIAL_MAP_CHANNELS = ("roughness", "metallic")  # channels 0 and 1 of Engine.material()


class FittedParam:
    """The interface, with the defaults of a parameter that has nothing to
    keep, snapshot or summarize."""

    what = "material"  # names it in "... not restored" lines

    def write(self, read) -> None:
        """Copy the engine's current value into Blender. `read(name)` is the
        engine's array `name` ("positions", "texture", "normal_map",
        "material"), read at most once per write-back."""

    def keep_in_blend(self) -> None:
        """At the end of a run, after the last `write`: make a save of the
        .blend keep what was written."""

    def restore(self) -> None:
        """Put Blender back as it was before the run."""

    def restore_if_possible(self) -> str | None:
        """`restore` after Blender data may have changed under a modal run;
        returns why it was left as it is, or None."""
        try:
            self.restore()
        except Exception as exc:  # noqa: BLE001 - e.g. the image was deleted
            return f"{self.what} not restored: {type(exc).__name__}: {exc}"
        return None

    def undo_snapshot(self) -> tuple | None:
        """(image, its flat pixels before the run) for `image_undo.record`, or None."""
        return None

    def summarize(self, summary: dict) -> None:
        """Fill this parameter's entries of the run's summary."""


class MeshPositions(FittedParam):
    """The mesh's vertex positions, written where the user sees them (the
    shape key `shape_keys.target` names, if keyed). Restored as read, fitted
    or not."""

    what = "mesh"

    def __init__(self, inputs: scene_inputs.SceneInputs, fitted: bool):
        self.inputs, self.fitted = inputs, fitted

    def write(self, read) -> None:
        if self.fitted:
            scene_inputs.write_positions(self.inputs.obj, read("positions"))

    def restore(self) -> None:
        scene_inputs.restore_mesh(self.inputs)

    def restore_if_possible(self) -> str | None:
        reason = change_checks.mesh_changed(self.inputs)
        if reason is not None and not reason.endswith("entered Edit Mode"):
            return reason
        with edit_mode.out_of_edit_mode(self.inputs.obj):  # Edit Mode would discard the positions
            scene_inputs.restore_mesh(self.inputs)
        return None

    def summarize(self, summary: dict) -> None:
        summary["shape_key"] = shape_keys.target_name(self.inputs.obj)  # where positions went, if keyed


class BaseColorImage(FittedParam):
    """The base-colour image, in its own stored encoding. Restored as read,
    fitted or not."""

    what = "image"

    def __init__(self, inputs: scene_inputs.SceneInputs, fitted: bool):
        self.inputs, self.fitted = inputs, fitted
        self.storage = None  # set by keep_in_blend: see image_pixels.keep_in_blend
        self._storage_before = None  # what keep_in_blend changed, for restore

    def write(self, read) -> None:
        if self.fitted:
            write_image_pixels(self.inputs.image, read("texture"))

    def keep_in_blend(self) -> None:
        if self.fitted:
            self._storage_before = storage_state(self.inputs.image)
            self.storage = keep_in_blend(self.inputs.image)

    def restore(self) -> None:
        if self._storage_before is not None:
            undo_keep_in_blend(self.inputs.image, self._storage_before)
            self._storage_before = self.storage = None
        scene_inputs.restore_image(self.inputs)

    def restore_if_possible(self) -> str | None:
        reason = change_checks.image_changed(self.inputs)
        if reason is not None:
            return reason
        self.restore()
        return None

    def undo_snapshot(self) -> tuple | None:
        return (self.inputs.image, self.inputs.original_pixels) if self.fitted else None

    def summarize(self, summary: dict) -> None:
        summary["image_storage"] = self.storage


class _FittedImage(FittedParam):
    """A fitted image other than the base colour: its pixels before the run,
    and what `keep_in_blend` changed."""

    def __init__(self, image):
        self.image = image
        self.before = stored_pixels(image)
        self.storage = None
        self._storage_before = None

    def keep_in_blend(self) -> None:
        self._storage_before = storage_state(self.image)
        self.storage = keep_in_blend(self.image)

    def restore(self) -> None:
        if self._storage_before is not None:
            undo_keep_in_blend(self.image, self._storage_before)
        self.image.pixels.foreach_set(self.before)
        self.image.update()
        self._storage_before = self.storage = None

    def undo_snapshot(self) -> tuple | None:
        return self.image, self.before


class NormalMapImage(_FittedImage):
    """The tangent-space normal map image, stored as the Normal Map node reads
    it: (x, y, z) / 2 + 1/2, Non-Color; its alpha is kept."""

    def write(self, read) -> None:
        image = self.image
        width, height = image.size
        pixels = read("normal_map")
        if pixels.shape[:2] != (height, width):
            raise ValueError(f"normal map image '{image.name}' changed size during the run")
        before = self.before.reshape(height, width, image.channels)
        if image.channels == 4:
            pixels = np.concatenate([pixels[..., :3], before[..., 3:]], -1)
        write_image_pixels(image, pixels)  # refuses non-finite values

    def summarize(self, summary: dict) -> None:
        """Its image, where a save finds it, and how far its texels turned
        (degrees, mean and largest)."""
        image = self.image
        turned = []
        for pixels in (self.before, stored_pixels(image)):
            m = 2.0 * pixels.reshape(-1, image.channels)[:, :3].astype(np.float64) - 1.0
            turned.append(m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12))
        angles = np.degrees(np.arccos(np.clip(np.sum(turned[0] * turned[1], -1), -1.0, 1.0)))
        summary["normal_map"] = {"image": image.name, "size": list(image.size), "storage": self.storage,
                                 "mean_turn_deg": float(angles.mean()), "max_turn_deg": float(angles.max())}


class MaterialImage(_FittedImage):
    """A fitted roughness or metallic image, written where the material reads
    it: grey RGB (its Color output) or alpha (its Alpha output)."""

    def __init__(self, channel: str, image, out: str):
        super().__init__(image)
        self.channel, self.out = channel, out  # out: "color" or "alpha"

    def write(self, read) -> None:
        value = read("material")[..., MATERIAL_MAP_CHANNELS.index(self.channel)]
        image = self.image
        width, height = image.size
        if value.shape != (height, width):
            raise ValueError(f"image '{image.name}' changed size during the run")
        pixels = self.before.reshape(height, width, image.channels).copy()
        if self.out == "alpha":
            pixels[..., 3] = np.clip(value, 0.0, 1.0)
        else:
            pixels[..., :3] = np.clip(value, 0.0, 1.0)[..., None]
        write_image_pixels(image, pixels)  # refuses non-finite values

    def _mean(self, pixels: np.ndarray) -> float:
        px = pixels.reshape(-1, self.image.channels)
        return float(px[:, 3].mean() if self.out == "alpha" else (px[:, :3] @ material_io.LUMINANCE).mean())

    def summarize(self, summary: dict) -> None:
        """Its mean value before and after."""
        summary["material_images"][self.channel] = {
            "image": self.image.name, "output": self.out, "mean_before": self._mean(self.before),
            "mean_after": self._mean(stored_pixels(self.image))}


class MaterialConstant(FittedParam):
    """A fitted roughness or metallic constant: its Principled input's value."""

    def __init__(self, channel: str, socket):
        self.channel, self.socket = channel, socket
        self.before = float(socket.default_value)

    def write(self, read) -> None:
        value = float(read("material")[0, 0, MATERIAL_MAP_CHANNELS.index(self.channel)])
        if np.isfinite(value):  # never write NaN into the scene
            self.socket.default_value = min(max(value, 0.0), 1.0)

    def restore(self) -> None:
        self.socket.default_value = self.before

    def summarize(self, summary: dict) -> None:
        """Before and as written back."""
        summary["material"][self.channel] = {"before": self.before, "after": float(self.socket.default_value)}


def for_run(inputs: scene_inputs.SceneInputs, settings) -> list:
    """What a run with `settings` writes, in the order it is written: the
    mesh, the base colour, the normal map, the roughness / metallic images,
    the roughness / metallic constants. Reads their state now; raises
    InputError when a map or constant cannot be fitted."""
    channels = [c for c, on in (("roughness", settings.optimize_roughness),
                                ("metallic", settings.optimize_metallic)) if on]
    sockets, images = material_io.fitted_inputs(inputs.obj, channels, inputs.scene) if channels else ({}, {})
    params = [MeshPositions(inputs, settings.optimize_positions), BaseColorImage(inputs, settings.optimize_texture)]
    if settings.optimize_normal:
        params.append(NormalMapImage(material_io.normal_map_image(inputs.obj, inputs.scene)))
    params += [MaterialImage(c, image, out) for c, (image, out) in images.items()]
    params += [MaterialConstant(c, socket) for c, socket in sockets.items()]
    return params
