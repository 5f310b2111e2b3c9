"""Every GLSL kernel on a GPU driver without Blender (PyOpenGL/EGL): compile
them all, then run a lit fit (base colour, roughness and normal map under a sun
and two point lights) and an unlit texture fit, each against targets our own
renderer made from the truth. Prints what compiled, the PSNR before and after,
and the time per step. A portability check for drivers the tests never see.

    PYOPENGL_PLATFORM=egl python lab/peers/gpu_kernels_check.py [--platform device]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import numpy as np  # noqa: E402

from sge_optimizer import gpu_kernels as K  # noqa: E402
from sge_optimizer.engine import Engine, SceneArrays, Settings, View, synthetic  # noqa: E402
from sge_optimizer.engine.backends.pyopengl import PyOpenGLBackend  # noqa: E402
from sge_optimizer.engine.lighting import Light, Lighting  # noqa: E402
from sge_optimizer.engine.materials import LitMaterial, NormalChannel, ScalarChannel  # noqa: E402
from sge_optimizer.engine.scene import LitScene  # noqa: E402

RES, VIEWS = 128, 8


def bumps(size: int, tilt: float = 0.5, count: int = 4) -> np.ndarray:
    v, u = (np.mgrid[0:size, 0:size] + 0.5) / size
    x = tilt * np.cos(2 * np.pi * count * u) * np.sin(2 * np.pi * count * v)
    y = tilt * np.sin(2 * np.pi * count * u) * np.cos(2 * np.pi * count * v)
    n = np.stack([-x, -y, np.ones_like(x)], -1)
    return (n / np.linalg.norm(n, axis=-1, keepdims=True) * 0.5 + 0.5).astype(np.float32)


def fit(backend, scene_for, settings: Settings, label: str) -> None:
    """Targets from the truth's antialiased renders, then the fit from the start."""
    truth = Engine(backend, scene_for(True), Settings(optimize_positions=False, lit=settings.lit))
    targets = [truth.render_color(i, antialias=True) for i in range(VIEWS)]
    scene = scene_for(False)
    for view, target in zip(scene.views, targets):
        view.target = target
    engine = Engine(backend, scene, settings)
    before, after, seconds = synthetic.timed_fit(engine, settings.steps)
    print(f"{label}: PSNR {before:.2f} -> {after:.2f} dB in {settings.steps} steps, "
          f"{1e3 * seconds / settings.steps:.2f} ms/step", flush=True)
    if not after > before + 3:
        raise SystemExit(f"{label}: the fit did not converge on this driver")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--platform", choices=("auto", "device", "surfaceless"), default="auto")
    p.add_argument("--steps", type=int, default=600)
    args = p.parse_args(argv)
    backend = PyOpenGLBackend(platform=args.platform)
    print(f"{backend.renderer}, OpenGL {backend.version} (EGL {backend.platform})", flush=True)
    for spec in K.ALL_KERNELS:
        backend.shader(spec)
    print(f"compiled all {len(K.ALL_KERNELS)} kernels", flush=True)

    mesh = synthetic.uv_sphere(48, 24)
    eyes = synthetic.fibonacci_sphere(VIEWS, 3.5)
    proj = synthetic.perspective(0.8, 1.0)
    cams = [(proj @ synthetic.look_at(e)).astype(np.float32) for e in eyes]
    lights = Lighting(lights=(Light("SUN", (1.0, 0.6, 0.5), 3.0, (0, 0, 0), (-0.4, 0.5, -0.77)),
                              Light("POINT", (0.5, 0.9, 0.6), 120.0, (3, -2, 1), (0, 0, -1), radius=0.1),
                              Light("POINT", (0.5, 0.6, 1.0), 120.0, (-2, 3, -1), (0, 0, -1), radius=0.1)),
                      ambient=(0.05, 0.05, 0.05))

    def lit_scene(truth: bool) -> SceneArrays:
        normal = bumps(64) if truth else np.full((64, 64, 3), (0.5, 0.5, 1.0), np.float32)
        material = LitMaterial(roughness=ScalarChannel(constant=0.35 if truth else 0.7),
                               normal=NormalChannel(image=normal))
        lit = LitScene.from_material(material, lights, synthetic.sphere_frames(mesh), list(eyes))
        texture = synthetic.checker_texture(128, tiles=8) if truth else synthetic.flat_texture(128)
        views = [View(f"v{i}", c, np.zeros((RES, RES, 4), np.float32)) for i, c in enumerate(cams)]
        return SceneArrays(mesh, texture, views, lit=lit)

    def unlit_scene(truth: bool) -> SceneArrays:
        texture = synthetic.checker_texture(256, tiles=16) if truth else synthetic.flat_texture(256)
        views = [View(f"v{i}", c, np.zeros((RES, RES, 4), np.float32)) for i, c in enumerate(cams)]
        return SceneArrays(mesh, texture, views)

    fit(backend, lit_scene, Settings(optimize_positions=False, lit=True, optimize_roughness=True,
                                     optimize_normal=True, steps=args.steps), "lit fit (albedo, roughness, normals)")
    fit(backend, unlit_scene, Settings(optimize_positions=False, steps=args.steps), "unlit texture fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
