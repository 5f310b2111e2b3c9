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
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap  # noqa: E402

_bootstrap.load_package()


from sge_optimizer.engine import Engine, SceneArrays, Settings, synthetic  # noqa: E402
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
    views = synthetic.render_targets(backend, mesh, synthetic.checker_texture(args.texture), cameras,
                                     args.size, args.size)
    engine = Engine(backend, SceneArrays(mesh, synthetic.flat_texture(args.texture), views),
                    Settings(optimize_positions=False, optimize_texture=True,
                             steps=args.steps, seed=args.seed))
    before, after, seconds = synthetic.timed_fit(engine, args.steps)
    print(f"PSNR before {before:.2f} dB")
    print(f"PSNR after  {after:.2f} dB ({args.steps} steps, {seconds:.2f} s)")
    assert "bpy" not in sys.modules, "the standalone engine must not import bpy"
    return 0 if after > before else 1


if __name__ == "__main__":
    sys.exit(main())
