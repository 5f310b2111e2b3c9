"""Benchmark: per-step time split into passes, against one forward render.

    bash tools/dev.sh python lab/bench.py [--quick] [--repeats N]
    python lab/bench.py --backend pyopengl     # no Blender: numpy + PyOpenGL + EGL

Prints one table per sweep (a benchmark, not a test):
  paper     the paper's mesh + albedo case (~3K triangles, 1024^2 texture)
  texture   the same mesh, textures 128^2 .. 2048^2, fixed resolution
  pixels    resolutions 128^2 .. 1024^2, fixed texture
  pair      texture steps: R+ and R- as one pair draw against two draws
  shadows   lit steps under one sun: its shadow map against none (256²)
  vertices  lit steps moving vertices (their frames recomputed) against lit base-colour steps

Columns: pass times are medians with a synchronisation before and after each
pass (the `sync` column is what one synchronisation costs on its own);
`step` is the median unsynchronised step (P, R+, R-, G, Adam back to back,
timed over a run of steps with one sync at the end); `fwd` one forward render;
`ratio` = step / fwd (the paper's floor is 2.0); `touched` the texels one
step's Adam visits (the worklist G fills); `wb` reading the parameters
back and writing them into a Blender mesh and image (paid once per write-back,
not per step; `-` on the PyOpenGL backend, which has no Blender).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

from sge_optimizer.engine import Engine, SceneArrays, Settings  # noqa: E402
from sge_optimizer.engine import synthetic  # noqa: E402

PASSES = ("P", "R+", "R-", "G", "Laplacian", "Adam")


def paper_mesh():
    """A UV sphere close to the paper's 3072 triangles / 1748 vertices."""
    return synthetic.uv_sphere(segments=64, rings=25)


def make_engine(backend, mesh, tex_size, res, views=8):
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(views), res, res)
    # Every step perturbs every parameter, as in the paper (runs alternate
    # groups by default, which halves a joint step's work on average).
    return Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs),
                  Settings(steps=10**6, views_per_step=1, alternate_groups=False))


def median(values):
    return statistics.median(values) if values else float("nan")


def sync_cost(backend, n=20):
    backend.finish()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        backend.finish()
        times.append(time.perf_counter() - t)
    return median(times)


def write_back_time(engine, repeats=3):
    """Read the parameters back and write them into a Blender mesh and image."""
    try:
        import bpy
    except ImportError:  # the PyOpenGL backend outside Blender
        return float("nan")
    mesh = bpy.data.meshes.new("bench")
    mesh.vertices.add(engine.params.positions.count)
    tw, th = engine.params.texture.width, engine.params.texture.rows
    image = bpy.data.images.new("bench", tw, th, alpha=True, float_buffer=True)
    times = []
    for _ in range(repeats):
        engine.backend.finish()
        t = time.perf_counter()
        mesh.vertices.foreach_set("co", engine.positions().ravel())
        mesh.update()
        image.pixels.foreach_set(engine.texture().ravel())
        image.update()
        times.append(time.perf_counter() - t)
    bpy.data.meshes.remove(mesh)
    bpy.data.images.remove(image)
    return median(times)


def measure(backend, mesh, tex_size, res, repeats):
    engine = make_engine(backend, mesh, tex_size, res)
    for _ in range(3):  # warm-up: shader compilation, first-touch allocation
        engine.step()
    # Per-pass, synchronised.
    engine.timer.timings = {}
    for _ in range(repeats):
        engine.step()
    per_pass = {name: median(engine.timer.timings.get(name, [])) for name in PASSES}
    engine.timer.timings = None
    engine.substep(engine.make_substep(0, 0, 0))  # how many texels one step's Adam visits
    touched = int(backend.read(engine.gradient.worklist_length)[0, 0, 0])
    engine.clear_gradients()
    # Whole steps, unsynchronised, one sync per run of steps.
    step_times = []
    for _ in range(repeats):
        backend.finish()
        t = time.perf_counter()
        for _ in range(4):
            engine.step()
        backend.finish()
        step_times.append((time.perf_counter() - t) / 4)
    # One forward render.
    fwd = []
    for _ in range(repeats):
        backend.finish()
        t = time.perf_counter()
        engine.raster.draw(engine.raster.plus, 0)
        backend.finish()
        fwd.append(time.perf_counter() - t)
    return {"params": engine.parameter_count, "tris": len(mesh.triangles), "res": res,
            "tex": tex_size, "repeats": repeats, "touched": touched, **per_pass,
            "step": median(step_times), "step_min": min(step_times), "fwd": median(fwd),
            "fwd_min": min(fwd), "wb": write_back_time(engine)}


