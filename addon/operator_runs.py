"""The plain functions behind the operators: checks, building a run from the
panel settings, and the per-tick work of the modal operator (`ModalDriver`),
which tests drive directly (in background mode timers never fire)."""
from __future__ import annotations

import math
import time

import bpy
from bpy.app.handlers import persistent

from . import api, auto_choices, change_checks, edit_mode, image_undo, overlay, properties, scene_inputs
from .fit_run import OptimizationRun, drive, progress_text, run_to_end
from .gpu_context import ensure_gpu
from .errors import InputError
from .image_pixels import storage_note

RUNNING, FINISHED, CANCELLED = "RUNNING_MODAL", "FINISHED", "CANCELLED"

# The run the modal operator is driving now (at most one), and the last
# finished run's loss history, for the panel.
active_driver = None
last_history: list = []
last_summary: dict | None = None


# Checks --------------------------------------------------------------------------
def why_not(scene) -> str | None:
    """One line saying why Optimize to Targets cannot run, or None if it can.
    Cheap (no pixels read): meant for poll() and the panel."""
    if active_driver is not None and active_driver.state == RUNNING:
        return "an optimization is already running"
    props = properties.get(scene)
    try:
        lit_maps = props.lit != "OFF" and (props.optimize_roughness or props.optimize_metallic
                                           or props.optimize_normal == "ON")
        if not (props.optimize_positions or props.optimize_texture or lit_maps):
            raise InputError("nothing to optimize: enable Positions, Base Color or both")
        scene_inputs.check_mesh_object(props.source)
        scene_inputs.find_base_color_image(props.source, scene)
        for cam in scene_inputs.collection_cameras(props.cameras):
            scene_inputs.target_background(cam)
    except InputError as exc:
        return str(exc)
    return None


def make_run(scene, **overrides) -> OptimizationRun:
    """An `OptimizationRun` for the scene's panel settings (validates; raises
    InputError with the reason, changing nothing). A source in Edit Mode is
    switched to Object Mode for the run; `end_of_run` switches it back."""
    props = properties.get(scene)
    settings = properties.to_settings(props, **overrides)
    left = edit_mode.leave_edit_mode(props.source)
    try:
        run = OptimizationRun(props.source, props.cameras, settings, resolution=props.resolution, scene=scene,
                              choices=properties.choices(props, **overrides))
    except BaseException:
        if left:
            edit_mode.enter_edit_mode(props.source)
        raise
    run.left_edit_mode = left  # end_of_run() goes back
    # The overlay's shader is compiled before any kernel runs: compiled right
    # after a run, it sometimes sampled nothing on llvmpipe (1 in 4 here).
    ensure_gpu()
    overlay.get_shader()
    return run


def end_of_run(run: OptimizationRun) -> None:
    """Whatever the outcome: back to Edit Mode if the run left it."""
    if getattr(run, "left_edit_mode", False):
        edit_mode.enter_edit_mode_later(run.inputs.obj)


def undo_limit_bytes() -> int:
    """The preference "Undo Memory" in bytes (its default without the add-on
    installed, as in the tests): what `image_undo.record` may keep."""
    prefs = properties.preferences()
    return int((prefs.undo_memory_mb if prefs is not None else image_undo.DEFAULT_LIMIT_MB) * 2 ** 20)


def complete(run: OptimizationRun, summary: dict) -> dict:
    """Bookkeeping after a run that kept its result: image undo snapshot,
    overlay images, panel history."""
    global last_history, last_summary
    for image, before in run.undo_snapshots():
        image_undo.record(image, before, undo_limit_bytes())
    overlay.capture_run(run)
    last_history = list(run.loss_history)
    last_summary = summary
    return summary


def run_blocking(scene, progress=None, **overrides) -> dict:
    """What the operator's execute() does: the whole run, then bookkeeping;
    `progress` as in `run_to_end`. On an error the scene is restored and the
    error re-raised."""
    run = make_run(scene, **overrides)
    try:
        return complete(run, run_to_end(run, progress))
    finally:
        end_of_run(run)


