"""The Blender-free backend (PyOpenGL on headless EGL) against the Blender one.

Both GL contexts live in this process: every PyOpenGL backend call makes its
own context current and gives Blender's back afterwards. The same kernels
(`gpu_kernels` specs) run on both; results must agree.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import H, W, flat_texture, mean_psnr, render_targets, small_engine

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from sge_optimizer import gpu_kernels as K  # noqa: E402
from sge_optimizer.engine.params import perturb  # noqa: E402
from sge_optimizer.engine import Engine, SceneArrays, Settings, View, synthetic  # noqa: E402
from sge_optimizer.engine.lighting import Light, Lighting  # noqa: E402
from sge_optimizer.engine.materials import LitMaterial, ScalarChannel  # noqa: E402
from sge_optimizer.engine.scene import LitScene  # noqa: E402
from sge_optimizer.engine.backends.pyopengl import glsl_declarations, glsl_source  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gl():
    pytest.importorskip("OpenGL")
    from sge_optimizer.engine.backends.pyopengl import PyOpenGLBackend

    return PyOpenGLBackend()


# GLSL generation (no GL needed) ------------------------------------------------
def test_declarations_follow_the_spec():
    acc = glsl_declarations(K.ACCUMULATE_GRADIENT, "compute")
    assert "layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;" in acc
    assert "layout(binding = 0, r32i) uniform iimage2D grad_pos;" in acc
    assert "layout(binding = 2) uniform isampler2D id_plus;" in acc
    assert "layout(binding = 7) uniform sampler2D triangles;" in acc
    assert "uniform ivec2 image_size;" in acc and "uniform int key_tex;" in acc
    fixed = glsl_declarations(K.FIXED_TO_FLOAT, "compute")
    assert "layout(binding = 0, r32i) readonly uniform iimage2D accumulator;" in fixed
    assert "layout(binding = 1, r32f) writeonly uniform image2D result;" in fixed
    vert = glsl_declarations(K.RASTERIZE, "vertex")
    assert "layout(location = 0) in int vertex_index;" in vert
    assert "layout(location = 1) in vec2 corner_uv;" in vert
    assert "flat out int triangle_id;" in vert and "smooth out vec2 uv;" in vert
    assert "uniform mat4 view_projection;" in vert
    frag = glsl_declarations(K.RASTERIZE, "fragment")
    assert "flat in int triangle_id;" in frag and "smooth in vec2 uv;" in frag
    assert "layout(location = 1) out int out_id;" in frag and "vertex_index" not in frag
    with pytest.raises(ValueError):
        glsl_declarations(K.RASTERIZE, "compute")
    # The body is the spec's own source, not a copy.
    source = glsl_source(K.PERTURB, "compute")
    assert source.startswith("#version 450 core\n") and source.endswith(K.PERTURB.compute_source())


# Both backends -----------------------------------------------------------------
def test_every_kernel_compiles(gl):
    for spec in K.ALL_KERNELS:
        gl.shader(spec)


def test_readback_layout_and_integers(gl):
    data = np.arange(5 * 3 * 4, dtype=np.float32).reshape(3, 5, 4)
    np.testing.assert_array_equal(gl.read(gl.texture(5, 3, "RGBA32F", data)), data)
    one = np.arange(7 * 2, dtype=np.float32).reshape(2, 7, 1)
    np.testing.assert_array_equal(gl.read(gl.texture(7, 2, "R32F", one)), one)
    acc = gl.texture(4, 2, "R32I")
    gl.clear(acc, 7)
    np.testing.assert_array_equal(gl.read(acc), np.full((2, 4, 1), 7.0, np.float32))
    np.testing.assert_array_equal(gl.read_fixed(acc, 2, fixed=False), np.full((2, 4, 1), 7.0))
    with pytest.raises(ValueError):
        gl.texture(2, 2, "R32I", np.zeros((2, 2, 1)))


def test_perturb_is_identical(backend, gl):
    engines = [small_engine(b) for b in (backend, gl)]
    for e in engines:
        perturb(e.backend, e.params.positions, 0, e.make_substep(5, 0, 0))
    a, b = (e.params.positions for e in engines)
    np.testing.assert_array_equal(backend.read(a.plus), gl.read(b.plus))
    np.testing.assert_array_equal(backend.read(a.minus), gl.read(b.minus))


def test_render_matches(backend, gl):
    engines = [small_engine(b) for b in (backend, gl)]
    for view in range(3):
        ours, theirs = engines[1].render(view), engines[0].render(view)
        assert (theirs["id"] > 0).mean() > 0.2
        agree = ours["id"] == theirs["id"]
        assert agree.mean() > 0.995
        both = agree & (ours["id"] > 0)
        np.testing.assert_allclose(ours["uv"][both], theirs["uv"][both], atol=1e-5)
        np.testing.assert_allclose(ours["color"][both], theirs["color"][both], atol=1e-5)
        assert np.all(ours["color"][ours["id"] == 0] == 0)


@pytest.mark.parametrize("estimator", ["per_pixel", "full_image"])
def test_gradients_match(backend, gl, estimator):
    got = []
    for b in (backend, gl):
        engine = small_engine(b, estimator=estimator)
        engine.clear_gradients()
        engine.substep(engine.make_substep(3, 0, 2))
        got.append(engine.read_gradients())
    theirs, ours = got
    resolution = 4.0 / K.FIXED_SCALE  # a few fixed-point counts per contribution
    if estimator == "full_image":
        assert ours["global"][0] == pytest.approx(theirs["global"][0], abs=W * H * resolution)
        assert abs(theirs["global"][0]) > 0
        return
    for name in ("positions", "texture"):
        assert np.abs(theirs[name]).max() > 1e-3
        np.testing.assert_array_equal(ours[name + "_count"], theirs[name + "_count"])
        tol = (theirs[name + "_count"] + 1)[..., None] * resolution
        assert np.all(np.abs(ours[name] - theirs[name]) <= tol)


def test_adam_step_matches(backend, gl):
    results = []
    for b in (backend, gl):
        engine = small_engine(b, smoothness=50.0)
        start = engine.texture()
        engine.step()
        results.append({"positions": engine.positions(), "texture": engine.texture(),
                        "moment1": b.read(engine.params.texture.moment1),
                        "moment2": b.read(engine.params.texture.moment2)})
    theirs, ours = results
    assert not np.array_equal(ours["texture"], start)
    np.testing.assert_allclose(ours["positions"], theirs["positions"], atol=1e-5)
    np.testing.assert_allclose(ours["texture"], theirs["texture"], atol=1e-5)
    np.testing.assert_allclose(ours["moment1"], theirs["moment1"], rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(ours["moment2"], theirs["moment2"], rtol=1e-3, atol=1e-12)


def test_texture_fit_matches(backend, gl):
    psnrs = []
    mesh = synthetic.uv_sphere(12, 6)
    for b in (backend, gl):
        views = render_targets(b, mesh, synthetic.checker_texture(8), synthetic.orbit_cameras(3), W, H)
        engine = Engine(b, SceneArrays(mesh, flat_texture(8, 0.5), views),
                        # 50 steps: no warm-up, every texel each step, so both fits move far.
                        Settings(optimize_positions=False, seed=7, steps=50, warmup_steps=0, texture_strata=1))
        before = mean_psnr(engine)
        for _ in range(50):
            engine.step()
        psnrs.append(mean_psnr(engine))
        assert psnrs[-1] > before + 3.0, (b.name, before, psnrs[-1])
    assert abs(psnrs[0] - psnrs[1]) < 0.5, psnrs


def test_blender_backend_still_works_after_ours(backend, gl):
    """Our context switches give Blender's context back."""
    gl.finish()
    data = np.random.default_rng(0).random((4, 6, 4)).astype(np.float32)
    tex = backend.texture(6, 4, "RGBA32F", data)
    gl.read(gl.texture(6, 4, "RGBA32F", data))
    np.testing.assert_array_equal(backend.read(tex), data)


