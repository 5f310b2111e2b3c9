"""Mitsuba 3 peer of the SGE Optimizer benchmark: fit the task of a scene file.

    .venv-peers/bin/python lab/peers/mitsuba_fit.py --scene S.npz --mode texture|joint \
        --seconds 60 --out TRACE.npz [--snapshots 24] [tuning flags]
    .venv-peers/bin/python lab/peers/mitsuba_fit.py --scene S.npz --check        # conventions
    .venv-peers/bin/python lab/peers/mitsuba_fit.py --scene S.npz --evaluate TRACE.npz

Benchmark only (set up by lab/peers/setup_mitsuba.sh); imports numpy, Mitsuba/Dr.Jit
and scene_file.py, never bpy or the extension.

SGE's unlit albedo renderer rebuilt in Mitsuba (variant llvm_ad_rgb): the texture is the
radiance of an `area` emitter on the mesh (bitmap, raw, bilinear, repeat), the BSDF is
black, and the integrator only needs the emission seen directly. Vertices are split at
UV seams for Mitsuba; a joint fit optimises the welded positions (through Large Steps)
and gathers them to the split vertices each iteration, so seams cannot tear. Loss: mean
squared error of the RGB render against the target (premultiplied over black, so the
background counts as in SGE; Mitsuba has no alpha gradient, so alpha is not fitted).

Integrators (--integrator; all Mitsuba's own code, the custom ones are thin subclasses):
- texture fit, default `emission_centres`: primary rays through pixel centres, as SGE's
  rasterizer samples the targets (`direct`, Mitsuba's standard, anti-aliases: its
  box-filtered pixels cannot match point-sampled targets, which capped it at ~37 dB);
- joint fit, default `emission_projective_centres`: `direct_projective` reduced to the
  emission seen directly (same image and gradients with a black BSDF, 2x faster) with
  pixel-centre primary rays; silhouette gradients come from projective sampling.

The trace (--out) holds snapshots at roughly geometric times: times (K,) seconds of
optimisation (snapshot copies excluded, JIT compilation included), iterations (K,),
textures (K, th, tw, 4) float16 in SGE's convention (row 0 at the bottom), positions
(K, V, 3) float32 welded, settings (JSON).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def find_libllvm() -> str | None:
    """libLLVM-19 (Mitsuba's LLVM backend aborts with the system's LLVM 15)."""
    hits = sorted(glob.glob("/usr/lib/*/libLLVM-19.so*") + glob.glob("/usr/lib/llvm-19/lib/libLLVM*.so*"))
    if hits:
        return hits[0]
    try:
        listing = subprocess.run(["dpkg", "-L", "libllvm19"], capture_output=True, text=True).stdout
    except OSError:
        return None
    return next((line for line in listing.splitlines() if "libLLVM" in line and ".so" in line), None)


if not os.environ.get("DRJIT_LIBLLVM_PATH"):
    _llvm = find_libllvm()
    if _llvm:
        os.environ["DRJIT_LIBLLVM_PATH"] = _llvm

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import drjit as dr  # noqa: E402
import mitsuba as mi  # noqa: E402

import scene_file  # noqa: E402

# cuda_ad_rgb on a machine with an NVIDIA GPU (lab/compare_mitsuba.py --mitsuba-variant).
mi.set_variant(os.environ.get("SGE_MITSUBA_VARIANT", "llvm_ad_rgb"))

TEX_KEY = "mesh.emitter.radiance.data"
POS_KEY = "mesh.vertex_positions"


# Scene ----------------------------------------------------------------------
def split_at_seams(triangles: np.ndarray, corner_uvs: np.ndarray):
    """Unique (vertex, uv) pairs: Mitsuba wants one UV per vertex.
    Returns the welded vertex of each split vertex (S,), its UV (S, 2), faces (T, 3)."""
    uv_bits = np.ascontiguousarray(corner_uvs, np.float32).reshape(-1, 2).view(np.uint32).astype(np.int64)
    keys = np.column_stack([triangles.reshape(-1).astype(np.int64), uv_bits])
    unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    welded = unique[:, 0].astype(np.uint32)
    uvs = corner_uvs.reshape(-1, 2)[first].astype(np.float32)
    return welded, uvs, inverse.reshape(-1, 3).astype(np.uint32)


def build_scene(task: dict, args, integrator: dict):
    welded, uvs, faces = split_at_seams(task["triangles"], task["corner_uvs"])
    texture = np.ascontiguousarray(task["texture_init"][..., :3], np.float32)
    props = mi.Properties()
    props["bsdf"] = mi.load_dict({"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}})
    # SGE's texture rows start at the bottom and uv (0, 0) is the bottom-left of row 0;
    # Mitsuba's bitmap maps uv (0, 0) to its data row 0, so the rows go in unflipped.
    props["emitter"] = mi.load_dict({
        "type": "area",
        "radiance": {"type": "bitmap", "bitmap": mi.Bitmap(texture), "raw": True,
                     "filter_type": "bilinear", "wrap_mode": "repeat"}})
    mesh = mi.Mesh("mesh", len(welded), len(faces), has_vertex_normals=False,
                   has_vertex_texcoords=True, props=props)
    mp = mi.traverse(mesh)
    mp["vertex_positions"] = dr.ravel(mi.Point3f(task["positions_init"][welded].T))
    mp["vertex_texcoords"] = dr.ravel(mi.Point2f(uvs.T))
    mp["faces"] = dr.ravel(mi.Vector3u(faces.T))
    mp.update()

    h, w = task["targets"].shape[1:3]
    scene = {"type": "scene", "integrator": integrator, "mesh": mesh}
    for i, (eye, centre, up) in enumerate(zip(task["eyes"], task["centres"], task["ups"])):
        scene[f"view{i:03d}"] = {
            "type": "perspective",
            "fov": math.degrees(task["fov_x"]), "fov_axis": "x",
            "near_clip": task["near"], "far_clip": task["far"],
            "to_world": mi.ScalarTransform4f().look_at(origin=[float(x) for x in eye],
                                                      target=[float(x) for x in centre],
                                                      up=[float(x) for x in up]),
            "sampler": {"type": "independent", "sample_count": args.spp},
            "film": {"type": "hdrfilm", "width": int(w), "height": int(h), "pixel_format": "rgb",
                     "rfilter": {"type": "box"}, "sample_border": args.mode == "joint"},
        }
    return mi.load_dict(scene), welded


class _PixelCentres:
    """A sampler stand-in for `sample_rays`: the pixel offset is always (0.5, 0.5)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def sample_count(self):
        return self.sampler.sample_count()

    def next_2d(self, *args, **kwargs):
        return mi.Point2f(0.5, 0.5)

    def next_1d(self, *args, **kwargs):
        return self.sampler.next_1d(*args, **kwargs)


