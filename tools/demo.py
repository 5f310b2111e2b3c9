"""The demo: fit a coarse grey sphere to a colourful Suzanne seen by cameras.

Everything is built in code (no files needed): the reference object, its
texture, the cameras, and the targets (rendered with the optimizer's own
rasterizer into the cameras' background images).

    python tools/demo.py [--steps N] [--out out]
    blender --background --python tools/demo.py -- [--steps N]

Writes OUT/: view_NN.png (target | before | after | |difference|),
loss.csv, loss.png, summary.json, result.blend.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from sge_optimizer.addon import scene_io, scene_setup  # noqa: E402
from sge_optimizer.addon.api import OptimizationRun, progress_text  # noqa: E402
from sge_optimizer.engine import Settings  # noqa: E402
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


def apply_subdivision(obj, levels: int) -> None:
    mod = obj.modifiers.new("Subdivision", "SUBSURF")
    mod.levels = mod.render_levels = levels
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = bpy.data.meshes.new_from_object(evaluated)
    obj.modifiers.remove(mod)
    old = obj.data
    obj.data = mesh
    bpy.data.meshes.remove(old)


def build_scene(cameras: int = 12, resolution: int = 256, texture_size: int = 256):
    """Reference Suzanne (textured), source sphere (flat grey), cameras with targets."""
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    reference = _mesh_from_ops(bpy.ops.mesh.primitive_monkey_add, "Reference", size=1.6, calc_uvs=True)
    apply_subdivision(reference, 1)
    reference.data.materials.append(scene_setup.textured_material(
        "Reference", scene_setup.new_image("Reference Albedo", colourful_texture(texture_size))))
    source = _mesh_from_ops(bpy.ops.mesh.primitive_uv_sphere_add, "Source", segments=32,
                            ring_count=16, radius=0.9)
    source.data.materials.append(scene_setup.textured_material(
        "Source", scene_setup.new_image("Source Albedo", flat_texture(texture_size))))
    collection = scene_setup.add_cameras_around(reference, cameras, "Targets")
    cams = scene_io.collection_cameras(collection)
    scene.camera = cams[0]
    scene_setup.capture_targets(reference, cams, hide=[source])
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
    out[..., :3] = scene_io.linear_to_srgb(np.clip(out[..., :3], 0, 1))
    out[..., 3] = 1.0
    return np.clip(out, 0, 1)


def save_png(pixels: np.ndarray, path: Path) -> None:
    path.write_bytes(scene_setup.encode_png(pixels))


def plot_curve(values: list, width: int = 480, height: int = 240) -> np.ndarray:
    """A log-scale line plot as an RGBA array (no plotting library needed)."""
    img = np.ones((height, width, 4), np.float32)
    img[[8, height - 9], 8:width - 8, :3] = 0.6
    img[8:height - 8, [8, width - 9], :3] = 0.6
    if len(values) < 2:
        return img
    v = np.log10(np.maximum(np.asarray(values, np.float64), 1e-12))
    lo, hi = v.min(), v.max() if v.max() > v.min() else v.min() + 1
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=Settings().steps,
                        help="Adam steps (default: the Standard preset's)")
    parser.add_argument("--cameras", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256, help="working resolution (longest side)")
    parser.add_argument("--texture-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source, collection = build_scene(args.cameras, args.resolution, args.texture_size)
    settings = Settings(steps=args.steps)  # the defaults a user gets
    run = OptimizationRun(source, collection, settings, resolution=args.resolution)
    run.start()
    before = [run.engine.render_color(i, antialias=True) for i in range(len(run.inputs.arrays.views))]
    print(f"demo: {len(source.data.vertices)} vertices, {args.texture_size}^2 texture, "
          f"{args.cameras} cameras, PSNR before {np.mean([m['psnr'] for m in run.before]):.2f} dB",
          file=sys.stderr)
    while not run.advance(max_steps=25):
        run.sample_loss()
        print(progress_text(run.progress()), file=sys.stderr)
    summary = run.finish()
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
