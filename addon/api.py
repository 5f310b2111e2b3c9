"""The Python API: one optimization run, usable blocking or tick by tick.

    from sge_optimizer.addon.api import optimize
    summary = optimize(bpy.data.objects["Sphere"], bpy.data.collections["Targets"],
                       Settings(steps=500), resolution=256)

Scripts, `tools/optimize.py`, and the operator (blocking and modal) all go
through `OptimizationRun`.
"""
from __future__ import annotations

import dataclasses
import math
import time

import bpy

import numpy as np

from ..engine import Engine, Settings, mean_psnr
from . import material_io, modes, preflight, scene_io, shape_keys
from .gpu_backend import BlenderGPUBackend
from .gpu_context import ensure_gpu
from .scene_io import InputError

__all__ = ["OptimizationRun", "optimize", "run_to_end", "progress_text", "InputError", "Settings"]


MATERIAL_MAP_CHANNELS = ("roughness", "metallic")  # channels 0 and 1 of Engine.material()


class OptimizationRun:
    """Read and validate at construction (nothing changes), then `start()`,
    `advance()` until it returns True, and `finish()`; `cancel()` keeps the
    result so far, `abort()` restores the scene as it was."""

    def __init__(self, obj, camera_collection, settings: Settings, resolution: int = 256, scene=None):
        try:
            settings.validate()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.resolution = resolution
        self.inputs = scene_io.read_scene(obj, camera_collection, resolution, scene, lit=settings.lit)
        if settings.pixel_filter == "auto":  # the targets are taken as the scene's engine renders
            settings = dataclasses.replace(settings, **scene_io.pixel_filter_for(scene or bpy.context.scene,
                                                                                 self.inputs.cameras))
        self.settings = settings
        # Fitted roughness / metallic constants: their Principled inputs and
        # values before the run (abort() puts them back; the operator's undo step too).
        fitted = [c for c, on in (("roughness", settings.optimize_roughness),
                                  ("metallic", settings.optimize_metallic)) if on]
        self.material_inputs, images = material_io.fitted_inputs(obj, fitted) if fitted else ({}, {})
        self.material_before = {c: float(s.default_value) for c, s in self.material_inputs.items()}
        # Fitted roughness / metallic images: {channel: (image, output, pixels before)}.
        self.material_images = {c: (image, out, scene_io.stored_pixels(image)) for c, (image, out) in images.items()}
        self._material_storage_before = {}
        # A fitted normal map: its image and pixels before the run (abort() and undo put them back).
        self.normal_image = material_io.normal_map_image(obj) if settings.optimize_normal else None
        self.normal_before = None if self.normal_image is None else scene_io.stored_pixels(self.normal_image)
        self.normal_storage = None  # set by finish(), as image_storage
        self._normal_storage_before = None
        self.warnings = preflight.check(self.inputs, scene)  # refuses what cannot work; the rest: one line each
        self.engine = None
        self.backend = None
        self.loss_history = []  # (step, mean pixel loss)
        self.before = None
        self.after = None
        self._started = None
        self._elapsed = 0.0
        self._last_loss = None
        self.image_storage = None  # set by finish(): see scene_io.keep_in_blend
        self.kept_step = None  # set by finish(): the step whose parameters were kept
        self._storage_before = None  # what keep_in_blend changed, for abort()

    # Lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        ensure_gpu()
        self.backend = BlenderGPUBackend()
        self.engine = Engine(self.backend, self.inputs.arrays, self.settings)
        self.before = self.engine.evaluate()
        self.engine.start()  # no compile hitch mid-run; with keep-best the start is the first candidate
        self._started = time.perf_counter()

    @property
    def step(self) -> int:
        return self.engine.step_index if self.engine else 0

    @property
    def done(self) -> bool:
        return self.step >= self.settings.steps

    def advance(self, max_steps: int | None = None, budget_s: float | None = None) -> bool:
        """Run steps until `max_steps` ran, `budget_s` seconds passed, or the
        run is complete. Returns True when complete."""
        t0 = time.perf_counter()
        ran = 0
        every = self.settings.write_back_every
        while not self.done:
            self.engine.step()  # keep-best's checkpoints are queued and scored within
            ran += 1
            if every and self.step % every == 0:
                self.write_back()
            if max_steps is not None and ran >= max_steps:
                break
            if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                break
        self._elapsed = time.perf_counter() - self._started
        return self.done

    def sample_loss(self) -> float | None:
        """Read the running loss estimate (one small readback) and log it."""
        loss = self.engine.take_loss_estimate()
        if loss is not None:
            self._last_loss = loss
            self.loss_history.append((self.step, loss))
        return self._last_loss

    def write_back(self) -> None:
        """Copy the current parameters into the Blender mesh and image."""
        engine, inputs = self.engine, self.inputs
        if self.settings.optimize_positions:
            scene_io.write_positions(inputs.obj, engine.positions())
        if self.settings.optimize_texture:
            scene_io.write_image_pixels(inputs.image, engine.texture())
        if self.normal_image is not None:
            self._write_normal_map()
        material = engine.material() if self.material_images or self.material_inputs else None
        for channel, (image, out, before) in self.material_images.items():
            self._write_material_image(material[..., MATERIAL_MAP_CHANNELS.index(channel)], image, out, before)
        for channel, socket in self.material_inputs.items():
            value = float(material[0, 0, MATERIAL_MAP_CHANNELS.index(channel)])
            if np.isfinite(value):  # never write NaN into the scene
                socket.default_value = min(max(value, 0.0), 1.0)

    @staticmethod
    def _write_material_image(value: np.ndarray, image, out: str, before: np.ndarray) -> None:
        """A fitted roughness or metallic map (h, w) into its image, where the
        material reads it: grey RGB (the Color output) or alpha."""
        width, height = image.size
        if value.shape != (height, width):
            raise ValueError(f"image '{image.name}' changed size during the run")
        pixels = before.reshape(height, width, image.channels).copy()
        if out == "alpha":
            pixels[..., 3] = np.clip(value, 0.0, 1.0)
        else:
            pixels[..., :3] = np.clip(value, 0.0, 1.0)[..., None]
        scene_io.write_image_pixels(image, pixels)  # refuses non-finite values

    def _write_normal_map(self) -> None:
        """The fitted normals (stored as the Normal Map node reads them:
        (x, y, z) / 2 + 1/2, Non-Color) into the image; its alpha is kept."""
        image = self.normal_image
        width, height = image.size
        pixels = self.engine.normal_map()
        if pixels.shape[:2] != (height, width):
            raise ValueError(f"normal map image '{image.name}' changed size during the run")
        before = self.normal_before.reshape(height, width, image.channels)
        if image.channels == 4:
            pixels = np.concatenate([pixels[..., :3], before[..., 3:]], -1)
        scene_io.write_image_pixels(image, pixels)  # refuses non-finite values

    def finish(self) -> dict:
        """Keep the best parameters seen (never worse than the start), write
        back, evaluate, and return the summary."""
        self.sample_loss()
        self.kept_step = self.engine.finish()  # with keep-best: the best checkpoint put back
        self.after = self.engine.evaluate(keep_color=True)  # the overlay shows the renders
        self.write_back()
        if self.settings.optimize_texture:  # last: abort() undoes it with _storage_before
            self._storage_before = scene_io.storage_state(self.inputs.image)
            self.image_storage = scene_io.keep_in_blend(self.inputs.image)
        if self.normal_image is not None:
            self._normal_storage_before = scene_io.storage_state(self.normal_image)
            self.normal_storage = scene_io.keep_in_blend(self.normal_image)
        for channel, (image, _, _) in self.material_images.items():
            self._material_storage_before[channel] = scene_io.storage_state(image)
            scene_io.keep_in_blend(image)
        return self.summary()

    def cancel(self) -> dict:
        """Stop now and keep the result so far."""
        return self.finish()

    def abort(self) -> None:
        """Restore the mesh and image as they were before the run (after
        finish() too: the packed copy as well)."""
        if self._storage_before is not None:
            scene_io.undo_keep_in_blend(self.inputs.image, self._storage_before)
            self._storage_before = self.image_storage = None
        scene_io.restore(self.inputs)
        self.restore_material()

    def restore_material(self) -> None:
        """Put the fitted roughness / metallic constants, and the fitted
        roughness / metallic / normal-map images (pixels, and what finish()
        packed), back as they were."""
        for channel, socket in self.material_inputs.items():
            socket.default_value = self.material_before[channel]
        for channel, (image, _, before) in self.material_images.items():
            _put_back(image, before, self._material_storage_before.pop(channel, None))
        if self.normal_image is not None:
            _put_back(self.normal_image, self.normal_before, self._normal_storage_before)
            self._normal_storage_before = self.normal_storage = None

    # Reporting -----------------------------------------------------------------
    def progress(self) -> dict:
        elapsed = (time.perf_counter() - self._started) if self._started else 0.0
        rate = self.step / elapsed if elapsed > 0 else 0.0
        remaining = self.settings.steps - self.step
        return {"step": self.step, "steps": self.settings.steps, "loss": self._last_loss,
                "steps_per_s": rate, "eta_s": remaining / rate if rate > 0 else math.inf,
                "elapsed_s": elapsed}

    def summary(self) -> dict:
        def views(metrics):
            return [{"view": m["view"], "psnr": m["psnr"], "mse": m["mse"]} for m in metrics]

        after = self.after or []
        return {
            "object": self.inputs.obj.name,
            "image": self.inputs.image.name,
            "cameras": [c.name for c in self.inputs.cameras],
            "steps": self.step,
            "kept_step": self.kept_step,
            "shape_kept": self.engine.shape_kept,
            # Joint fits: each shape choice's step and coverage errors (start's, fitted's; early check or end)
            "shape_checks": self.engine.shape_checks,
            "seconds": self._elapsed,
            "parameters": self.engine.parameter_count,
            "resolution": list(self.engine.scene.resolution),
            "final_loss": self._last_loss,
            "psnr_before": views(self.before),
            "psnr_after": views(after),
            "mean_psnr_before": mean_psnr(self.before),
            "mean_psnr_after": mean_psnr(after) if after else None,
            "settings": {k: getattr(self.settings, k) for k in Settings.field_names()},
            "encoding": self.inputs.encoding,
            "image_storage": self.image_storage,
            "shape_key": shape_keys.target_name(self.inputs.obj),  # where positions went, if keyed
            "loss_history": self.loss_history,
            "warnings": self.warnings,
            # fitted roughness / metallic constants, before and as written back
            "material": {c: {"before": self.material_before[c], "after": float(sock.default_value)}
                         for c, sock in self.material_inputs.items()},
            "normal_map": self._normal_summary(),
            # fitted roughness / metallic images: their mean value before and after
            "material_images": {c: {"image": image.name, "output": out,
                                    "mean_before": _mean_value(before, image, out),
                                    "mean_after": _mean_value(scene_io.stored_pixels(image), image, out)}
                                for c, (image, out, before) in self.material_images.items()},
        }

    def _normal_summary(self) -> dict | None:
        """The fitted normal map: its image, where a save finds it, and how far
        its texels turned (degrees, mean and largest)."""
        if self.normal_image is None:
            return None
        image = self.normal_image
        turned = []
        for pixels in (self.normal_before, scene_io.stored_pixels(image)):
            m = 2.0 * pixels.reshape(-1, image.channels)[:, :3].astype(np.float64) - 1.0
            turned.append(m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12))
        angles = np.degrees(np.arccos(np.clip(np.sum(turned[0] * turned[1], -1), -1.0, 1.0)))
        return {"image": image.name, "size": list(image.size), "storage": self.normal_storage,
                "mean_turn_deg": float(angles.mean()), "max_turn_deg": float(angles.max())}


