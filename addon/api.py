"""The Python API: one optimization run, usable blocking or tick by tick.

    from sge_optimizer.addon.api import optimize
    summary = optimize(bpy.data.objects["Sphere"], bpy.data.collections["Targets"],
                       Settings(steps=500), resolution=256)

Scripts, `tools/optimize.py`, and the operator (blocking and modal) all go
through `OptimizationRun` (addon/fit_run.py); this module is their face.
"""
from __future__ import annotations

from ..engine import Settings
from . import edit_mode, lod
from .errors import InputError
from .fit_run import OptimizationRun, progress_text, run_stages, run_to_end

__all__ = ["OptimizationRun", "optimize", "run_to_end", "progress_text", "InputError", "Settings"]


def optimize(obj, camera_collection, settings: Settings | None = None, resolution: int = 256,
             progress=None, report_every: int = 25, scene=None) -> dict:
    """Blocking run from Blender objects; see `run_to_end`. An object in Edit
    Mode is run in Object Mode and put back."""
    with edit_mode.out_of_edit_mode(obj):
        run = OptimizationRun(obj, camera_collection, settings or Settings(), resolution, scene)
        return run_to_end(run, progress, report_every)


def fit_lod(reference, options=None, scene=None, progress=None) -> dict:
    """Fit LOD to Reference, blocking: a decimated, unwrapped copy of
    `reference` with maps baked from it, fitted to renders of it (see
    `addon/lod.py` and `LodOptions`). Returns the summary."""
    return run_stages(fit_lod_stages(reference, options, scene, progress))


def fit_lod_stages(reference, options=None, scene=None, progress=None, fit_budget_s=None):
    """`fit_lod` as a generator of its units of work (`lod.fit_lod_stages`),
    for a caller that runs it a tick at a time; returns the summary."""
    with edit_mode.out_of_edit_mode(reference):
        return (yield from lod.fit_lod_stages(reference, options, scene, progress, fit_budget_s))