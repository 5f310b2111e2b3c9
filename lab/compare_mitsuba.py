"""Side by side with Mitsuba 3: PSNR against wall-clock time on the same task.

    bash lab/peers/setup_mitsuba.sh          # once: libLLVM 19 + .venv-peers (Mitsuba)
    bash tools/dev.sh python lab/compare_mitsuba.py [--seconds 60] [--tasks texture joint]

A benchmark, not a test. For each task it
1. builds the task (a textured sphere seen by orbiting cameras; targets are
   renders of the truth) and writes it to out/peers/<task>.npz;
2. runs SGE Optimizer on it (Blender's `gpu` module), taking snapshots;
3. runs Mitsuba 3 (`llvm_ad_rgb`, lab/peers/mitsuba_fit.py) on the same file in
   a subprocess of its own (its LLVM must not share a process with Mesa's),
   one after the other so neither competes for the cores;
4. renders every snapshot of both with one evaluator (the SGE rasterizer, so
   both are judged by the same pixels) on the target views and on held-out
   views (cameras between the targets' that neither system sees), and reports
   PSNR against time, seconds to 30 and 35 dB held-out, and the speed ratio
   at the best held-out PSNR that each reached within its budget.

Snapshot read-back is excluded from both clocks. Results go to
out/peers/results.json, and the plot to out/peers/psnr_time.png when
.venv-peers has matplotlib.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import numpy as np  # noqa: E402

from peers.scene_file import load_scene, save_scene  # noqa: E402
from sge_optimizer.engine import Engine, MeshArrays, SceneArrays, Settings, View, mean_psnr, synthetic  # noqa: E402
from sge_optimizer.engine.optimizer import pixel_world_size  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "peers"
# SGE_PEER_PYTHON: a Python that imports mitsuba, where .venv-peers cannot be made (a GPU machine).
PEER_PYTHON = Path(shutil.which(os.environ.get("SGE_PEER_PYTHON", "")) or ROOT / ".venv-peers" / "bin" / "python")
DISTANCE, FOV_X, NEAR, FAR = 3.5, 0.8, 0.1, 100.0
LR_DECAY = 0.1
HELD_OUT_VIEWS = 8
HELD_OUT_LEVELS = (30.0, 35.0)  # seconds to these held-out PSNRs are reported


def bumpy(mesh: MeshArrays, amount: float = 0.15) -> np.ndarray:
    """The sphere's vertices pushed in and out by a smooth pattern."""
    p = mesh.positions.astype(np.float64)
    x, y, z = p.T
    radius = 1.0 + amount * np.sin(3 * x) * np.sin(3 * y) * np.cos(2 * z)
    return (p * radius[:, None]).astype(np.float32)


def build_task(backend, kind: str, tex_size: int, res: int, views: int) -> dict:
    """The fitting task: truth, start and targets, in the scene-file layout."""
    mesh = synthetic.uv_sphere(segments=64, rings=25)  # 3072 triangles, the paper's size
    truth_positions = bumpy(mesh) if kind == "joint" else mesh.positions
    truth_texture = synthetic.checker_texture(tex_size, tiles=8)
    eyes = synthetic.fibonacci_sphere(views, DISTANCE)
    task = dict(positions_init=mesh.positions, triangles=mesh.triangles, corner_uvs=mesh.corner_uvs,
                texture_init=synthetic.flat_texture(tex_size), targets=np.zeros((views, res, res, 4), np.float32), eyes=eyes,
                centres=np.zeros_like(eyes), ups=np.array([synthetic.camera_up(e) for e in eyes]),
                fov_x=FOV_X, near=NEAR, far=FAR, truth_positions=truth_positions,
                truth_texture=truth_texture)
    truth = Engine(backend, scene_arrays(task, truth_positions, truth_texture),
                   Settings(optimize_positions=False))
    task["targets"] = np.stack([truth.render(i)["color"] for i in range(views)])
    return task


def held_out(backend, task: dict, count: int = HELD_OUT_VIEWS) -> dict:
    """Cameras between the targets' (their Fibonacci sphere turned 37 degrees
    about Z and tilted 23 degrees) and the truth's renders there: the views
    a fit is judged on. Neither system sees them."""
    a, b = np.radians(37.0), np.radians(23.0)
    turn = (np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]]))
    eyes = synthetic.fibonacci_sphere(count, DISTANCE) @ turn.T
    res = task["targets"].shape[1]
    held = dict(task, eyes=eyes, centres=np.zeros_like(eyes), ups=np.array([synthetic.camera_up(e) for e in eyes]),
                targets=np.zeros((count, res, res, 4), np.float32))
    truth = Engine(backend, scene_arrays(held, task["truth_positions"], task["truth_texture"]),
                   Settings(optimize_positions=False))
    held["targets"] = np.stack([truth.render(i)["color"] for i in range(count)])
    return held