def make_backend(name: str):
    """The backend and a line saying what it runs on."""
    if name == "pyopengl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        from sge_optimizer.engine.backends.pyopengl import PyOpenGLBackend

        backend = PyOpenGLBackend()
        return backend, f"{backend.renderer} (PyOpenGL, EGL {backend.platform}, OpenGL {backend.version})"
    import bpy
    import gpu

    from sge_optimizer.addon.gpu_backend import BlenderGPUBackend
    from sge_optimizer.addon.gpu_context import ensure_gpu

    ensure_gpu()
    return BlenderGPUBackend(), (f"{gpu.platform.renderer_get()} ({gpu.platform.backend_type_get()}), "
                                 f"Blender {bpy.app.version_string}")


def print_table(title, rows, sync):
    print(f"\n## {title}  (ms; sync alone = {sync * 1e3:.3f} ms)")
    cols = ["params", "tris", "tex", "res", "rep", "touched"] + list(PASSES) + ["step", "step min", "fwd", "fwd min",
                                                                       "ratio", "wb"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r['params']:,}", str(r["tris"]), f"{r['tex']}²", f"{r['res']}²", str(r["repeats"]),
                 f"{r['touched']:,}"]
        cells += [f"{r[p] * 1e3:.2f}" if r[p] == r[p] else "-" for p in PASSES]
        cells += [f"{r['step'] * 1e3:.2f}", f"{r['step_min'] * 1e3:.2f}", f"{r['fwd'] * 1e3:.2f}",
                  f"{r['fwd_min'] * 1e3:.2f}", f"{r['step'] / r['fwd']:.2f}", "-" if r["wb"] != r["wb"] else f"{r['wb'] * 1e3:.1f}"]
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def measure_pair(backend, mesh, tex_size, res, repeats, steps=8):
    """A texture step (positions fixed) with R+ and R- as one pair draw and
    as two draws, timed alternately in the same run (unsynchronised steps)."""
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(8), res, res)
    engine = Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs),
                    Settings(steps=10**6, optimize_positions=False))

    def use(kind):
        engine.raster.pair_draw = kind == "pair"
        return engine

    times = time_in_turn(backend, ("pair", "two"), use, repeats, steps)
    return {"tex": tex_size, "res": res, **times}


def time_in_turn(backend, names: tuple, use, repeats: int, steps: int) -> dict:
    """Median seconds a step of each named engine (`use(name)` prepares and
    returns it), after 3 warm-up steps each, timed in turn `repeats` times
    over `steps` unsynchronised steps (side by side: the machine is noisy)."""
    times = {name: [] for name in names}
    for name in names:
        engine = use(name)
        for _ in range(3):
            engine.step()
    for _ in range(repeats):
        for name in names:
            engine = use(name)
            backend.finish()
            t = time.perf_counter()
            for _ in range(steps):
                engine.step()
            backend.finish()
            times[name].append((time.perf_counter() - t) / steps)
    return {name: median(t) for name, t in times.items()}


def measure_update(backend, mesh, tex_size, res, repeats, steps=24):
    """A texture step with Adam, with the SART-style texel update (G also
    sums each texel's sensitivity), and in SART visits (a visit's steps render
    the view's pixel filter, then charge 4 points: 12 steps here, so a timing
    of 24 steps is two whole visits) charged by bilinear weights from one
    render and by perturbation, engines timed in turn."""
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(8), res, res)
    kinds = {"adam": {"texture_update": "adam"}, "sart": {"sart_visits": False}, "visits": {},
             "visits_perturbation": {"visit_charge": "perturbation"}}
    engines = {kind: Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs),
                            Settings(steps=10**6, optimize_positions=False, **settings))
               for kind, settings in kinds.items()}
    times = time_in_turn(backend, tuple(engines), engines.__getitem__, repeats, steps)
    return {"tex": tex_size, "res": res, **times}


