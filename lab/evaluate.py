"""Evaluate fits as a user would judge them: Workbench-rendered targets,
scored on views that were not targets (the cases: lab/cases.py; the scenes and
the scoring: tests/scenes.py).

    bash tools/dev.sh python lab/evaluate.py [--cases a,b] [--quality draft] [--set steps=N] [--json out.json]
    bash tools/dev.sh python lab/evaluate.py --lit      # the lit cases (EEVEE, Cycles)
    bash tools/dev.sh python lab/evaluate.py --lod      # Fit LOD to Reference (EEVEE, Cycles)

Prints a markdown table: PSNR on the target views and on held-out views
(before -> after, both rendered by Blender's Workbench), held-out silhouette
IoU, steps, fit seconds, seconds to 30 and 35 dB held-out, and the step whose
parameters the run kept. Unset flags use the tool's defaults. The lit cases
(targets and held-out views rendered by EEVEE or Cycles) add the albedo's
error against the true texture and a fitted roughness; they are not in the
default run (each renders ~100 frames).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import cases  # noqa: E402
import scenes  # noqa: E402

from sge_optimizer.engine import QUALITY_PRESETS, Settings  # noqa: E402


def main(argv=None) -> int:
    names = [c.name for c in cases.ALL_CASES]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", help=f"comma-separated, of: {', '.join(names)} "
                   "(default: the Workbench ones)")
    p.add_argument("--lit", action="store_true", help="the lit cases (EEVEE and Cycles targets)")
    p.add_argument("--lod", action="store_true",
                   help="the Fit LOD to Reference case (a subdivided, displaced sphere decimated to 10%%; EEVEE)")
    p.add_argument("--snapshots", type=int, default=8, help="held-out scorings during a fit")
    p.add_argument("--quality", default="standard", choices=tuple(QUALITY_PRESETS),
                   help="the preset whose steps (and views a step) each case gets; its resolution stays the case's")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a Settings field, e.g. --set steps=500 (repeatable)")
    args = p.parse_args(argv)
    if args.lod:
        return run_lod()
    if args.cases:
        wanted = args.cases.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            p.error(f"unknown case(s) {', '.join(unknown)}")
        chosen = [c for c in cases.ALL_CASES if c.name in wanted]
    else:
        chosen = list(cases.LIT_CASES if args.lit else cases.CASES)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in Settings.field_names():
            p.error(f"unknown setting {key!r}")
        overrides[key] = json.loads(value) if value not in ("", "None") else None
    results = []
    for case in chosen:
        print(f"{case.name}: {case.describe}", file=sys.stderr, flush=True)
        # The defaults as tools/optimize.py gives them for the case's kind of
        # fit (the --quality preset's steps), then the --set overrides.
        settings = scenes.settings_for(case, None, args.quality)
        results.append(scenes.run_case(case, settings, args.snapshots,
                                       log=lambda m: print(m, file=sys.stderr, flush=True), overrides=overrides))
        print(cases.any_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(cases.any_table(results))
    if args.json:
        args.json.write_text(json.dumps([{**dataclasses.asdict(r), "case": dataclasses.asdict(r.case)}
                                         for r in results], indent=2))
    return 0


def run_lod() -> int:
    """The LOD case with the operator's defaults, EEVEE then Cycles."""
    import bpy

    from sge_optimizer.addon.lod import LodOptions, fit_lod

    summaries = []
    for engine in ("EEVEE", "CYCLES"):
        bpy.ops.wm.read_homefile(use_empty=True, app_template="")
        reference = scenes.lod_reference(bpy.context.scene)
        pictures = Path("out") / "lod" / engine.lower()
        summary = fit_lod(reference, LodOptions(render_engine=engine, pictures=str(pictures)),
                          progress=lambda m: print(m, file=sys.stderr, flush=True))
        montage = Path("docs") / f"lod_{engine.lower()}.png"
        cases.side_by_side([pictures / f"{n}.png" for n in ("reference", "baked", "fitted")], montage)
        print(f"wrote {montage}", file=sys.stderr)
        summaries.append((f"lod-{engine.lower()}", summary))
        print(cases.lod_table(summaries[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(cases.lod_table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
