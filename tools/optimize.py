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
import signal
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap  # noqa: E402

_bootstrap.load_package()

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports after Ctrl+C


def build_parser() -> argparse.ArgumentParser:
    """The CLI: its own flags by hand, every Settings field's from its Flag
    (engine/settings.py), in groups: main, Advanced, Research."""
    from sge_optimizer.engine import QUALITY_PRESETS

    p = argparse.ArgumentParser(prog="optimize.py", description=__doc__.split("\n")[0],
                                epilog="Ctrl+C stops the run, keeps the result so far, still writes "
                                       "--save and --summary, and exits 130.")
    p.add_argument("blend", nargs="?", type=Path, help="the .blend file to open (bpy-module mode)")
    p.add_argument("--object", required=True, help="the mesh object to optimize")
    p.add_argument("--cameras", required=True, help="collection of target cameras (background images)")
    steps = "; ".join(f"{name}: {v['joint_steps']} steps for a joint fit, {v['visit_steps']} for a base-colour "
                      f"fit in SART visits, {v['steps']} for another one-group fit, at {v['resolution']} px"
                      for name, v in QUALITY_PRESETS.items())
    p.add_argument("--quality", choices=tuple(QUALITY_PRESETS), default="standard",
                   help=f"preset for --steps, --resolution and --views-per-step ({steps}); those flags "
                        "override it (default: %(default)s)")
    p.add_argument("--optimize", choices=("both", "positions", "texture"), default="both",
                   help="what to optimize (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=None,
                   help="working resolution, longest side in pixels (default: from --quality)")
    groups = {"user": p, "advanced": p.add_argument_group(
        "Advanced", "step sizes, schedule and pixel filter; their defaults were measured (docs/decisions/)"),
        "research": p.add_argument_group(
            "Research", "the paper's baselines (--estimator full_image; --texture-update adam, pure SGE for "
                        "texels) and experiment switches; the defaults are the product's")}
    add_settings_arguments(groups)
    p.add_argument("--report-every", type=int, default=25, help="progress line every N steps (default: %(default)s)")
    p.add_argument("--save", type=Path, help="save the result as this .blend (the texture is packed)")
    p.add_argument("--summary", type=Path, help="write the JSON summary here")
    return p


def add_settings_arguments(groups: dict) -> None:
    """A flag for each Settings field that has one, in its category's group."""
    from dataclasses import fields

    from sge_optimizer.engine.settings import MODES, Settings, cli_flag

    for f in fields(Settings):
        flag, name = f.metadata["flag"], cli_flag(f.name)
        if name is None:
            continue
        if flag.auto_mode:  # --lit [auto|on|off], --no-lit: decided before the run (addon/auto_choices.py)
            no = "--no-" + name[2:]
            groups[flag.category].add_argument(
                name, no, dest=f.name, action=ModeAction, choices=MODES, nargs="?", const="on", default="auto",
                help=f"{flag.help.replace('%', '%%')} (default: auto, {flag.auto_mode.replace('%', '%%')}; "
                     f"{name} alone: on, {no}: off)")
            continue
        if flag.auto:
            default = flag.auto.replace("%", "%%")
        elif flag.preset:
            default = "from --quality"
        elif f.type == "bool":
            default = "on" if f.default else "off"
        else:
            default = "%(default)s"
        bounds = flag.range_text() if flag.choices is None else ""
        help = f"{flag.help.replace('%', '%%')} ({bounds + ', ' if bounds else ''}default: {default})"
        kind = ({"action": argparse.BooleanOptionalAction} if f.type == "bool" else
                {"type": int} if f.type == "int" else {"type": float} if "float" in f.type else {})
        if flag.choices is not None:
            kind["choices"] = flag.choices
        groups[flag.category].add_argument(name, dest=f.name, default=None if flag.preset else f.default,
                                           help=help, **kind)


class ModeAction(argparse.Action):
    """`--lit` alone: on; `--lit auto|on|off`; `--no-lit`: off."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, "off" if option_string.startswith("--no-") else values)


def apply_quality(args) -> None:
    """Fill --steps, --resolution and --views-per-step left unset from
    --quality (--lit auto counted as unlit here; `choices_from_args` lets
    the run's fit take its own count of steps)."""
    from sge_optimizer.engine import quality_preset

    if not hasattr(args, "steps_preset"):
        args.steps_preset = args.quality if args.steps is None else None
    visits = (args.optimize == "texture" and args.lit != "on" and args.texture_update == "sart"
              and args.sart_visits)
    preset = quality_preset(args.quality, joint=args.optimize == "both", visits=visits)
    for name in ("steps", "resolution", "views_per_step"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])


def settings_from_args(args):
    """The Settings of the flags; an auto | on | off flag is its "on" here
    (`choices_from_args` carries "auto" to the run)."""
    from sge_optimizer.engine.settings import Settings, cli_flag, flag_of

    apply_quality(args)

    def value(name):
        given = getattr(args, name)
        return given == "on" if flag_of(name).auto_mode else given

    return Settings(optimize_positions=args.optimize in ("both", "positions"),
                    optimize_texture=args.optimize in ("both", "texture"),
                    **{name: value(name) for name in Settings.field_names() if cli_flag(name)})