def report_line(summary: dict) -> str:
    stopped = " (stopped)" if summary.get("stopped") else ""
    line = (f"SGE: {summary['steps']} steps{stopped} in {summary['seconds']:.1f} s, PSNR "
            f"{summary['mean_psnr_before']:.2f} -> {summary['mean_psnr_after']:.2f} dB")
    notes = [storage_note(summary["image"], summary.get("image_storage") or "")]
    if summary.get("kept_step") == 0 and summary["steps"] > 0:
        notes.append("kept the start: the run found no clear gain on the targets")
    elif summary.get("kept_step") not in (None, summary["steps"]):
        notes.append(f"kept step {summary['kept_step']}, the best scored")
    if summary.get("shape_key") and summary["settings"].get("optimize_positions"):
        notes.append(f"positions written to shape key '{summary['shape_key']}'")
    notes += auto_choices.choice_lines(summary.get("choices") or {})
    return ". ".join([line] + [n for n in notes if n])


# Feedback ---------------------------------------------------------------------------
_BLOCKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def sparkline(values, width: int = 32) -> str:
    """Unicode sparkline of (log) loss values, resampled to at most `width` chars."""
    values = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not values:
        return ""
    if len(values) > width:
        n = len(values)
        values = [values[min(n - 1, round(i * (n - 1) / (width - 1)))] for i in range(width)]
    logs = [math.log10(v) for v in values]
    lo, hi = min(logs), max(logs)
    span = hi - lo or 1.0
    return "".join(_BLOCKS[min(7, int((v - lo) / span * 7.999))] for v in logs)


def loss_lines(values) -> list:
    """The panel's loss read-out: the last value with the sparkline, then the
    range the sparkline spans (its log scale runs from min to max)."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not finite:
        return []
    return [f"Loss {finite[-1]:.5f}  {sparkline(finite)}",
            f"min {min(finite):.3g}  max {max(finite):.3g}  (log scale)"]


def status_line(progress: dict) -> str:
    return f"SGE Optimizer  {progress_text(progress)}  (Esc / right-click: stop and keep)"


# The modal operator's work ---------------------------------------------------------
class ModalDriver:
    """One run advanced in ticks of about `budget_s` seconds.

    `tick()` returns RUNNING_MODAL while there is more to do, FINISHED when the
    run completed or was stopped (result kept), CANCELLED after an error (scene
    restored; the message is in `error`)."""

    def __init__(self, run: OptimizationRun, budget_s: float | None = 0.03, max_steps_per_tick: int | None = None):
        self.run = run
        self.budget_s = budget_s
        self.max_steps_per_tick = max_steps_per_tick
        self.state = RUNNING
        self.stop_requested = False
        self.summary = None
        self.error = None
        self.tick_times: list = []
        self.steps_per_tick: list = []
        # The run's one loop, a slice per tick, written back each time (the viewport shows progress).
        self._slices = drive(run, max_steps=max_steps_per_tick, budget_s=budget_s, write_back=True)

    def start(self) -> None:
        global active_driver
        try:
            next(self._slices)  # run.start()
        except BaseException:
            self.run.abort()
            end_of_run(self.run)
            raise
        active_driver = self

    def request_stop(self) -> None:
        self.stop_requested = True

    def tick(self) -> str:
        if self.state != RUNNING:
            return self.state
        t0 = time.perf_counter()
        try:
            changed = change_checks.inputs_changed(self.run.inputs)
            if changed is not None:  # the user deleted or reshaped what we write into
                return self._cancel(changed)
            if self.stop_requested:
                return self._finish(self.run.cancel(), stopped=True)
            step0 = self.run.step
            try:
                next(self._slices)
            except StopIteration as end:
                self.steps_per_tick.append(self.run.step - step0)
                return self._finish(end.value, stopped=False)
            self.steps_per_tick.append(self.run.step - step0)
            overlay.update_current(self.run)
            return RUNNING
        except Exception as exc:  # noqa: BLE001 - reported by the operator
            return self._cancel(f"{type(exc).__name__}: {exc}")
        finally:
            self.tick_times.append(time.perf_counter() - t0)

    def _cancel(self, reason: str) -> str:
        """End with CANCELLED, restoring whatever still fits; never raises."""
        self.state = CANCELLED
        self._end()
        left = self.run.restore_what_remains()
        self.error = reason + (f" (not restored: {'; '.join(left)})" if left else " (scene restored)")
        return CANCELLED

    def abandon(self, reason: str) -> None:
        """End without touching Blender data (another file is replacing it)."""
        if self.state == RUNNING:
            self.state, self.error = CANCELLED, reason
            self._end()

    def _finish(self, summary: dict, stopped: bool) -> str:
        """`summary`: the run's, kept (finished or stopped)."""
        summary["stopped"] = stopped
        self.summary = complete(self.run, summary)
        self._end()
        self.state = FINISHED
        return FINISHED

    def _end(self) -> None:
        global active_driver
        self._slices.close()  # the loop ends where it stands
        if active_driver is self:
            active_driver = None
        end_of_run(self.run)

    def progress(self) -> dict:
        return self.run.progress()