@pytest.mark.parametrize("platform", ["device", "surfaceless"])
def test_each_egl_platform_runs_the_kernels(gl, platform):
    from sge_optimizer.engine.backends.pyopengl import PyOpenGLBackend

    other = PyOpenGLBackend(platform=platform)
    assert other.platform.startswith("EGL device" if platform == "device" else "Mesa surfaceless")
    engines = [small_engine(b) for b in (gl, other)]
    for e in engines:
        perturb(e.backend, e.params.positions, 0, e.make_substep(2, 0, 0))
    np.testing.assert_array_equal(gl.read(engines[0].params.positions.plus),
                                  other.read(engines[1].params.positions.plus))
    np.testing.assert_array_equal(engines[0].render(0)["id"], engines[1].render(0)["id"])


def test_gpu_timings(gl):
    gl.reset_timings()
    gl.timing = True
    try:
        engine = small_engine(gl)  # positions too: P runs for them only
        with gl.timer("step"):
            engine.step()
        timings = gl.gpu_timings
    finally:
        gl.timing = False
        gl.reset_timings()
    # G is timed under its variant's name (K.accumulate_gradient_kernel).
    g = [name for name in timings if name.startswith("accumulate_gradient")]
    for name in ("perturb", "rasterize", *g, "adam_step", "step"):
        assert name in timings and all(t >= 0 for t in timings[name]), timings
    assert g, timings
    assert sum(timings["step"]) >= max(timings["rasterize"])


