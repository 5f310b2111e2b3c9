"""One optimization run: `OptimizationRun`, and `drive`, the one loop that
runs it (`run_to_end` blocking, the modal operator's ticks and Fit LOD's
stages all go through it).

What a run writes into Blender is a list of objects, one per fitted
parameter (addon/fitted_params.py); the run iterates over it.
"""
from __future__ import annotations

import dataclasses
import math
import time

import bpy

from ..engine import Engine, Settings, mean_psnr
from . import auto_choices, fitted_params, input_checks, scene_inputs
from .errors import InputError
from .gpu_backend import BlenderGPUBackend
from .gpu_context import ensure_gpu


class OptimizationRun:
    """Read and validate at construction (nothing changes), then `start()`,
    `advance()` until it returns True, and `finish()` (`drive` does all
    three); `cancel()` keeps the result so far, `abort()` restores the scene
    as it was."""

    def __init__(self, obj, camera_collection, settings: Settings, resolution: int = 256, scene=None,
                 choices: auto_choices.Choices | None = None):
        """`choices`: what the panel or the CLI leaves to the scene (Lit by
        the Scene and the normal map on auto, Steps from the preset),
        decided here (addon/auto_choices.py); None: `settings` as given."""
        self.resolution = resolution
        self.choices = {}  # {name: auto_choices.Choice}: what was decided, and why
        if choices is None:
            try:
                settings.validate()
            except ValueError as exc:
                raise InputError(str(exc)) from None
            self.inputs = scene_inputs.read_scene(obj, camera_collection, resolution, scene, lit=settings.lit)
        else:
            self.inputs, settings, self.choices = auto_choices.read_inputs(
                obj, camera_collection, settings, choices, resolution, scene)
        if settings.pixel_filter == "auto":  # the targets are taken as the scene's engine renders
            pixel_filter = scene_inputs.pixel_filter_for(scene or bpy.context.scene, self.inputs.cameras)
            settings = dataclasses.replace(settings, **pixel_filter)
        self.settings = settings
        # What the run writes, each with its state before the run (abort()
        # and the operator's undo step put it back).
        self.params = fitted_params.for_run(self.inputs, settings)
        self.warnings = input_checks.check(self.inputs, scene)  # refuses what cannot work; the rest: one line each
        self.engine = None
        self.backend = None
        self.loss_history = []  # (step, mean pixel loss)
        self.before = None
        self.after = None
        self._started = None
        self._elapsed = 0.0
        self._last_loss = None
        self.kept_step = None  # set by finish(): the step whose parameters were kept

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
        return self.step >= self.settings.steps or self.engine.converged()

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
        """Copy the current parameters into Blender (each of the engine's
        arrays is read once)."""
        arrays = {}

        def read(name: str):
            if name not in arrays:
                arrays[name] = getattr(self.engine, name)()
            return arrays[name]

        for param in self.params:
            param.write(read)

    def finish(self) -> dict:
        """Keep the best parameters seen (never worse than the start), write
        back, evaluate, and return the summary."""
        self.sample_loss()
        self.kept_step = self.engine.finish()  # with keep-best: the best checkpoint put back
        self.after = self.engine.evaluate(keep_color=True)  # the overlay shows the renders
        self.write_back()
        for param in self.params:  # last: abort() undoes it
            param.keep_in_blend()
        return self.summary()

    def cancel(self) -> dict:
        """Stop now and keep the result so far."""
        return self.finish()

    def abort(self) -> None:
        """Restore everything the run writes as it was before the run (after
        finish() too: the packed copies as well)."""
        for param in self.params:
            param.restore()

    def restore_what_remains(self) -> list:
        """`abort()` after Blender data may have changed under the run (the
        modal operator's cancel): restores what still fits, never raises;
        returns the reasons for what was left as it is."""
        left = []
        for param in self.params:
            try:
                reason = param.restore_if_possible()
            except Exception as exc:  # noqa: BLE001
                reason = f"{param.what} not restored: {type(exc).__name__}: {exc}"
            if reason:
                left.append(reason)
        return left

    def undo_snapshots(self) -> list:
        """(image, flat pixels before the run) of each image the run wrote."""
        return [s for s in (param.undo_snapshot() for param in self.params) if s is not None]

    # Reporting -----------------------------------------------------------------
    def progress(self) -> dict:
        elapsed = (time.perf_counter() - self._started) if self._started else 0.0
        rate = self.step / elapsed if elapsed > 0 else 0.0
        remaining = self.settings.steps - self.step
        return {"step": self.step, "steps": self.settings.steps, "loss": self._last_loss,
                "steps_per_s": rate, "eta_s": remaining / rate if rate > 0 else math.inf,
                "elapsed_s": elapsed}

    @staticmethod
    def _mean_over(metrics: list, indices) -> float | None:
        chosen = [metrics[i] for i in indices] if metrics else []
        return mean_psnr(chosen) if chosen else None

    def summary(self) -> dict:
        def views(metrics):
            return [{"view": m["view"], "psnr": m["psnr"], "mse": m["mse"]} for m in metrics]

        after = self.after or []
        summary = {
            "object": self.inputs.obj.name,
            "image": self.inputs.image.name,
            "cameras": [c.name for c in self.inputs.cameras],
            "steps": self.step,
            # --patience: the run ended before its last step, keep-best's best unbeaten that long
            "converged_early": self.step < self.settings.steps and self.engine.converged(),
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
            # Views set aside (never charged) that judged the checkpoints; a gap widening
            # between their PSNR and the fitted views' is overfitting.
            "validation_views": [self.engine.scene.views[i].name for i in self.engine.validation],
            "validation_rule": self.engine.validation_rule(),
            "mean_psnr_validation_before": self._mean_over(self.before, self.engine.validation),
            "mean_psnr_validation_after": self._mean_over(after, self.engine.validation),
            "mean_psnr_fitted_after": self._mean_over(after, self.engine.training),
            "settings": {k: getattr(self.settings, k) for k in Settings.field_names()},
            # Lit by the Scene and the normal map as decided from auto, on or off, and why
            "choices": {name: dataclasses.asdict(c) for name, c in self.choices.items()},
            "encoding": self.inputs.encoding,
            "image_storage": None,  # the base-colour image's: fitted_params.BaseColorImage
            "shape_key": None,  # where positions went, if keyed: fitted_params.MeshPositions
            "loss_history": self.loss_history,
            "warnings": self.warnings,
            "material": {},  # fitted roughness / metallic constants, before and as written back
            "normal_map": None,  # the fitted normal map: its image, storage and how far texels turned
            "material_images": {},  # fitted roughness / metallic images: mean value before and after
        }
        for param in self.params:
            param.summarize(summary)
        return summary


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