def modal_event(driver: ModalDriver, event_type: str, event_value: str) -> str | None:
    """What Optimize to Targets' modal() does with an event: Esc or a
    right-click press stops the run (the tick then ends it, keeping the
    result so far), a timer event runs a tick; any other event passes
    through (None). Returns the driver's state after it."""
    if event_type in {"ESC", "RIGHTMOUSE"} and event_value == "PRESS":
        driver.request_stop()
    elif event_type != "TIMER":
        return None
    return driver.tick()


# Another file ------------------------------------------------------------------------
@persistent
def _on_load_pre(*_args):
    """Opening another file ends the run (else the button stays greyed out)."""
    try:
        if active_driver is not None:
            active_driver.abandon("another file was opened")
        edit_mode.forget_pending()
    except Exception as exc:  # noqa: BLE001 - a handler must never raise
        print(f"SGE Optimizer: could not end the run before loading a file: {exc}")


def register_handlers() -> None:
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister_handlers() -> None:
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)


# Fit LOD to Reference from the UI -----------------------------------------------------
class LodDriver:
    """Fit LOD to Reference a unit of work per tick (a bake, a render, about
    `fit_budget_s` of fit steps: `api.fit_lod_stages`), so the UI redraws and
    Esc can stop it. `start()` validates (raising InputError before anything
    is made); `tick()` returns RUNNING_MODAL, FINISHED (the summary is in
    `summary`) or CANCELLED (an error, in `error`); `cancel()` stops it and
    removes everything it made. `message`: the job's latest progress line."""

    def __init__(self, reference, options, scene, fit_budget_s: float = 0.1):
        self.message = "starting"
        self.stages = api.fit_lod_stages(reference, options, scene, progress=self._progress,
                                         fit_budget_s=fit_budget_s)
        self.state = RUNNING
        self.summary = None
        self.error = None
        self.ticks = 0

    def _progress(self, text: str) -> None:
        self.message = text

    def start(self) -> None:
        next(self.stages)  # the checks, then the first unit's announcement

    def tick(self) -> str:
        if self.state != RUNNING:
            return self.state
        self.ticks += 1
        try:
            next(self.stages)
        except StopIteration as done:
            self.summary, self.state = done.value, FINISHED
        except Exception as exc:  # noqa: BLE001 - reported by the operator; the job cleaned up
            self.error, self.state = f"{type(exc).__name__}: {exc}", CANCELLED
        return self.state

    def cancel(self) -> str:
        if self.state == RUNNING:
            self.stages.close()  # GeneratorExit at the current unit: the job removes what it made
            self.error, self.state = "stopped: the LOD and its cameras were removed", CANCELLED
        return self.state

    def on_event(self, event_type: str, event_value: str) -> str | None:
        """What Fit LOD's modal() does with an event: Esc (press) stops and
        removes what the job made, a timer event runs a unit; any other event
        passes through (None). Returns the state after it."""
        if event_type == "ESC" and event_value == "PRESS":
            return self.cancel()
        if event_type == "TIMER":
            return self.tick()
        return None