class CentredPRB(mi.ad.integrators.prb.PRBIntegrator):
    """`prb` whose primary rays go through pixel centres, as SGE's rasterizer samples."""

    # The same override as CentredEmissionProjective's: nanobind classes take one base, no mixin.
    def sample_rays(self, scene, sensor, sampler):
        return super().sample_rays(scene, sensor, _PixelCentres(sampler))


class EmissionProjective(mi.ad.integrators.direct_projective.DirectProjectiveIntegrator):
    """`direct_projective` reduced to the emission seen directly (the same image and
    gradients as `direct_projective` when every BSDF is black, without its emitter and
    BSDF samples). Projective sampling of the primary silhouettes gives the position
    gradients at silhouettes; indirect visibility is ignored (sppi must be 0)."""

    def sample(self, mode, scene, sampler, ray, depth, δL, state_in, active,
               project=False, si_shade=None, **kwargs):
        primal = mode == dr.ADMode.Primal
        with dr.resume_grad(when=not primal):
            si = si_shade if si_shade is not None else scene.ray_intersect(
                ray, ray_flags=mi.RayFlags.All, coherent=True, active=active)
            L = si.emitter(scene).eval(si, active)
        return L, active, [], ([dr.detach(ray), mi.Bool(False)] if project else None)


class CentredEmissionProjective(EmissionProjective):
    """EmissionProjective with primary rays through pixel centres: the image and its
    continuous derivatives are SGE's (no anti-aliasing); the silhouette term stays that
    of the box-filtered pixel."""

    def sample_rays(self, scene, sensor, sampler):
        return super().sample_rays(scene, sensor, _PixelCentres(sampler))