def test_standalone_tool_runs_without_bpy():
    pytest.importorskip("OpenGL")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "engine_standalone.py"), "--steps", "200", "--size", "48"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYOPENGL_PLATFORM": "egl"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 2)[1:] for line in proc.stdout.splitlines() if line.startswith("PSNR"))
    before = float(lines["before"].split()[0])
    after = float(lines["after"].split()[0])
    assert after > before + 5.0, proc.stdout


def test_dropped_objects_are_deleted(gl):
    import gc

    tex = gl.texture(4, 4, "R32F")
    target = gl.render_target(4, 4)
    ids = (tex.id, target.color.id, target.framebuffer)
    del tex, target
    gc.collect()
    gl.finish()  # any call collects the garbage
    with gl._current():
        assert not gl.GL.glIsTexture(ids[0]) and not gl.GL.glIsTexture(ids[1])
        assert not gl.GL.glIsFramebuffer(ids[2])


def test_unknown_bindings_are_errors(gl):
    tex = gl.texture(8, 8, "RGBA32F")
    with pytest.raises(KeyError):
        gl.dispatch(K.PERTURB, (1, 1, 1), images={"nope": tex}, samplers={}, constants={})
    with pytest.raises(KeyError):
        gl.dispatch(K.PERTURB, (1, 1, 1), images={}, samplers={}, constants={"nope": 1})


