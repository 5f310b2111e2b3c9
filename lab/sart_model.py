"""A numpy model of SART on an evaluation case: the upper bound the GPU's SART
visits aim at (README, "SART for texels, in view visits").

    bash tools/dev.sh python lab/sart_model.py CASE SWEEPS RELAXATION [os]

Our rasterizer gives each view's UVs at every point of the pixel filter; the
texels then move by the bilinear-weighted mean of the filtered residual (in
the texels' encoding), over all views at once, or with `os` after each view
(as the visits do). After each sweep Workbench scores the held-out views.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import cases  # noqa: E402
import scenes  # noqa: E402

from sge_optimizer.addon import image_pixels  # noqa: E402
from sge_optimizer.addon.api import OptimizationRun  # noqa: E402
from sge_optimizer.engine.color import linear_to_srgb, psnr, srgb_to_linear  # noqa: E402


def srgb_encode(c):
    return linear_to_srgb(np.clip(c, 0, 1))


def srgb_decode(c):
    return srgb_to_linear(np.clip(c, 0, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=[c.name for c in cases.ALL_CASES])
    parser.add_argument("sweeps", type=int)
    parser.add_argument("relaxation", type=float)
    parser.add_argument("mode", nargs="?", choices=("os",), help="os: update after each view (as the visits do)")
    args = parser.parse_args(argv)
    iters, lam = args.sweeps, args.relaxation
    case = next(c for c in cases.ALL_CASES if c.name == args.case)
    settings = scenes.settings_for(case, None)
    settings.steps = 0
    with tempfile.TemporaryDirectory() as tmp:
        scene = scenes.Scene(case, Path(tmp))
        run = OptimizationRun(scene.source, scene.targets, settings, resolution=case.resolution, scene=scene.scene)
        run.start()
        e = run.engine; b = e.backend
        tw, th = e.params.texture.width, e.params.texture.rows
        srgb = e.scene.texture_srgb
        print("srgb", srgb, "workbench", e.loss.workbench, "held start", scene.held_psnr())
        offsets, weights = e.samples.antialias  # Workbench's: its points less the faintest, as the jitter draws them
        pts = [tuple(map(float, p)) for p in offsets]
        wts = np.asarray(weights, np.float64); wts /= wts.sum()
        views = []
        for i, view in enumerate(e.scene.views):
            t = np.asarray(view.target, np.float64)
            full = t[..., 3] > 0.999
            fps = []
            for off in pts:
                e.raster.draw(e.raster.plus, i, offset=off)
                tex = b.target_textures(e.raster.plus)
                ids = np.rint(b.read(tex["id"])[..., 0]).astype(np.int64)
                uv = b.read(tex["uv"])[..., :2]
                fps.append((ids, uv))
            ok = full.copy()
            for ids, uv in fps:
                ok &= ids >= 0
            pix = np.flatnonzero(ok.reshape(-1))
            idxs = []; ws = []
            for ids, uv in fps:
                u = uv.reshape(-1, 2)[pix]
                x = u[:, 0] * tw - 0.5; y = u[:, 1] * th - 0.5
                x0 = np.floor(x).astype(int); y0 = np.floor(y).astype(int); fx = x - x0; fy = y - y0
                ii = []; ww = []
                for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
                    ii.append(np.clip(y0 + dy, 0, th - 1) * tw + np.mod(x0 + dx, tw)); ww.append(w)
                idxs.append(np.stack(ii, 1)); ws.append(np.stack(ww, 1))
            tgt = t.reshape(-1, 4)[pix, :3]
            views.append((idxs, ws, tgt))
        theta = b.read(e.params.texture.theta).reshape(-1, 4)[:, :3].astype(np.float64)
        def score():
            tex = np.concatenate([theta, np.ones((len(theta), 1))], 1).reshape(th, tw, 4).astype(np.float32)
            image_pixels.write_image_pixels(run.inputs.image, tex)
            return scene.held_psnr()
        os_mode = args.mode == "os"
        for it in range(iters):
            t0 = time.perf_counter()
            lin = srgb_decode(theta) if srgb else theta
            num = np.zeros_like(theta); den = np.zeros(len(theta)); err = 0; n = 0
            for idxs, ws, tgt in views:
                if os_mode:
                    lin = srgb_decode(theta) if srgb else theta
                    num = np.zeros_like(theta); den = np.zeros(len(theta))
                samples = [np.einsum("pk,pkc->pc", w, lin[ii]) for ii, w in zip(idxs, ws)]
                if e.workbench:
                    pixel = np.exp2(sum(wt * np.log2(s + 1) for wt, s in zip(wts, samples))) - 1
                else:
                    pixel = sum(wt * s for wt, s in zip(wts, samples))
                enc = srgb_encode if srgb else (lambda c: c)
                r = enc(tgt) - enc(pixel)  # residual in texel-value space
                err += (r ** 2).sum(); n += r.size
                for (ii, w), wt in zip(zip(idxs, ws), wts):
                    for k in range(4):
                        np.add.at(num, ii[:, k], (wt * w[:, k])[:, None] * r)
                        np.add.at(den, ii[:, k], wt * w[:, k])
                if os_mode:
                    seen = den > 1e-6
                    theta[seen] = np.clip(theta[seen] + lam * num[seen] / den[seen, None], 0, 1)
            seen = den > 1e-6
            if os_mode:
                print(f"iter {it}: target-pixel psnr {psnr(err / n):.2f}  held {score():.2f}  {time.perf_counter()-t0:.1f}s", flush=True)
                continue
            theta[seen] = np.clip(theta[seen] + lam * num[seen] / den[seen, None], 0, 1)
            print(f"iter {it}: target-pixel rmse-psnr before {psnr(err / n):.2f}  held {score():.2f}  {time.perf_counter()-t0:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
