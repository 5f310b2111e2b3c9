"""The demo: fit a smoothed, grey Suzanne to a detailed, colourful one seen by cameras.

Everything is built in code (no files needed): the reference object, its
texture, the cameras, and the targets (rendered with the optimizer's own
rasterizer into the cameras' background images).

    python tools/demo.py [--steps N] [--out out]
    blender --background --python tools/demo.py -- [--steps N]

Writes OUT/: view_NN.png (target | before | after | |difference|),
loss.csv, loss.svg (labelled plot), loss.png, summary.json, result.blend.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from sge_optimizer.addon import scene_inputs, target_setup  # noqa: E402
from sge_optimizer.addon.fit_run import OptimizationRun, drive, progress_text, run_stages  # noqa: E402
from sge_optimizer.engine import Settings  # noqa: E402
from sge_optimizer.engine.color import linear_to_srgb  # noqa: E402
from sge_optimizer.engine.synthetic import checker_texture, flat_texture  # noqa: E402


def colourful_texture(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    tex = checker_texture(size, tiles=8)
    tex[..., 0] = 0.5 + 0.5 * np.sin(6.0 * x + 2.0 * np.cos(5.0 * y))
    return tex


def _mesh_from_ops(op, name, **kwargs):
    op(**kwargs)
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    return obj


def smoothed_copy(obj, name: str, iterations: int, factor: float = 0.5):
    """A new object with `obj`'s mesh (same topology and UVs) after
    `iterations` of uniform Laplacian smoothing."""
    mesh = obj.data.copy()
    mesh.name = name
    mesh.materials.clear()
    n = len(mesh.vertices)
    co = np.empty(3 * n, np.float32)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3).astype(np.float64)
    edges = np.empty(2 * len(mesh.edges), np.int64)
    mesh.edges.foreach_get("vertices", edges)
    edges = edges.reshape(-1, 2)
    degree = np.bincount(edges.ravel(), minlength=n).astype(np.float64)[:, None]
    for _ in range(iterations):
        total = np.zeros_like(co)
        np.add.at(total, edges[:, 0], co[edges[:, 1]])
        np.add.at(total, edges[:, 1], co[edges[:, 0]])
        co += factor * (total / np.maximum(degree, 1) - co)
    mesh.vertices.foreach_set("co", co.astype(np.float32).ravel())
    mesh.update()
    copy = bpy.data.objects.new(name, mesh)
    copy.matrix_world = obj.matrix_world
    bpy.context.scene.collection.objects.link(copy)
    return copy


def build_scene(cameras: int = 12, resolution: int = 256, texture_size: int = 256, smoothed: bool = False):
    """Reference Suzanne (textured), source with a flat grey texture, cameras
    with targets. The source is a UV sphere (the tests' scene), or with
    `smoothed` the reference's mesh smoothed (the demo: a coarse start with
    features melted and ears shrunk, same topology and UVs)."""
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    reference = _mesh_from_ops(bpy.ops.mesh.primitive_monkey_add, "Reference", size=1.6, calc_uvs=True)
    target_setup.apply_subdivision(reference, 1)
    reference.data.materials.append(target_setup.textured_material(
        "Reference", target_setup.new_image("Reference Albedo", colourful_texture(texture_size))))
    if smoothed:
        source = smoothed_copy(reference, "Source", iterations=30)
    else:
        source = _mesh_from_ops(bpy.ops.mesh.primitive_uv_sphere_add, "Source", segments=32,
                                ring_count=16, radius=0.9)
    source.data.materials.append(target_setup.textured_material(
        "Source", target_setup.new_image("Source Albedo", flat_texture(texture_size))))
    collection = target_setup.add_cameras_around(reference, cameras, "Targets")
    cams = scene_inputs.collection_cameras(collection)
    scene.camera = cams[0]
    target_setup.capture_targets(reference, cams, hide=[source])
    reference.hide_viewport = reference.hide_render = True
    return source, collection


def side_by_side(*images: np.ndarray) -> np.ndarray:
    gap = np.ones((images[0].shape[0], 4, 4), np.float32)
    parts = []
    for img in images:
        parts += [img, gap]
    return np.concatenate(parts[:-1], axis=1)


def over_white(premultiplied: np.ndarray) -> np.ndarray:
    """A linear premultiplied render over white, sRGB-encoded for a PNG."""
    out = premultiplied.copy()
    out[..., :3] += 1.0 - premultiplied[..., 3:4]
    out[..., :3] = linear_to_srgb(np.clip(out[..., :3], 0, 1))
    out[..., 3] = 1.0
    return np.clip(out, 0, 1)


def save_png(pixels: np.ndarray, path: Path) -> None:
    path.write_bytes(target_setup.encode_png(pixels))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list:
    """Round values (1, 2, 5 times a power of ten apart) covering [lo, hi]."""
    span = hi - lo if hi > lo else abs(lo) or 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list:
    """Tick values for a log axis over [lo, hi] (positive): decades, or round
    values when the range is under a decade."""
    a, b = math.log10(lo), math.log10(hi)
    if b - a >= 1:
        return [10.0 ** e for e in nice_ticks(math.ceil(a), math.floor(b)) if e == int(e)]
    return [v for v in nice_ticks(lo, hi) if v > 0]


def _log_range(values) -> tuple:
    v = np.log10(np.maximum(np.asarray(values, np.float64), 1e-12))
    lo, hi = float(v.min()), float(v.max())
    return v, lo, (hi if hi > lo else lo + 1)


def plot_svg(steps: list, values: list, width: int = 640, height: int = 360) -> str:
    """The loss curve as an SVG: log-scale loss against step, with axes,
    ticks, values and labels."""
    left, right, top, bottom = 80, 20, 30, 50
    pw, ph = width - left - right, height - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="18" text-anchor="middle" font-size="14">'
           'SGE Optimizer: loss per step</text>']
    if len(values) >= 2:
        v, lo, hi = _log_range(values)
        s0, s1 = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1

        def x(step):
            return left + (step - s0) / (s1 - s0) * pw

        def y(log_value):
            return top + (1 - (log_value - lo) / (hi - lo)) * ph

        for t in log_ticks(10 ** lo, 10 ** hi):
            ty = y(math.log10(t))
            out.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{left + pw}" y2="{ty:.1f}" stroke="#ddd"/>')
            out.append(f'<line x1="{left - 5}" y1="{ty:.1f}" x2="{left}" y2="{ty:.1f}" stroke="black"/>')
            out.append(f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{t:.3g}</text>')
        for t in nice_ticks(s0, s1):
            tx = x(t)
            out.append(f'<line x1="{tx:.1f}" y1="{top + ph}" x2="{tx:.1f}" y2="{top + ph + 5}" stroke="black"/>')
            out.append(f'<text x="{tx:.1f}" y="{top + ph + 18}" text-anchor="middle">{t:g}</text>')
        points = " ".join(f"{x(s):.1f},{y(lv):.1f}" for s, lv in zip(steps, v))
        out.append(f'<polyline points="{points}" fill="none" stroke="#1a4dcc" stroke-width="1.5"/>')
    out += [f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
            f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
            f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">step</text>',
            f'<text x="16" y="{top + ph / 2}" text-anchor="middle" '
            f'transform="rotate(-90 16 {top + ph / 2})">loss (mean squared error, log scale)</text>',
            "</svg>"]
    return "\n".join(out) + "\n"


def plot_curve(values: list, width: int = 480, height: int = 240) -> np.ndarray:
    """The same log-scale plot as an RGBA array, with axes and tick marks at
    the SVG's ticks (no text: loss.svg has the values)."""
    img = np.ones((height, width, 4), np.float32)
    img[[8, height - 9], 8:width - 8, :3] = 0.6
    img[8:height - 8, [8, width - 9], :3] = 0.6
    if len(values) < 2:
        return img
    v, lo, hi = _log_range(values)
    for t in log_ticks(10 ** lo, 10 ** hi):  # grid line and tick per labelled value
        row = int(10 + (math.log10(t) - lo) / (hi - lo) * (height - 21))
        img[row, 9:width - 9, :3] = 0.88
        img[row, 3:9, :3] = 0.3
    for t in nice_ticks(0, len(values) - 1):
        col = int(10 + t / max(len(values) - 1, 1) * (width - 21))
        img[3:9, col, :3] = 0.3
    xs = np.linspace(10, width - 11, len(v))
    ys = 10 + (v - lo) / (hi - lo) * (height - 21)  # bottom-up rows
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 2
        for t in np.linspace(0, 1, n):
            x, y = int(x0 + t * (x1 - x0)), int(y0 + t * (y1 - y0))
            img[max(y - 1, 0):y + 1, max(x - 1, 0):x + 1, :3] = (0.1, 0.3, 0.8)
    return img