def drive(run: OptimizationRun, max_steps: int | None = None, budget_s: float | None = None,
          write_back: bool = False, between=None):
    """The one loop that runs a fit, as a generator: `start()` the run, then
    advance it a slice at a time (at most `max_steps` steps or `budget_s`
    seconds), reading the loss after each slice (and with `write_back`,
    copying the parameters into Blender); at the end, `finish()`. Yields
    after the start and after each slice but the last, calling `between()`
    before each of those yields but the first; returns the summary. The
    caller decides what happens at a yield (report, redraw, stop) and what an
    error undoes."""
    run.start()
    yield
    while True:
        done = run.advance(max_steps=max_steps, budget_s=budget_s)
        if write_back:
            run.write_back()
        run.sample_loss()
        if done:
            return run.finish()
        if between is not None:
            between()
        yield


def run_stages(stages):
    """Drive a generator of stages (`drive`, `lod.fit_lod_stages`) to its
    end; its return value."""
    while True:
        try:
            next(stages)
        except StopIteration as end:
            return end.value


def run_to_end(run: OptimizationRun, progress=None, report_every: int = 25,
               keep_on_interrupt: bool = False) -> dict:
    """Start `run` and drive it to the end, blocking. `progress(dict)` is called
    every `report_every` steps. On an error the mesh and image are restored,
    then it re-raises. With `keep_on_interrupt`, Ctrl+C (KeyboardInterrupt)
    after the first evaluation stops the run and keeps the result so far, as
    the panel's Stop does; the summary then has "stopped": True."""
    report = (lambda: progress(run.progress())) if progress else None
    try:
        summary = run_stages(drive(run, max_steps=report_every, between=report))
        if report:
            report()
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