def test_pyopengl_is_optional():
    """Importing the module needs no PyOpenGL; creating a backend says what to install."""
    code = (
        "import sys; sys.modules['OpenGL'] = None\n"
        f"sys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "import _bootstrap; _bootstrap.load_package()\n"
        "from sge_optimizer.engine.backends import pyopengl\n"
        "from sge_optimizer import gpu_kernels as K\n"
        "assert pyopengl.glsl_source(K.RASTERIZE, 'fragment')\n"
        "try:\n    pyopengl.PyOpenGLBackend()\n"
        "except ImportError as exc:\n    print(exc)\n"
        "assert 'bpy' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "pip install PyOpenGL" in proc.stdout


def test_lit_render_matches(backend, gl):
    """RASTERIZE_LIT_FIT, with corner frames as vertex inputs, on both backends."""
    mesh = synthetic.uv_sphere(24, 12)
    eyes = synthetic.fibonacci_sphere(2, 3.5)
    proj = synthetic.perspective(0.8, 1.0)
    views = [View(f"v{i}", (proj @ synthetic.look_at(e)).astype(np.float32), np.zeros((48, 48, 4), np.float32))
             for i, e in enumerate(eyes)]
    sun = Light("SUN", (1.0, 0.9, 0.8), 3.0, (0, 0, 0), (-0.4, 0.5, -0.77))
    lit = LitScene.from_material(LitMaterial(roughness=ScalarChannel(constant=0.4)),
                                 Lighting(lights=(sun,), ambient=(0.1, 0.1, 0.1)),
                                 synthetic.sphere_frames(mesh), list(eyes))
    scene = SceneArrays(mesh, synthetic.checker_texture(32), views, lit=lit)
    engines = [Engine(b, scene, Settings(optimize_positions=False, optimize_texture=False, lit=True,
                                         optimize_roughness=True))
               for b in (backend, gl)]
    for view in range(2):
        theirs, ours = (e.render(view) for e in engines)
        both = (ours["id"] == theirs["id"]) & (ours["id"] > 0)
        assert both.mean() > 0.2
        np.testing.assert_allclose(ours["color"][both], theirs["color"][both], atol=1e-4)
    # R+ of a roughness sub-step: its key, eps and stratum reach the kernel
    # through the uniform block (K.LIT_DRAW) on both backends alike.
    sub = engines[0].make_substep(5, 1, 1)
    assert "material" in sub.groups
    colors = []
    for e in engines:
        e.raster.draw(e.raster.plus, 1, sign=1, sub=sub)
        colors.append(e.backend.read(e.backend.target_textures(e.raster.plus)["color"]))
    theirs = engines[0].render(1)
    both = (theirs["id"] > 0)
    np.testing.assert_allclose(colors[1][both], colors[0][both], atol=1e-4)
    assert np.abs(colors[0][both] - theirs["color"][both]).max() > 1e-3  # the perturbation shows


def test_shadowed_lit_render_matches(backend, gl):
    """The shadow pass (SHADOW_DEPTH into a render target the atlas's size) and
    the lookup in RASTERIZE_LIT_FIT (shadow_atlas) on both backends."""
    import math

    mesh = synthetic.ground_and_plate()
    eye = np.array([0.4, -3.0, 2.5])
    view = View("v", (synthetic.perspective(0.9, 1.0) @ synthetic.look_at(eye)).astype(np.float32),
                np.zeros((48, 48, 4), np.float32))
    sun = Light("SUN", (1.0, 0.9, 0.8), 3.0, (0, 0, 0), (0.35, -0.25, -0.9), radius=math.radians(3))
    spot = Light("SPOT", (1.0, 0.9, 0.8), 300.0, (-1.2, 0.8, 3.0), (0.3, -0.2, -0.93), radius=0.05,
                 spot_size=1.2, spot_blend=0.2)
    lit = LitScene.from_material(LitMaterial(roughness=ScalarChannel(constant=0.6)),
                                 Lighting(lights=(sun, spot), ambient=(0.05, 0.05, 0.05)),
                                 synthetic.flat_frames(mesh), [eye])
    scene = SceneArrays(mesh, synthetic.checker_texture(32), [view], lit=lit)
    theirs, ours = (Engine(b, scene, Settings(optimize_positions=False, lit=True)).render(0) for b in (backend, gl))
    both = (ours["id"] == theirs["id"]) & (ours["id"] > 0)
    assert both.mean() > 0.15
    assert np.mean(np.abs(ours["color"][both] - theirs["color"][both]).max(-1) > 1e-4) < 0.002
    ground = both & (ours["id"] <= 2 * 8 * 8)
    lum = ours["color"][..., :3].mean(-1)
    assert np.mean(lum[ground] < 0.3 * np.median(lum[ground])) > 0.03  # the plate's shadow is there