mi.register_integrator("prb_centres", lambda props: CentredPRB(props))
mi.register_integrator("emission_projective", lambda props: EmissionProjective(props))
mi.register_integrator("emission_projective_centres", lambda props: CentredEmissionProjective(props))

INTEGRATORS = {
    # Only directly seen emission: the black BSDF makes every other path zero.
    "direct": {"type": "direct", "emitter_samples": 0, "bsdf_samples": 1},
    "prb": {"type": "prb", "max_depth": 1},
    "prb_centres": {"type": "prb_centres", "max_depth": 1},
    # The same image as prb_centres, cheaper (one pass with AD instead of prb's two).
    "emission_centres": {"type": "emission_projective_centres", "sppp": 0, "sppi": 0},
    # Projective sampling handles the silhouettes; sppi=0: no indirect visibility with a
    # black BSDF; sppc and sppp follow `spp`.
    "direct_projective": {"type": "direct_projective", "sppi": 0},
    "prb_projective": {"type": "prb_projective", "max_depth": 1, "sppi": 0},
    "emission_projective": {"type": "emission_projective", "sppi": 0},
    "emission_projective_centres": {"type": "emission_projective_centres", "sppi": 0},
}


DEFAULT_INTEGRATOR = {"texture": "emission_centres", "joint": "emission_projective_centres"}


def integrator_name(args) -> str:
    return args.integrator or DEFAULT_INTEGRATOR[args.mode]


def integrator_dict(args) -> dict:
    return dict(INTEGRATORS[integrator_name(args)])


def targets_mitsuba(task: dict) -> list:
    """Targets as Mitsuba images: RGB (premultiplied over black), row 0 at the top."""
    return [mi.TensorXf(np.ascontiguousarray(t[::-1, :, :3], np.float32)) for t in task["targets"]]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-20))


