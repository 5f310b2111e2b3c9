"""The engine without Blender: a synthetic texture fit on the PyOpenGL backend.

    python tools/engine_standalone.py [--steps 200] [--size 64] [--views 6]

Needs only numpy and PyOpenGL (`pip install PyOpenGL`) and Mesa's EGL; never
imports `bpy`. Targets are renders of a checker-textured sphere by the same
rasterizer; the fit starts from a flat grey texture. Prints PSNR before/after.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import numpy as np  # noqa: E402

from sge_optimizer.engine import Engine, SceneArrays, Settings, View, synthetic  # noqa: E402
from sge_optimizer.engine.backends.pyopengl import PyOpenGLBackend  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=64, help="render width and height")
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--texture", type=int, default=16, help="texture size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--platform", choices=("auto", "device", "surfaceless"), default="auto",
                        help="EGL platform (auto: a hardware EGL device if any, else Mesa surfaceless)")
    args = parser.parse_args(argv)

    backend = PyOpenGLBackend(platform=args.platform)
    print(f"backend: {backend.name} on {backend.platform}: {backend.renderer}, OpenGL {backend.version}")
    mesh = synthetic.uv_sphere(24, 12)
    cameras = synthetic.orbit_cameras(args.views)
    w = h = args.size
    views = [View(f"view{i}", c, np.zeros((h, w, 4), np.float32)) for i, c in enumerate(cameras)]
    truth = Engine(backend, SceneArrays(mesh, synthetic.checker_texture(args.texture), views),
                   Settings(optimize_positions=False, optimize_texture=True))
    for i, view in enumerate(views):
        view.target = truth.render(i)["color"]

    start = np.full((args.texture, args.texture, 4), 0.5, np.float32)
    start[..., 3] = 1.0
    engine = Engine(backend, SceneArrays(mesh, start, views),
                    Settings(optimize_positions=False, optimize_texture=True,
                             steps=args.steps, seed=args.seed))
    before = float(np.mean([m["psnr"] for m in engine.evaluate()]))
    t0 = time.perf_counter()
    for _ in range(args.steps):
        engine.step()
    backend.finish()
    seconds = time.perf_counter() - t0
    after = float(np.mean([m["psnr"] for m in engine.evaluate()]))
    print(f"PSNR before {before:.2f} dB")
    print(f"PSNR after  {after:.2f} dB ({args.steps} steps, {seconds:.2f} s)")
    assert "bpy" not in sys.modules, "the standalone engine must not import bpy"
    return 0 if after > before else 1


if __name__ == "__main__":
    sys.exit(main())
