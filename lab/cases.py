"""The evaluation's cases and its tables: which scenes `lab/evaluate.py`
fits (`CASES`, the Workbench ones; `LIT_CASES`, judged by EEVEE and Cycles)
and how it prints their results. The scenes, the fit and the scoring are
`tests/scenes.py`, which the tests use too.
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from scenes import Case

from sge_optimizer.addon import image_pixels, target_setup


# The benchmark's cases: meshes, textures, minification, camera counts, starts.
CASES = (
    Case("torus-noise", "torus", "noise", 512, 12),
    Case("suzanne-text", "suzanne", "text", 512, 8),
    Case("blob-stripes-1k", "blob", "stripes", 1024, 16),
    Case("torus-4-views", "torus", "noise", 256, 4),
    Case("suzanne-24-views", "suzanne", "stripes", 256, 24),
    Case("torus-joint-exact", "torus", "noise", 512, 12, optimize="both"),
    Case("blob-joint-coarse", "blob", "noise", 256, 12, optimize="both", start="coarse"),
    Case("torus-rerun", "torus", "noise", 512, 12, optimize="both", start="answer"),
)

# Lit fits judged by EEVEE and Cycles (lab/evaluate.py --lit). A 256² texture:
# about a texel a pixel, so the albedo is resolvable and the texture filtering
# gap (see "What Workbench does to a texture") stays small.
LIT_CASES = (
    Case("torus-noise-lit", "torus", "noise", 256, 12, render="eevee", lit=True),
    Case("torus-rough-lit", "torus", "noise", 256, 12, render="eevee", lit=True, roughness=0.35,
         start_roughness=0.7),
    Case("torus-noise-cycles", "torus", "noise", 256, 12, render="cycles", lit=True),
    # Normal-map only (the aim: >= 30 dB held-out): true albedo, flat start.
    Case("torus-normal-lit", "torus", "noise", 256, 12, render="eevee", lit=True, normal_bumps=12, fit_normal=True),
    # Lit joint fits (issue 24): the vertices move and their normals follow. A coarse start
    # (a sphere for the bumpy blob), and a 10 % decimated torus whose flat normal map is fitted
    # too, its lights casting shadows (the torus shades its own inner ring).
    Case("blob-joint-lit", "blob", "noise", 256, 12, render="eevee", lit=True, optimize="both", start="coarse"),
    # The default on a lit scene is a lit joint fit: from the true shape it must keep it.
    Case("torus-joint-lit", "torus", "noise", 256, 12, render="eevee", lit=True, optimize="both"),
    Case("torus-decimated-lit", "torus-fine", "noise", 256, 12, render="eevee", lit=True, optimize="both",
         start="decimated", flat_normal=True, shadows=True),
    # The control: an unlit fit of the same EEVEE targets bakes the light into the albedo.
    Case("torus-noise-baked", "torus", "noise", 256, 12, render="eevee", lit=False),
)
ALL_CASES = CASES + LIT_CASES


def _fmt(x, spec=".1f") -> str:
    return "-" if x is None else format(x, spec)


def _rows(results: list, seconds_to: float, extra_header: str, extra_cells) -> str:
    """A markdown table of `results`: the columns every case has (held-out
    PSNR and IoU, seconds to `seconds_to` dB), then `extra_header`'s, filled by
    `extra_cells(result)`."""
    header = ("| case | what | steps | s | PSNR targets before → after | PSNR held-out before → after "
              f"| IoU held-out before → after | s to {seconds_to:g} dB | {extra_header} |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in results:
        lines.append(
            f"| {r.case.name} | {r.case.describe} | {r.steps} | {r.seconds:.0f} "
            f"| {r.target_before:.1f} → {r.target_after:.1f} | {r.held_before:.1f} → **{r.held_after:.1f}** "
            f"| {r.iou_before:.3f} → {r.iou_after:.3f} | {_fmt(r.seconds_to(seconds_to))} | {extra_cells(r)} |")
    return "\n".join(lines)


def table(results: list) -> str:
    """The Workbench cases' table: seconds to 30 and 35 dB, the step kept, and
    the validation views' PSNR (by our renders) where some were set aside."""
    def cells(r):
        validation = (f"{r.validation[0]:.1f} → {r.validation[1]:.1f}" if r.validation and r.validation[0] is not None
                      else "-")
        return (f"{_fmt(r.seconds_to(35))} | {_fmt(r.kept_step, 'd')}{f' ({r.shape_kept})' if r.shape_kept else ''} "
                f"| {validation}")

    return _rows(results, 30, "s to 35 dB | kept step (shape) | validation (ours) before → after", cells)


def lit_table(results: list) -> str:
    """The lit cases' table: the albedo error and a fitted roughness (or a
    normal map's angle error); seconds to 40 dB (a flat grey start under
    these lights already scores about 30)."""
    def cells(r):
        albedo = f"{r.albedo_rmse[0]:.3f} → **{r.albedo_rmse[1]:.3f}**" if r.albedo_rmse else "-"
        rough = (f"{r.roughness[0]:.2f} → **{r.roughness[1]:.3f}** ({r.roughness[2]:.2f})"
                 if r.roughness else "-")
        if r.normal_degrees:  # a normal-map fit: its angle error in the roughness column's place
            rough = f"normals {r.normal_degrees[0]:.1f}° → **{r.normal_degrees[1]:.1f}°**"
        return f"{albedo} | {rough}"

    return _rows(results, 40, "albedo RMSE before → after | roughness before → after (truth)", cells)


def any_table(results: list) -> str:
    """`table` for the Workbench cases and `lit_table` for the lit ones."""
    unlit = [r for r in results if r.case.render == "workbench"]
    lit = [r for r in results if r.case.render != "workbench"]
    return "\n\n".join(t for t in (table(unlit) if unlit else "", lit_table(lit) if lit else "") if t)


def lod_table(summaries: list) -> str:
    rows = ["| case | triangles | held-out PSNR, baked copy | held-out PSNR, after the fit | kept | "
            "held-out ceiling, any maps | our render vs the targets, before → after | fit s | all s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summaries:
        fit = s.get("fit", {})
        rows.append(f"| {name} | {s['triangles_reference']} → {s['triangles_lod']} | "
                    f"{s['psnr_held_out_before']:.1f} | {s['psnr_held_out_after']:.1f} | {s['kept']} | "
                    f"{s['psnr_held_out_ceiling']:.1f} | "
                    f"{fit.get('mean_psnr_before', float('nan')):.1f} → {fit.get('mean_psnr_after', float('nan')):.1f}"
                    f" | {fit.get('seconds', 0):.0f} | {s['seconds']:.0f} |")
    return "\n".join(rows)


def side_by_side(paths: list, out: Path) -> None:
    """The PNGs at `paths` (same height) next to each other, into `out`."""
    pictures = []
    for path in paths:
        image = bpy.data.images.load(str(path), check_existing=False)
        w, h = image.size
        pictures.append(image_pixels.stored_pixels(image).reshape(h, w, 4))
        bpy.data.images.remove(image)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(target_setup.encode_png(np.concatenate(pictures, axis=1)))