def measure_g_variants(backend, mesh, tex_size, res, repeats, steps=24):
    """G compiled per charge (accumulate_gradient_kernel) against the all-in
    kernel: joint steps (vertices and texels taking turns) and a texture
    fit's SART visits (by weights), engines timed in turn."""
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(8), res, res)
    kinds = {"joint": {"silhouette_fraction": 0.0}, "visits": {"optimize_positions": False}}
    engines = {}
    for kind, settings in kinds.items():
        for specialized in (True, False):
            engine = Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs),
                            Settings(steps=10**6, **settings))
            engine.gradient.specialized = specialized
            engines[(kind, specialized)] = engine
    times = time_in_turn(backend, tuple(engines), engines.__getitem__, repeats, steps)
    return {"tex": tex_size, "res": res, **{f"{kind}_{'variant' if sp else 'all'}": t
                                            for (kind, sp), t in times.items()}}


def measure_clears(backend, mesh, tex_size, res, repeats, steps=24):
    """A draw's attachments cleared by one framebuffer clear against a clear
    of each texture (Blender backend): joint steps and a texture fit's SART
    visits, timed in turn."""
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(8), res, res)
    kinds = {"joint": {"silhouette_fraction": 0.0}, "visits": {"optimize_positions": False}}
    engines = {kind: Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs),
                            Settings(steps=10**6, **settings)) for kind, settings in kinds.items()}
    fast = backend.framebuffer_clears

    def use(name):
        kind, how = name
        backend.framebuffer_clears = fast and how == "framebuffer"
        return engines[kind]

    names = tuple((kind, how) for kind in kinds for how in ("each", "framebuffer"))
    times = time_in_turn(backend, names, use, repeats, steps)
    backend.framebuffer_clears = fast
    return {"tex": tex_size, "res": res, **{f"{kind}_{how}": t for (kind, how), t in times.items()}}


def measure_shadows(backend, mesh, tex_size, res, repeats, steps=8):
    """A lit base-colour step under one sun: without shadows, with its shadow
    map (drawn once: the positions are not fitted), and with the map
    drawn again before every lit draw (as a fit that moves positions would),
    engines timed in turn."""
    import math

    from sge_optimizer.engine.lighting import Light, Lighting
    from sge_optimizer.engine.materials import LitMaterial, ScalarChannel
    from sge_optimizer.engine.scene import LitScene

    eyes = synthetic.fibonacci_sphere(8, 3.5)
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(8), res, res)
    engines = {}
    for name in ("plain", "shadows", "redrawn"):
        sun = Light("SUN", (1.0, 0.95, 0.9), 3.0, (0, 0, 0), (-0.4, 0.5, -0.77), radius=math.radians(3),
                    cast_shadow=name != "plain")
        lit = LitScene.from_material(LitMaterial(roughness=ScalarChannel(constant=0.6)),
                                     Lighting((sun,), ambient=(0.05, 0.05, 0.05)), synthetic.sphere_frames(mesh), eyes)
        engine = Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs, lit=lit),
                        Settings(steps=10**6, optimize_positions=False, lit=True))
        engine.raster.shadows_every_draw = name == "redrawn"
        engines[name] = engine
    times = time_in_turn(backend, tuple(engines), engines.__getitem__, repeats, steps)
    # One lit R draw alone (a plain render of view 0), in turn likewise.
    draws = {name: [] for name in engines}
    for _ in range(repeats):
        for name, engine in engines.items():
            backend.finish()
            t = time.perf_counter()
            for _ in range(steps):
                engine.raster.draw(engine.raster.plus, 0)
            backend.finish()
            draws[name].append((time.perf_counter() - t) / steps)
    return {"tex": tex_size, "res": res, **times, **{f"R_{name}": median(t) for name, t in draws.items()}}