def write_outputs(run: OptimizationRun, before_renders: list, out: Path) -> None:
    for i, view in enumerate(run.inputs.arrays.views):
        after = run.after[i]["color"]  # finish() rendered it
        diff = np.abs(after - view.target)
        diff[..., 3] = 1.0
        panel = side_by_side(over_white(view.target), over_white(before_renders[i]), over_white(after),
                             np.clip(diff * 4, 0, 1))
        save_png(panel, out / f"view_{i:02d}.png")
    with open(out / "loss.csv", "w") as f:
        f.write("step,loss\n")
        for step, loss in run.loss_history:
            f.write(f"{step},{loss:.8g}\n")
    save_png(plot_curve([loss for _, loss in run.loss_history]), out / "loss.png")
    (out / "loss.svg").write_text(plot_svg([s for s, _ in run.loss_history], [v for _, v in run.loss_history]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4000,
                        help="steps (about 28.9 dB; the other settings are the defaults)")
    parser.add_argument("--cameras", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256, help="working resolution (longest side)")
    parser.add_argument("--texture-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source, collection = build_scene(args.cameras, args.resolution, args.texture_size, smoothed=True)
    settings = Settings(steps=args.steps)  # otherwise the defaults a user gets
    run = OptimizationRun(source, collection, settings, resolution=args.resolution)
    def report():
        print(progress_text(run.progress()), file=sys.stderr)

    stages = drive(run, max_steps=25, between=report)
    next(stages)  # run.start()
    before = [run.engine.render_color(i, antialias=True) for i in range(len(run.inputs.arrays.views))]
    print(f"demo: {len(source.data.vertices)} vertices, {args.texture_size}^2 texture, "
          f"{args.cameras} cameras, PSNR before {np.mean([m['psnr'] for m in run.before]):.2f} dB",
          file=sys.stderr)
    summary = run_stages(stages)
    report()  # the last step, after its loss was read
    summary["demo_seconds"] = time.perf_counter() - t0
    write_outputs(run, before, args.out)
    with open(args.out / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    bpy.ops.wm.save_as_mainfile(filepath=str((args.out / "result.blend").resolve()))
    print(f"PSNR before: {summary['mean_psnr_before']:.2f} dB", flush=True)
    print(f"PSNR after:  {summary['mean_psnr_after']:.2f} dB", flush=True)
    print(f"wrote {args.out}/ in {summary['demo_seconds']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    sys.exit(main(argv))