def scene_arrays(task: dict, positions=None, texture=None) -> SceneArrays:
    proj = synthetic.perspective(task["fov_x"], 1.0, task["near"], task["far"])
    views = [View(f"view{i}", (proj @ synthetic.look_at(e, c, u)).astype(np.float32), t)
             for i, (e, c, u, t) in enumerate(zip(task["eyes"], task["centres"], task["ups"],
                                                  task["targets"]))]
    mesh = MeshArrays(task["positions_init"] if positions is None else positions,
                      task["triangles"], task["corner_uvs"])
    return SceneArrays(mesh, task["texture_init"] if texture is None else texture, views)


def snapshot_steps(total_hint: int, count: int) -> set:
    """Roughly geometric step numbers (always including 0)."""
    steps = np.unique(np.round(np.geomspace(1, max(total_hint, 2), count)).astype(int))
    return {0, *steps.tolist()}


def run_sge(backend, task: dict, kind: str, seconds: float, snapshots: int) -> dict:
    tuned = {}
    if kind == "joint":
        # Tuned on this task as Mitsuba's Large Steps were (800-step sweeps):
        # half a pixel of perturbation and a stiffer mesh beat the defaults
        # (1 pixel, smoothness 100) by about 4 dB.
        tuned = {"eps_positions": 0.5 * pixel_world_size(scene_arrays(task)), "smoothness": 1000.0}

    def settings(steps):
        # Learning rates fall to 10 % over the budget, as mitsuba_fit.py's do.
        # This task's targets and both peers' renders are pixel-centre samples
        # (no jitter), and its snapshots are the raw steps (no checkpoints).
        return Settings(optimize_positions=(kind == "joint"), optimize_texture=True, steps=steps,
                        lr_decay=LR_DECAY, antialias=False, keep_best=False, **tuned)

    engine = Engine(backend, scene_arrays(task), settings(10**6))
    engine.step()  # shader compilation happens here, as in Mitsuba's first iteration
    backend.finish()
    # Calibrate the step count (for the decay) and snapshot schedule from the step rate.
    t0 = time.perf_counter()
    for _ in range(4):
        engine.step()
    backend.finish()
    expected = max(int(seconds / ((time.perf_counter() - t0) / 4)), 1)
    engine = Engine(backend, scene_arrays(task), settings(expected))
    wanted = snapshot_steps(expected, snapshots)
    trace = {"times": [], "iterations": [], "textures": [], "positions": []}
    elapsed, step = 0.0, 0
    while True:
        if step in wanted or elapsed >= seconds:
            backend.finish()
            trace["times"].append(elapsed)
            trace["iterations"].append(step)
            trace["textures"].append(engine.texture().astype(np.float16))
            trace["positions"].append(engine.positions())
            if elapsed >= seconds:
                break
        t = time.perf_counter()
        engine.step()
        backend.finish()
        elapsed += time.perf_counter() - t
        step += 1
    print(f"  SGE: {step} steps in {elapsed:.1f} s ({1e3 * elapsed / max(step, 1):.1f} ms/step)")
    return {k: np.asarray(v) for k, v in trace.items()}


def run_mitsuba(task_path: Path, kind: str, seconds: float, snapshots: int, variant: str) -> dict:
    if not PEER_PYTHON.exists():
        raise SystemExit("Mitsuba is not set up: run `bash lab/peers/setup_mitsuba.sh` first")
    out = task_path.with_name(f"{task_path.stem}_mitsuba.npz")
    cmd = [str(PEER_PYTHON), str(ROOT / "lab" / "peers" / "mitsuba_fit.py"), "--scene", str(task_path),
           "--mode", kind, "--seconds", str(seconds), "--snapshots", str(snapshots), "--out", str(out)]
    subprocess.run(cmd, check=True, env=dict(os.environ, SGE_MITSUBA_VARIANT=variant))
    with np.load(out) as data:
        trace = {k: data[k] for k in data.files}
    return trace


def evaluate(backend, task: dict, trace: dict) -> list:
    """Mean PSNR over the task's views of each snapshot, rendered by the SGE rasterizer."""
    values = []
    for texture, positions in zip(trace["textures"], trace["positions"]):
        # Pixel centres, as the targets were rendered (no antialiasing).
        engine = Engine(backend, scene_arrays(task, positions, texture.astype(np.float32)),
                        Settings(optimize_positions=False, antialias=False))
        values.append(mean_psnr(engine.evaluate()))
    return values


def time_to_reach(times, psnrs, level: float) -> float | None:
    """First time a trace reaches `level`, interpolated between snapshots."""
    for i, (t, p) in enumerate(zip(times, psnrs)):
        if p >= level:
            if i == 0:
                return float(t)
            t0, p0 = times[i - 1], psnrs[i - 1]
            return float(t0 + (t - t0) * (level - p0) / (p - p0))
    return None


def make_backend(name: str):
    if name == "pyopengl":
        from sge_optimizer.engine.backends.pyopengl import PyOpenGLBackend

        return PyOpenGLBackend()
    from sge_optimizer.addon.gpu_backend import BlenderGPUBackend
    from sge_optimizer.addon.gpu_context import ensure_gpu

    ensure_gpu()
    return BlenderGPUBackend()