def measure_lit_vertices(backend, mesh, tex_size, res, repeats, steps=8):
    """Lit steps that move vertices (every R recomputes the corners' frames,
    CORNER_FRAMES) against a lit base-colour step, without and with one
    sun's shadows (the map redrawn for every draw of moved positions);
    engines timed in turn. Also the frames kernel alone."""
    import math

    from sge_optimizer.engine.lighting import Light, Lighting
    from sge_optimizer.engine.materials import LitMaterial, ScalarChannel
    from sge_optimizer.engine.scene import LitScene

    eyes = synthetic.fibonacci_sphere(8, 3.5)
    vs = synthetic.render_targets(backend, mesh, synthetic.checker_texture(tex_size),
                                  synthetic.orbit_cameras(8), res, res)
    engines = {}
    for name in ("base colour", "vertices", "vertices, shadows"):
        sun = Light("SUN", (1.0, 0.95, 0.9), 3.0, (0, 0, 0), (-0.4, 0.5, -0.77), radius=math.radians(3),
                    cast_shadow=name.endswith("shadows"))
        lit = LitScene.from_material(LitMaterial(roughness=ScalarChannel(constant=0.6)),
                                     Lighting((sun,), ambient=(0.05, 0.05, 0.05)), synthetic.sphere_frames(mesh), eyes)
        moving = name != "base colour"
        engines[name] = Engine(backend, SceneArrays(mesh, synthetic.flat_texture(tex_size), vs, lit=lit),
                               Settings(steps=10**6, optimize_positions=moving, optimize_texture=not moving, lit=True,
                                        silhouette_fraction=0.0))
    times = time_in_turn(backend, tuple(engines), engines.__getitem__, repeats, steps)
    frames, positions = engines["vertices"].raster.frames, engines["vertices"].params.positions.theta
    kernel = []
    for _ in range(repeats):
        backend.finish()
        t = time.perf_counter()
        for _ in range(steps):
            frames.follow(positions)
        backend.finish()
        kernel.append((time.perf_counter() - t) / steps)
    return {"tex": tex_size, "res": res, "triangles": len(mesh.triangles), **times, "frames": median(kernel)}