# Evaluation ------------------------------------------------------------------
def render_pixel_centres(scene, sensor) -> np.ndarray:
    """Premultiplied RGBA sampled at pixel centres (as SGE renders), row 0 at the BOTTOM."""
    w, h = (int(x) for x in sensor.film().size())
    idx = dr.arange(mi.UInt32, w * h)
    pos = mi.Point2f((mi.Float(idx % w) + 0.5) / w, (mi.Float(idx // w) + 0.5) / h)
    ray, _ = sensor.sample_ray(0.0, 0.5, pos, mi.Point2f(0.5))
    si = scene.ray_intersect(ray)
    rgb = si.emitter(scene).eval(si, si.is_valid())
    out = np.zeros((h * w, 4), np.float32)
    out[:, :3] = np.asarray(rgb).T if np.asarray(rgb).shape[0] == 3 else np.asarray(rgb)
    out[:, 3] = np.asarray(si.is_valid())
    return out.reshape(h, w, 4)[::-1]


def mean_psnr(scene, task) -> float:
    """Mean over views of the PSNR of pixel-centre renders (RGBA), as SGE's evaluate()."""
    return float(np.mean([psnr(render_pixel_centres(scene, s), np.clip(t, 0, 1))
                          for s, t in zip(scene.sensors(), task["targets"])]))


def check(task: dict, args) -> int:
    """Render the truth (texture and positions) and compare with the targets."""
    task = dict(task, texture_init=task["truth_texture"], positions_init=task["truth_positions"])
    for name, spp in (("direct", 1), ("direct", 64), ("emission_centres", 1)):
        args.spp = spp
        scene, _ = build_scene(task, args, dict(INTEGRATORS[name]))
        values, flipped = [], []
        for i, target in enumerate(task["targets"]):
            img = np.asarray(mi.render(scene, sensor=i, spp=spp, seed=i))[::-1]
            values.append(psnr(img, target[..., :3]))
            flipped.append(psnr(img[::-1], target[..., :3]))
        print(f"truth, mi.render with {name} at {spp} spp: PSNR {np.mean(values):.2f} dB "
              f"(RGB, mean over {len(values)} views; rows flipped: {np.mean(flipped):.2f} dB)")
    print(f"truth, rays through pixel centres: PSNR {mean_psnr(scene, task):.2f} dB (RGBA)")
    return 0


def evaluate_trace(task: dict, args) -> int:
    """PSNR of each snapshot of a trace, by pixel-centre rays (a quick stand-in for SGE's evaluator)."""
    scene, welded = build_scene(task, args, dict(INTEGRATORS["direct"]))
    params = mi.traverse(scene)
    with np.load(args.evaluate) as trace:
        for t, n, tex, pos in zip(trace["times"], trace["iterations"], trace["textures"], trace["positions"]):
            params[TEX_KEY] = mi.TensorXf(np.ascontiguousarray(tex[..., :3], np.float32))
            params[POS_KEY] = dr.ravel(mi.Point3f(pos[welded].T))
            params.update()
            rms = float(np.sqrt(np.mean(np.sum((pos - task["truth_positions"]) ** 2, -1))))
            print(f"  {t:8.2f} s  iteration {n:6d}  PSNR {mean_psnr(scene, task):.2f} dB  "
                  f"position RMS error {rms:.4f}")
    return 0


# Fit ------------------------------------------------------------------------
class Trace:
    def __init__(self, alpha: np.ndarray):
        self.alpha = alpha
        self.times, self.iterations, self.textures, self.positions = [], [], [], []

    def add(self, elapsed: float, iteration: int, texture, positions) -> None:
        rgb = np.asarray(texture, np.float32).reshape(self.alpha.shape + (3,))
        self.textures.append(np.concatenate([rgb, self.alpha[..., None]], -1).astype(np.float16))
        self.positions.append(np.asarray(positions, np.float32).reshape(-1, 3))
        self.times.append(elapsed)
        self.iterations.append(iteration)

    def save(self, path: str, settings: dict) -> None:
        np.savez(path, times=np.asarray(self.times, np.float64),
                 iterations=np.asarray(self.iterations, np.int64),
                 textures=np.stack(self.textures), positions=np.stack(self.positions),
                 settings=np.asarray(json.dumps(settings)))


def fit(task: dict, args) -> int:
    joint = args.mode == "joint"
    integrator = integrator_dict(args)
    scene, welded = build_scene(task, args, integrator)
    params = mi.traverse(scene)
    targets = targets_mitsuba(task)
    n_views = len(targets)
    idx = mi.UInt32(welded)

    opt = mi.ad.Adam(lr=args.lr_texture, beta_1=args.beta1, beta_2=args.beta2,
                     mask_updates=args.mask_updates)
    opt[TEX_KEY] = params[TEX_KEY]
    params.keep([TEX_KEY, POS_KEY])
    optimizers = [opt]
    lsteps = None
    init_positions = np.ascontiguousarray(task["positions_init"], np.float32)
    if joint:
        # The welded positions (or their Large Steps form u = (I + lambda L) p), in an Adam
        # of their own ("uniform" as in Nicolet et al. 2021 for Large Steps).
        welded_init = mi.Float(init_positions.reshape(-1))
        opt_pos = mi.ad.Adam(lr=args.lr_positions, beta_1=args.beta1, beta_2=args.beta2,
                             uniform=args.regularizer == "largesteps")
        if args.regularizer == "largesteps":
            lsteps = mi.ad.LargeSteps(welded_init, mi.UInt32(task["triangles"].reshape(-1)),
                                      args.lambda_)
            opt_pos["u"] = lsteps.to_differential(welded_init)
        else:
            opt_pos["u"] = welded_init
        optimizers.append(opt_pos)

    def welded_positions():
        u = opt_pos["u"]
        return lsteps.from_differential(u) if lsteps is not None else u

    def apply():
        params[TEX_KEY] = opt[TEX_KEY]
        if joint:
            p = dr.unravel(mi.Point3f, welded_positions())
            params[POS_KEY] = dr.ravel(dr.gather(mi.Point3f, p, idx))
        params.update()

    apply()
    lap = None
    if joint and args.regularizer == "laplacian":
        lap = uniform_laplacian(task["triangles"], len(init_positions))

    rng = np.random.default_rng(args.seed)
    alpha = np.ascontiguousarray(task["texture_init"][..., 3], np.float32)
    trace = Trace(alpha)
    schedule = None  # geometric snapshot times, set after the first iteration
    settings = {
        "variant": mi.variant(), "mitsuba": mi.__version__, "drjit": dr.__version__,
        "integrator": integrator_name(args), "integrator_dict": integrator,
        "spp": args.spp, "views_per_iteration": args.views_per_iter, "view_choice": "random",
        "optimizer": "mi.ad.Adam", "adam_betas": [args.beta1, args.beta2],
        "lr_texture": args.lr_texture, "lr_decay": args.lr_decay, "mask_updates": args.mask_updates,
        "loss": "MSE of RGB", "texture_clamp": [0, 1], "threads": dr.thread_count(), "seed": args.seed,
    }
    if joint:
        settings.update(lr_positions=args.lr_positions, positions_adam_uniform=lsteps is not None,
                        regularizer=args.regularizer,
                        lambda_=args.lambda_ if args.regularizer == "largesteps" else None,
                        laplacian_weight=args.lap_weight if args.regularizer == "laplacian" else None)
    print(f"Mitsuba {mi.__version__} {mi.variant()}, {dr.thread_count()} threads; "
          f"{len(welded)} split vertices, {len(task['triangles'])} triangles, {n_views} views\n"
          f"settings {json.dumps(settings)}", flush=True)

    def snapshot(elapsed, iteration, loss_sum, loss_n):
        texture = opt[TEX_KEY].numpy()
        positions = welded_positions().numpy() if joint else init_positions
        trace.add(elapsed, iteration, texture, positions)
        loss = loss_sum / max(loss_n, 1)
        print(f"  iteration {iteration:6d}  {elapsed:8.2f} s  training loss {loss:.6f}", flush=True)

    elapsed, it = 0.0, 0
    snapshot(0.0, 0, 0.0, 0)
    loss_acc, loss_n = mi.Float(0.0), 0
    while True:
        t0 = time.perf_counter()
        views = rng.choice(n_views, size=args.views_per_iter, replace=False)
        loss_total = 0
        for v in views:
            img = mi.render(scene, params, sensor=int(v), spp=args.spp, seed=it * n_views + int(v))
            loss = dr.mean(dr.square(img - targets[v]), axis=None) / len(views)
            dr.backward(loss)
            loss_total = loss_total + dr.detach(loss)
        if lap is not None:
            dr.backward(args.lap_weight * laplacian_energy(lap, opt_pos["u"]))
        if args.lr_decay != 1.0:  # exponential in elapsed time, to lr_decay at --seconds
            f = args.lr_decay ** min(elapsed / args.seconds, 1.0)
            opt.set_learning_rate(args.lr_texture * f)
            if joint:
                opt_pos.set_learning_rate(args.lr_positions * f)
        for o in optimizers:
            o.step()
        opt[TEX_KEY] = dr.clip(opt[TEX_KEY], 0.0, 1.0)
        apply()
        loss_acc = loss_acc + loss_total
        dr.eval(opt[TEX_KEY], params[POS_KEY] if joint else None, loss_acc)
        dr.sync_thread()
        elapsed += time.perf_counter() - t0
        it += 1
        loss_n += 1
        if it == 1:
            print(f"  first iteration (with JIT compilation): {elapsed:.2f} s", flush=True)
            schedule = list(np.geomspace(max(elapsed, 1e-3), args.seconds, max(args.snapshots - 1, 2))[1:])
        due = schedule and elapsed >= schedule[0]
        if it == 1 or due or elapsed >= args.seconds or it == args.max_iterations:
            snapshot(elapsed, it, float(np.asarray(loss_acc).ravel()[0]), loss_n)
            loss_acc, loss_n = mi.Float(0.0), 0
            while schedule and elapsed >= schedule[0]:
                schedule.pop(0)
        if elapsed >= args.seconds or it == args.max_iterations:
            break
    settings.update(iterations=it, seconds=elapsed, ms_per_iteration=1e3 * elapsed / it)
    print(f"Mitsuba: {it} iterations in {elapsed:.1f} s ({1e3 * elapsed / it:.1f} ms/iteration)")
    trace.save(args.out, settings)
    return 0


def uniform_laplacian(triangles: np.ndarray, n: int):
    """Edges (i, j) of the welded mesh, both directions, and vertex degrees."""
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
    i = np.concatenate([e[:, 0], e[:, 1]]).astype(np.uint32)
    j = np.concatenate([e[:, 1], e[:, 0]]).astype(np.uint32)
    deg = np.bincount(i, minlength=n).astype(np.float32)
    return mi.UInt32(i), mi.UInt32(j), mi.Float(deg), n


def laplacian_energy(lap, flat_positions):
    """Mean squared uniform Laplacian |p_i - mean of neighbours|^2."""
    i, j, deg, n = lap
    p = dr.unravel(mi.Point3f, flat_positions)
    s = dr.zeros(mi.Point3f, n)
    dr.scatter_reduce(dr.ReduceOp.Add, s, dr.gather(mi.Point3f, p, j), i)
    d = p - s / deg
    return dr.mean(dr.squared_norm(d), axis=None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", required=True)
    p.add_argument("--mode", choices=("texture", "joint"), default="texture")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--out", help="trace .npz")
    p.add_argument("--snapshots", type=int, default=24)
    p.add_argument("--max-iterations", type=int, default=0, help="stop early (for tuning)")
    p.add_argument("--check", action="store_true", help="render the truth and compare with the targets")
    p.add_argument("--evaluate", metavar="TRACE", help="print the PSNR of each snapshot of a trace")
    p.add_argument("--integrator", choices=sorted(INTEGRATORS),
                   help=f"default: {DEFAULT_INTEGRATOR['texture']} (texture), "
                        f"{DEFAULT_INTEGRATOR['joint']} (joint)")
    p.add_argument("--spp", type=int, default=1,
                   help="samples per pixel (*_centres: 1, as more only repeat the centre; "
                        "projective: also the silhouette samples)")
    p.add_argument("--views-per-iter", type=int, default=1)
    p.add_argument("--lr-texture", type=float, help="default: 0.02 (texture), 0.03 (joint)")
    p.add_argument("--lr-positions", type=float, default=0.01,
                   help="Adam step: uniform in Large Steps' u with largesteps, per coordinate otherwise")
    p.add_argument("--lr-decay", type=float, default=0.1,
                   help="learning rates fall exponentially with time to this fraction at --seconds")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--mask-updates", action="store_true", help="Adam skips entries without gradient")
    p.add_argument("--regularizer", choices=("largesteps", "laplacian", "none"), default="largesteps")
    p.add_argument("--lambda", dest="lambda_", type=float, default=5.0, help="Large Steps lambda")
    p.add_argument("--lap-weight", type=float, default=1.0, help="Laplacian regularizer weight")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.lr_texture is None:
        args.lr_texture = 0.03 if args.mode == "joint" else 0.02
    task = scene_file.load_scene(args.scene)
    if args.check:
        return check(task, args)
    if args.evaluate:
        return evaluate_trace(task, args)
    if not args.out:
        p.error("--out is required")
    return fit(task, args)


if __name__ == "__main__":
    sys.exit(main())