def choices_from_args(args):
    """What the flags leave to the scene: --lit and --fit-normal (auto, on,
    off), and --steps when --quality set it (the run's fit takes its count)."""
    from sge_optimizer.addon.auto_choices import Choices

    apply_quality(args)
    return Choices(lit=args.lit, fit_normal=args.optimize_normal, steps_preset=args.steps_preset)


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
    before the first step so that a long run is never lost to a bad path.
    Nothing is left behind: missing parent folders are made for the check and
    removed again (`make_output_folders` makes them when the file is written)."""
    made = []
    try:
        if path.is_dir():
            return f"{flag} '{path}' is a folder"
        missing = [folder for folder in path.parents if not folder.exists()]
        blocking = path.parents[len(missing)]  # the nearest that exists
        if not blocking.is_dir():
            return f"{flag} '{path}' cannot be written: '{blocking}' is a file, not a directory"
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        with tempfile.TemporaryFile(dir=path.parent):  # Blender saves via a temporary file there
            pass
        if path.exists():
            with path.open("ab"):  # append mode: opens for writing without changing it
                pass
    except OSError as exc:
        return f"{flag} '{path}' cannot be written: {exc.strerror or exc}"
    finally:
        for folder in reversed(made):
            folder.rmdir()
    return None


def make_output_folders(args) -> None:
    """The missing parent folders of --save and --summary, as they are written."""
    for path in (args.save, args.summary):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)


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


def ctrl_c_raises() -> None:
    """Make SIGINT raise KeyboardInterrupt here, whatever this process
    inherited or whoever set it since. Python leaves SIGINT ignored when it
    starts with it ignored, and a shell starts every background job so
    (`optimize.py ... &` in a script, a job runner, a test suite run in the
    background): Ctrl+C and `kill -INT` were then lost and the run went on.
    Under `blender --background --python` the handler in place is Blender's
    own, not Python's. Called at the start and again at each progress line,
    so that nothing installed later (a lazy GPU or render initialisation)
    can keep the signal from the run loop."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def report_progress(progress: dict) -> None:
    from sge_optimizer.addon.api import progress_text

    ctrl_c_raises()
    print(progress_text(progress), file=sys.stderr, flush=True)


def run(argv) -> int:
    import bpy

    from sge_optimizer.addon.api import InputError, OptimizationRun, run_to_end
    from sge_optimizer.addon.auto_choices import choice_lines

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
        run = OptimizationRun(obj, collection, settings, resolution=args.resolution, choices=choices_from_args(args))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in choice_lines(run.choices):
        print(line, file=sys.stderr)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not outputs_writable(args):
        return EXIT_BAD_INPUT
    summary = run_to_end(run, progress=report_progress,
                         report_every=max(1, args.report_every), keep_on_interrupt=True)
    if summary.get("stopped"):
        print(f"interrupted at step {summary['steps']}/{run.settings.steps}: keeping the result so far",
              file=sys.stderr)
    print(f"PSNR before {summary['mean_psnr_before']:.2f} dB, after {summary['mean_psnr_after']:.2f} dB "
          f"({summary['steps']} steps, {summary['seconds']:.1f} s{kept_note(summary)})", file=sys.stderr)
    make_output_folders(args)
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
    p.add_argument("--ratio", type=float, default=d.ratio, help="fraction of the triangles kept (0.005: 0.5 %%)")
    p.add_argument("--triangles", type=int, default=d.triangles,
                   help="a triangle budget: at most this many (0: --ratio decides)")
    p.add_argument("--texture-size", type=int, default=d.texture_size)
    p.add_argument("--views", type=int, default=d.target_views, help="target cameras")
    p.add_argument("--held-out", type=int, default=d.held_out_views, help="cameras that only judge")
    p.add_argument("--resolution", type=int, default=d.resolution)
    p.add_argument("--engine", choices=("eevee", "cycles"), default=d.render_engine.lower(),
                   help="what renders the targets and judges the result")
    p.add_argument("--cycles-samples", type=int, default=d.cycles_samples)
    p.add_argument("--steps", type=int, default=None, help="(default: the Standard preset's)")
    p.add_argument("--keep-shape", action="store_true",
                   help="keep the decimated copy's vertices and fit its maps only (default: a joint fit of both)")
    p.add_argument("--save", type=Path)
    p.add_argument("--summary", type=Path)
    return p


def run_lod(argv) -> int:
    import bpy

    from sge_optimizer.addon.api import InputError, fit_lod  # fit_lod: a reference in Edit Mode as in Object Mode
    from sge_optimizer.addon.lod import LodOptions, summary_text

    args = build_lod_parser().parse_args(argv)
    obj = open_and_find(args)
    if obj is None:
        return EXIT_BAD_INPUT
    if not outputs_writable(args):
        return EXIT_BAD_INPUT
    options = LodOptions(ratio=args.ratio, triangles=args.triangles, texture_size=args.texture_size, target_views=args.views,
                         held_out_views=args.held_out, resolution=args.resolution,
                         render_engine=args.engine.upper(), cycles_samples=args.cycles_samples, steps=args.steps,
                         fit_positions=not args.keep_shape)
    try:
        summary = fit_lod(obj, options, progress=lod_progress)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary_text(summary), file=sys.stderr)
    make_output_folders(args)
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2))
    if args.save:
        bpy.ops.wm.save_as_mainfile(filepath=str(args.save.resolve()), copy=True)
    return 0


def lod_progress(text: str) -> None:
    ctrl_c_raises()
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    ctrl_c_raises()
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