def _put_back(image, before: np.ndarray, storage_before) -> None:
    """A fitted image's pixels, and what finish() packed, as before the run."""
    if storage_before is not None:
        scene_io.undo_keep_in_blend(image, storage_before)
    image.pixels.foreach_set(before)
    image.update()


def _mean_value(pixels: np.ndarray, image, out: str) -> float:
    px = pixels.reshape(-1, image.channels)
    return float(px[:, 3].mean() if out == "alpha" else (px[:, :3] @ material_io.LUMINANCE).mean())


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_text(progress: dict) -> str:
    """'step 10/40  loss 0.01234  5.1 steps/s  ETA 0:06' for `OptimizationRun.progress()`;
    the status bar and `tools/optimize.py` both print it."""
    loss = progress.get("loss")
    loss_text = f"{loss:.5f}" if loss is not None else "-"
    return (f"step {progress['step']}/{progress['steps']}  loss {loss_text}  "
            f"{progress['steps_per_s']:.1f} steps/s  ETA {format_eta(progress['eta_s'])}")


def run_to_end(run: OptimizationRun, progress=None, report_every: int = 25,
               keep_on_interrupt: bool = False) -> dict:
    """Start `run` and drive it to the end, blocking. `progress(dict)` is called
    every `report_every` steps. On an error the mesh and image are restored,
    then it re-raises. With `keep_on_interrupt`, Ctrl+C (KeyboardInterrupt)
    after the first evaluation stops the run and keeps the result so far, as
    the panel's Stop does; the summary then has "stopped": True."""
    try:
        run.start()
        while not run.advance(max_steps=report_every):
            run.sample_loss()
            if progress:
                progress(run.progress())
        summary = run.finish()
        if progress:
            progress(run.progress())
        return summary
    except KeyboardInterrupt:
        if not (keep_on_interrupt and run.before is not None):
            run.abort()
            raise
        summary = run.cancel()
        summary["stopped"] = True
        return summary
    except BaseException:
        run.abort()
        raise


def optimize(obj, camera_collection, settings: Settings | None = None, resolution: int = 256,
             progress=None, report_every: int = 25, scene=None) -> dict:
    """Blocking run from Blender objects; see `run_to_end`. An object in Edit
    Mode is run in Object Mode and put back."""
    with modes.out_of_edit_mode(obj):
        run = OptimizationRun(obj, camera_collection, settings or Settings(), resolution, scene)
        return run_to_end(run, progress, report_every)


def fit_lod(reference, options=None, scene=None, progress=None) -> dict:
    """Fit LOD to Reference, blocking: a decimated, unwrapped copy of
    `reference` with maps baked from it, fitted to renders of it (see
    `addon/lod.py` and `LodOptions`). Returns the summary."""
    from . import lod

    return lod.run_stages(fit_lod_stages(reference, options, scene, progress))


def fit_lod_stages(reference, options=None, scene=None, progress=None, fit_budget_s=None):
    """`fit_lod` as a generator of its units of work (`lod.fit_lod_stages`),
    for a caller that runs it a tick at a time; returns the summary."""
    from . import lod

    with modes.out_of_edit_mode(reference):
        return (yield from lod.fit_lod_stages(reference, options, scene, progress, fit_budget_s))