def print_lit_vertices_table(rows) -> None:
    print("\n#### lit steps that move vertices (frames from the drawn positions)  (ms a step)")
    print("| tex | res | triangles | base colour | vertices | vertices / base colour | vertices, one sun's shadows "
          "| / base colour | frames kernel, one call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, b, c = r["base colour"], r["vertices"], r["vertices, shadows"]
        print(f"| {r['tex']}² | {r['res']}² | {r['triangles']} | {a * 1e3:.2f} | {b * 1e3:.2f} | {b / a:.2f} "
              f"| {c * 1e3:.2f} | {c / a:.2f} | {r['frames'] * 1e3:.2f} |")
    sys.stdout.flush()


def print_shadows_table(rows) -> None:
    print("\n#### lit steps: one sun's shadow map against none  (ms a step)")
    print("| pass | tex | res | no shadows | shadows | shadows / none | map redrawn each draw | redrawn / none |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for what, prefix in (("step", ""), ("R (one draw)", "R_")):
            a, b, c = (r[prefix + k] for k in ("plain", "shadows", "redrawn"))
            print(f"| {what} | {r['tex']}² | {r['res']}² | {a * 1e3:.2f} | {b * 1e3:.2f} | {b / a:.2f} "
                  f"| {c * 1e3:.2f} | {c / a:.2f} |")
    sys.stdout.flush()


def print_joint_visits_table(title, rows, before, after, before_name, after_name) -> None:
    """A side-by-side table of joint steps and visits' steps, `before` against `after`."""
    print(f"\n#### {title}  (ms a step)")
    print(f"| tex | res | joint, {before_name} | joint, {after_name} | ratio "
          f"| visits, {before_name} | visits, {after_name} | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = []
        for kind in ("joint", "visits"):
            a, b = r[f"{kind}_{before}"], r[f"{kind}_{after}"]
            cells += [f"{a * 1e3:.2f}", f"{b * 1e3:.2f}", f"{b / a:.2f}"]
        print(f"| {r['tex']}² | {r['res']}² | " + " | ".join(cells) + " |")
    sys.stdout.flush()


def print_update_table(rows) -> None:
    print("\n#### texture steps: the SART-style texel update and SART visits against Adam  (ms a step)")
    print("| tex | res | Adam | SART | SART visits (weights) | SART visits (perturbation) | SART / Adam "
          "| visits / Adam (weights) | visits / Adam (perturbation) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tex']}² | {r['res']}² | {r['adam'] * 1e3:.2f} | {r['sart'] * 1e3:.2f} | {r['visits'] * 1e3:.2f} "
              f"| {r['visits_perturbation'] * 1e3:.2f} | {r['sart'] / r['adam']:.2f} | {r['visits'] / r['adam']:.2f} "
              f"| {r['visits_perturbation'] / r['adam']:.2f} |")
    sys.stdout.flush()


def print_pair_table(rows) -> None:
    print("\n#### texture steps: R+ and R- as one pair draw against two draws  (ms a step)")
    print("| tex | res | two draws | one pair draw | pair / two |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tex']}² | {r['res']}² | {r['two'] * 1e3:.2f} | {r['pair'] * 1e3:.2f} | {r['pair'] / r['two']:.2f} |")
    sys.stdout.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smaller sweeps (for a smoke run)")
    p.add_argument("--only", choices=("paper", "texture", "pixels", "pair", "update", "variants", "clears",
                                       "shadows", "vertices"),
                   action="append")
    p.add_argument("--backend", choices=("blender", "pyopengl"), default="blender",
                   help="Blender's gpu module, or the Blender-free PyOpenGL/EGL backend")
    args = p.parse_args(argv)
    backend, where = make_backend(args.backend)
    mesh = paper_mesh()
    print(f"# SGE Optimizer benchmark on {where}")
    print(f"mesh: {len(mesh.triangles)} triangles, {len(mesh.positions)} vertices")
    sync = sync_cost(backend)
    sweeps = args.only or ["paper", "texture", "pixels", "pair", "update", "variants", "clears", "shadows", "vertices"]
    if "paper" in sweeps:
        res = 256 if args.quick else 512
        print_table(f"paper case: 1024² albedo + vertices at {res}²",
                    [measure(backend, mesh, 1024, res, args.repeats)], sync)
    if "texture" in sweeps:
        sizes = (128, 512) if args.quick else (128, 256, 512, 1024, 1152, 2048)
        res = 256
        print_table(f"texture sweep at {res}² (cost against parameters)",
                    [measure(backend, mesh, s, res, args.repeats) for s in sizes], sync)
    if "pixels" in sweeps:
        resolutions = (128, 256) if args.quick else (128, 256, 512, 1024)
        print_table("resolution sweep with a 256² texture (cost against pixels)",
                    [measure(backend, mesh, 256, r, args.repeats) for r in resolutions], sync)
    if "pair" in sweeps:
        sizes = ((512, 256),) if args.quick else ((512, 256), (1024, 256), (512, 512))
        print_pair_table([measure_pair(backend, mesh, t, r, args.repeats) for t, r in sizes])
    if "update" in sweeps:
        sizes = ((512, 256),) if args.quick else ((512, 256), (1024, 256), (512, 512))
        print_update_table([measure_update(backend, mesh, t, r, args.repeats) for t, r in sizes])
    if "variants" in sweeps:
        sizes = ((512, 256),) if args.quick else ((512, 256), (1024, 256), (512, 512))
        print_joint_visits_table("G compiled per charge against the all-in kernel",
                                 [measure_g_variants(backend, mesh, t, r, args.repeats) for t, r in sizes],
                                 "all", "variant", "all-in G", "G per charge")
    if "clears" in sweeps and args.backend == "blender":
        sizes = ((512, 256),) if args.quick else ((512, 256), (1024, 256), (512, 512))
        print_joint_visits_table("a draw's clear: each texture against one framebuffer clear",
                                 [measure_clears(backend, mesh, t, r, args.repeats) for t, r in sizes],
                                 "each", "framebuffer", "each", "framebuffer")

    if "shadows" in sweeps:
        print_shadows_table([measure_shadows(backend, mesh, 512, 256, args.repeats)])
    if "vertices" in sweeps:
        print_lit_vertices_table([measure_lit_vertices(backend, mesh, 512, 256, args.repeats)])


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else None)