def machine_line(backend) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if hasattr(backend, "renderer"):
        gpu_name = f"{backend.renderer} (PyOpenGL, {backend.platform})"
    else:
        import gpu

        gpu_name = f"{gpu.platform.renderer_get()} (Blender gpu, {gpu.platform.backend_type_get()})"
    return f"{cpu}, {os.cpu_count()} cores; SGE on {gpu_name}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", choices=("texture", "joint"), default=["texture", "joint"])
    p.add_argument("--seconds", type=float, default=60.0, help="wall-clock budget of each system per task")
    p.add_argument("--texture", type=int, default=512, help="texture width and height")
    p.add_argument("--res", type=int, default=256, help="render width and height")
    p.add_argument("--views", type=int, default=16)
    p.add_argument("--snapshots", type=int, default=24)
    p.add_argument("--export-only", action="store_true", help="write the task files and stop")
    p.add_argument("--backend", choices=("blender", "pyopengl"), default="blender",
                   help="SGE on Blender's gpu module, or on the Blender-free PyOpenGL/EGL backend")
    p.add_argument("--mitsuba-variant", default="llvm_ad_rgb",
                   help="llvm_ad_rgb (CPU), or cuda_ad_rgb on an NVIDIA GPU")
    args = p.parse_args(argv)

    backend = make_backend(args.backend)
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_line(backend), "tasks": []}
    print(f"# SGE Optimizer vs Mitsuba 3 on {results['machine']}")
    for kind in args.tasks:
        path = OUT / f"{kind}.npz"
        save_scene(path, **build_task(backend, kind, args.texture, args.res, args.views))
        print(f"wrote {path}")
        if args.export_only:
            continue
        task = load_scene(path)
        name = (f"{kind} fit: {len(task['triangles'])} triangles, {args.texture}² texture, "
                f"{args.res}² pixels, {args.views} views")
        print(f"\n## {name}, {args.seconds:g} s each")
        traces = {"SGE Optimizer": run_sge(backend, task, kind, args.seconds, args.snapshots),
                  f"Mitsuba 3 {args.mitsuba_variant}": run_mitsuba(path, kind, args.seconds, args.snapshots,
                                                                   args.mitsuba_variant)}
        held = held_out(backend, task)
        systems = []
        for system, trace in traces.items():
            systems.append({"name": system, "times": trace["times"].tolist(),
                            "psnr_targets": evaluate(backend, task, trace),
                            "psnr": evaluate(backend, held, trace),
                            "iterations": trace["iterations"].tolist()})
        results["tasks"].append({"name": name, "systems": systems, "ratios": report(systems)})
    if args.export_only:
        return 0
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    if PEER_PYTHON.exists():
        subprocess.run([str(PEER_PYTHON), str(ROOT / "lab" / "peers" / "plot_trace.py"),
                        str(OUT / "results.json"), str(OUT / "psnr_time.png")], check=False)
    return 0


def report(systems: list) -> dict:
    """Print both traces, the seconds to HELD_OUT_LEVELS and the speed ratio
    at each system's best held-out PSNR."""
    ours, peer = systems
    print("| system | time (s) | steps | PSNR target views (dB) | PSNR held-out views (dB) |")
    print("|---|---|---|---|---|")
    for s in systems:
        for t, n, q, h in zip(s["times"], s["iterations"], s["psnr_targets"], s["psnr"]):
            print(f"| {s['name']} | {t:.2f} | {n} | {q:.2f} | {h:.2f} |")
    print("\n| system | " + " | ".join(f"s to {x:g} dB held-out" for x in HELD_OUT_LEVELS)
          + " | best held-out (dB) |")
    print("|---|" + "---|" * (len(HELD_OUT_LEVELS) + 1))
    for s in systems:
        reach = [time_to_reach(s["times"], s["psnr"], x) for x in HELD_OUT_LEVELS]
        s["seconds_to"] = dict(zip(map(str, HELD_OUT_LEVELS), reach))
        print(f"| {s['name']} | " + " | ".join("-" if r is None else f"{r:.1f}" for r in reach)
              + f" | {max(s['psnr']):.2f} |")
    ratios = {}
    for whose, level in (("Mitsuba's best", max(peer["psnr"])), ("SGE's best", max(ours["psnr"]))):
        t_peer = time_to_reach(peer["times"], peer["psnr"], level)
        t_ours = time_to_reach(ours["times"], ours["psnr"], level)
        if t_ours is None or t_peer is None:
            late = ours if t_ours is None else peer
            print(f"at {whose} ({level:.2f} dB): {late['name']} never got there "
                  f"(best {max(late['psnr']):.2f} dB)")
            continue
        # t_peer / t_ours: above 1, SGE got there sooner.
        ratios[whose] = {"psnr": level, "sge_s": t_ours, "peer_s": t_peer, "speedup": t_peer / max(t_ours, 1e-9)}
        print(f"at {whose} ({level:.2f} dB): SGE {t_ours:.2f} s, {peer['name']} {t_peer:.2f} s: "
              f"SGE {t_peer / max(t_ours, 1e-9):.2f}x as fast")
    return ratios


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else None))
