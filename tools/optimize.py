"""Optimize a mesh and its base-colour texture to the target cameras, scripted.

Inside Blender:
    blender --background scene.blend --python tools/optimize.py -- \\
        --object NAME --cameras COLLECTION --steps N --save OUT.blend --summary OUT.json
With the `bpy` module:
    python tools/optimize.py scene.blend --object NAME --cameras COLLECTION ...

Fit LOD to Reference (a decimated, unwrapped copy with maps baked from NAME,
fitted to EEVEE or Cycles renders of it; see the README):
    python tools/optimize.py lod scene.blend --object NAME [--ratio 0.1] [--engine eevee|cycles] \
        [--texture-size 512] [--views 16] [--held-out 6] --save OUT.blend --summary OUT.json

Progress goes to stderr. Ctrl+C stops the run and keeps the result so far
(as the panel's Stop does): --save and --summary are still written, and the
exit status is 130. Exit status: 0 success, 2 bad input (nothing is
optimized or written), 1 other failure, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap  # noqa: E402

_bootstrap.load_package()

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports after Ctrl+C


def build_parser() -> argparse.ArgumentParser:
    from sge_optimizer.engine import QUALITY_PRESETS, Settings

    d = Settings()
    p = argparse.ArgumentParser(prog="optimize.py", description=__doc__.split("\n")[0],
                                epilog="Ctrl+C stops the run, keeps the result so far, still writes "
                                       "--save and --summary, and exits 130.")
    p.add_argument("blend", nargs="?", type=Path, help="the .blend file to open (bpy-module mode)")
    p.add_argument("--object", required=True, help="the mesh object to optimize")
    p.add_argument("--cameras", required=True, help="collection of target cameras (background images)")
    p.add_argument("--quality", choices=tuple(QUALITY_PRESETS), default="standard",
                   help="preset for --steps, --resolution and --views-per-step (default: standard: "
                        "1200 steps for a joint fit, 1260 for a base-colour fit in SART visits, 900 for another "
                        "one-group fit); those flags override it")
    p.add_argument("--steps", type=int, default=None, help="steps (default: from --quality)")
    p.add_argument("--optimize", choices=("both", "positions", "texture"), default="both",
                   help="what to optimize (default: both)")
    p.add_argument("--lr-positions", type=float, default=None,
                   help="Adam step for positions in world units (default: 0.2%% of the bounding diagonal)")
    p.add_argument("--texture-update", choices=Settings.TEXTURE_UPDATES, default=d.texture_update,
                   help="how texels step: sart (the residual their pixels ask, weighed by their finite "
                        "differences) or adam (default: %(default)s; a lit fit's texture uses Adam)")
    p.add_argument("--sart-visits", action=argparse.BooleanOptionalAction, default=d.sart_visits,
                   help="a SART texture-only fit (and a joint fit's texture phase) visits one view at a "
                        "time: the exact residual of its "
                        "filtered render, charged through a step per filter point, one update a visit "
                        "(default: on)")
    p.add_argument("--visit-points", type=int, default=d.visit_points,
                   help="filter points a SART visit charges, a step each after its mean's renders "
                        "(default: %(default)s)")
    p.add_argument("--lr-texture", type=float, default=None,
                   help="texel step size (default: 1.0, SART's relaxation, 1.5 in SART visits, or 0.1, Adam's rate)")
    p.add_argument("--eps-positions", type=float, default=None,
                   help="perturbation of positions in world units (default: one pixel at the object)")
    p.add_argument("--eps-texture", type=float, default=d.eps_texture)
    p.add_argument("--lr-decay", type=float, default=d.lr_decay,
                   help="fraction of the learning rates left at the last step")
    p.add_argument("--resolution", type=int, default=None,
                   help="working resolution, longest side in pixels (default: from --quality)")
    p.add_argument("--views-per-step", type=int, default=None, help="(default: from --quality)")
    p.add_argument("--estimator", choices=Settings.ESTIMATORS, default=d.estimator)
    p.add_argument("--smoothness", type=float, default=d.smoothness,
                   help="weight of the uniform-Laplacian term on positions (0: off)")
    p.add_argument("--alternate-groups", action=argparse.BooleanOptionalAction, default=d.alternate_groups,
                   help="joint fits: positions on even steps, texture on odd ones (default: on)")
    p.add_argument("--lit", action=argparse.BooleanOptionalAction, default=d.lit,
                   help="render the base colour under the scene's lights and the rest of its Principled "
                        "material (roughness, metallic, normal map), for lit targets such as EEVEE or "
                        "Cycles renders; needs --optimize texture (default: off, flat texture colour)")
    p.add_argument("--fit-roughness", action=argparse.BooleanOptionalAction, default=d.optimize_roughness,
                   help="with --lit: also fit the Principled Roughness (a constant) (default: off)")
    p.add_argument("--fit-metallic", action=argparse.BooleanOptionalAction, default=d.optimize_metallic,
                   help="with --lit: also fit the Principled Metallic (a constant) (default: off)")
    p.add_argument("--fit-normal", action=argparse.BooleanOptionalAction, default=d.optimize_normal,
                   help="with --lit: also fit the tangent-space normal-map image (Non-Color, through a "
                        "Normal Map node), written back into that image (default: off)")
    p.add_argument("--filter-sigma", type=float, default=d.filter_sigma,
                   help="pixel filter (Gaussian sigma, pixels) of the jitter and antialiasing, with "
                        "--pixel-filter gaussian (default: %(default)s, Cycles'); with auto the scene's "
                        "engine sets it")
    p.add_argument("--pixel-filter", choices=Settings.PIXEL_FILTERS, default=d.pixel_filter,
                   help="how the targets' engine forms a pixel: auto (default: Workbench's antialiasing when "
                        "the scene renders with Workbench, else the Gaussian), gaussian, workbench")
    p.add_argument("--running-residual", type=float, default=d.running_residual,
                   help="share of a view's running mean render each visit replaces; the gradient charges "
                        "its residual, not the step's own sample's (0: off; default: %(default)s)")
    p.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=d.antialias,
                   help="sub-pixel jitter per step and antialiased scoring (default: on)")
    p.add_argument("--texture-strata", type=int, choices=(1, 4), default=d.texture_strata,
                   help="4: each sub-step perturbs one texel parity class of four; 1: every texel")
    p.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=d.keep_best,
                   help="hand back the best parameters seen, never worse than the start (default: on)")
    p.add_argument("--start-margin-db", type=float, default=d.start_margin_db,
                   help="with --keep-best, replace the start only when this much better on the targets")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="learning rates rise linearly over this many updates")
    p.add_argument("--shape-fraction", type=float, default=d.shape_fraction,
                   help="joint fits: positions move during this first fraction of the steps, "
                        "then the texture settles alone, in SART visits")
    p.add_argument("--silhouette-fraction", type=float, default=d.silhouette_fraction,
                   help="joint fits: vertices alone, following silhouettes only, during this first "
                        "fraction of the steps, then colour too, taking turns with the texture")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--write-back-every", type=int, default=0,
                   help="write to the Blender data every N steps (default: only at the end)")
    p.add_argument("--report-every", type=int, default=25, help="progress line every N steps")
    p.add_argument("--save", type=Path, help="save the result as this .blend (the texture is packed)")
    p.add_argument("--summary", type=Path, help="write the JSON summary here")
    return p


def apply_quality(args) -> None:
    """Fill --steps, --resolution and --views-per-step left unset from --quality."""
    from sge_optimizer.engine import quality_preset

    visits = args.optimize == "texture" and not args.lit and args.texture_update == "sart" and args.sart_visits
    preset = quality_preset(args.quality, joint=args.optimize == "both", visits=visits)
    for name in ("steps", "resolution", "views_per_step"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])


def settings_from_args(args):
    from sge_optimizer.engine import Settings

    apply_quality(args)
    return Settings(
        optimize_positions=args.optimize in ("both", "positions"),
        optimize_texture=args.optimize in ("both", "texture"),
        steps=args.steps, lr_positions=args.lr_positions, lr_texture=args.lr_texture,
        texture_update=args.texture_update, sart_visits=args.sart_visits, visit_points=args.visit_points,
        eps_positions=args.eps_positions, eps_texture=args.eps_texture, lr_decay=args.lr_decay,
        estimator=args.estimator, views_per_step=args.views_per_step, smoothness=args.smoothness,
        seed=args.seed, write_back_every=args.write_back_every, alternate_groups=args.alternate_groups,
        antialias=args.antialias, keep_best=args.keep_best, lit=args.lit,
        filter_sigma=args.filter_sigma, pixel_filter=args.pixel_filter, running_residual=args.running_residual,
        optimize_roughness=args.fit_roughness, optimize_metallic=args.fit_metallic,
        optimize_normal=args.fit_normal, warmup_steps=args.warmup_steps,
        start_margin_db=args.start_margin_db, texture_strata=args.texture_strata,
        shape_fraction=args.shape_fraction, silhouette_fraction=args.silhouette_fraction)


def open_blend(path: Path) -> str | None:
    """Open the .blend at `path`; the reason it cannot be opened, or None."""
    import bpy

    if not path.is_file():
        return f"blend file '{path}' not found"
    try:
        bpy.ops.wm.open_mainfile(filepath=str(path.resolve()))
    except RuntimeError as exc:  # not a .blend, or truncated: Blender's reason is one line
        reason = str(exc).strip().removeprefix("Error: ")
        return f"'{path}' is not a .blend file, or is damaged (Blender: {reason})"
    return None


def unwritable_reason(path: Path, flag: str) -> str | None:
    """Why `path` cannot be written at the end of the run, or None. Checked
    before the first step so that a long run is never lost to a bad path;
    missing parent folders are created, as the save would."""
    try:
        if path.is_dir():
            return f"{flag} '{path}' is a folder"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):  # Blender saves via a temporary file there
            pass
        if path.exists():
            with path.open("ab"):  # append mode: opens for writing without changing it
                pass
    except OSError as exc:
        return f"{flag} '{path}' cannot be written: {exc.strerror or exc}"
    return None


def outputs_writable(args) -> bool:
    """Whether --save and --summary (where given) can be written; prints why not."""
    for path, flag in ((args.save, "--save"), (args.summary, "--summary")):
        reason = path and unwritable_reason(path, flag)
        if reason:
            print(f"error: {reason}", file=sys.stderr)
            return False
    return True


def open_and_find(args):
    """Open `args.blend` (if given) and return the object `args.object`; None
    after printing why not."""
    import bpy

    if args.blend is not None:
        reason = open_blend(args.blend)
        if reason:
            print(f"error: {reason}", file=sys.stderr)
            return None
    obj = bpy.data.objects.get(args.object)
    if obj is None:
        print(f"error: no object named '{args.object}' in the file", file=sys.stderr)
    return obj


def run(argv) -> int:
    import bpy

    from sge_optimizer.addon.api import InputError, OptimizationRun, progress_text, run_to_end

    args = build_parser().parse_args(argv)
    obj = open_and_find(args)
    if obj is None:
        return EXIT_BAD_INPUT
    collection = bpy.data.collections.get(args.cameras)
    if collection is None:
        print(f"error: no collection named '{args.cameras}' in the file", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        settings = settings_from_args(args)  # fills --resolution from --quality
        run = OptimizationRun(obj, collection, settings, resolution=args.resolution)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not outputs_writable(args):
        return EXIT_BAD_INPUT
    summary = run_to_end(run, progress=lambda p: print(progress_text(p), file=sys.stderr, flush=True),
                         report_every=max(1, args.report_every), keep_on_interrupt=True)
    if summary.get("stopped"):
        print(f"interrupted at step {summary['steps']}/{run.settings.steps}: keeping the result so far",
              file=sys.stderr)
    print(f"PSNR before {summary['mean_psnr_before']:.2f} dB, after {summary['mean_psnr_after']:.2f} dB "
          f"({summary['steps']} steps, {summary['seconds']:.1f} s{kept_note(summary)})", file=sys.stderr)
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2))
    if args.save:
        image = bpy.data.images[summary["image"]]
        if summary["image_storage"] in ("file", "generated"):
            image.pack()  # keep the optimized pixels inside the .blend (a packed one already is)
        bpy.ops.wm.save_as_mainfile(filepath=str(args.save.resolve()), copy=True)
    return EXIT_INTERRUPTED if summary.get("stopped") else 0


def kept_note(summary: dict) -> str:
    """', kept step K' when the run handed back an earlier checkpoint than its last step."""
    kept = summary.get("kept_step")
    if kept == 0:
        return ", kept the start: no clear gain"
    return f", kept step {kept}" if kept is not None and kept != summary["steps"] else ""


def build_lod_parser() -> argparse.ArgumentParser:
    from sge_optimizer.addon.lod import LodOptions

    d = LodOptions()
    p = argparse.ArgumentParser(prog="optimize.py lod", description="Fit LOD to Reference: a decimated copy of "
                                "--object with a fresh unwrap and baked maps, fitted to renders of it")
    p.add_argument("blend", nargs="?", type=Path, help="the .blend file to open (bpy-module mode)")
    p.add_argument("--object", required=True, help="the high-poly reference mesh object")
    p.add_argument("--ratio", type=float, default=d.ratio, help="fraction of the triangles kept")
    p.add_argument("--texture-size", type=int, default=d.texture_size)
    p.add_argument("--views", type=int, default=d.target_views, help="target cameras")
    p.add_argument("--held-out", type=int, default=d.held_out_views, help="cameras that only judge")
    p.add_argument("--resolution", type=int, default=d.resolution)
    p.add_argument("--engine", choices=("eevee", "cycles"), default=d.render_engine.lower(),
                   help="what renders the targets and judges the result")
    p.add_argument("--cycles-samples", type=int, default=d.cycles_samples)
    p.add_argument("--steps", type=int, default=None, help="(default: the Standard preset's)")
    p.add_argument("--save", type=Path)
    p.add_argument("--summary", type=Path)
    return p


def run_lod(argv) -> int:
    import bpy

    from sge_optimizer.addon.api import InputError
    from sge_optimizer.addon.lod import LodOptions, fit_lod, summary_text

    args = build_lod_parser().parse_args(argv)
    obj = open_and_find(args)
    if obj is None:
        return EXIT_BAD_INPUT
    if not outputs_writable(args):
        return EXIT_BAD_INPUT
    options = LodOptions(ratio=args.ratio, texture_size=args.texture_size, target_views=args.views,
                         held_out_views=args.held_out, resolution=args.resolution,
                         render_engine=args.engine.upper(), cycles_samples=args.cycles_samples, steps=args.steps)
    try:
        summary = fit_lod(obj, options, progress=lambda text: print(text, file=sys.stderr, flush=True))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary_text(summary), file=sys.stderr)
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2))
    if args.save:
        bpy.ops.wm.save_as_mainfile(filepath=str(args.save.resolve()), copy=True)
    return 0


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    try:
        if argv[:1] == ["lod"]:
            return run_lod(argv[1:])
        return run(argv)
    except SystemExit as exc:  # argparse: bad flags
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before the first step, or again while saving
        print("interrupted before the result could be written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a clear last word, non-zero exit
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if "--" in sys.argv:
        # Inside Blender --python: sys.exit would be swallowed; quit with the code.
        os._exit(code)
    sys.exit(code)
