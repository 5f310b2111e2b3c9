"""A numpy model of SART on an evaluation case: the upper bound the GPU's SART
visits aim at (README, "SART for texels, in view visits").

    bash tools/dev.sh python tools/sart_model.py CASE SWEEPS RELAXATION [os]

Our rasterizer gives each view's UVs at every point of the pixel filter; the
texels then move by the bilinear-weighted mean of the filtered residual (in
the texels' encoding), over all views at once, or with `os` after each view
(as the visits do). After each sweep Workbench scores the held-out views.
"""
import sys, time, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap
_bootstrap.load_package()
import evaluation
from evaluation import OptimizationRun, Scene
from sge_optimizer.addon import image_pixels
name = sys.argv[1]; iters = int(sys.argv[2]); lam = float(sys.argv[3])
case = [c for c in evaluation.ALL_CASES if c.name == name][0]
settings = evaluation.settings_for(case, None)
settings.steps = 0

def srgb_encode(c):
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)
def srgb_decode(c):
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))

with tempfile.TemporaryDirectory() as tmp:
    scene = Scene(case, Path(tmp))
    run = OptimizationRun(scene.source, scene.targets, settings, resolution=case.resolution, scene=scene.scene)
    run.start()
    e = run.engine; b = e.backend
    tw, th = e.texture_size
    srgb = e.scene.texture_srgb
    print("srgb", srgb, "workbench", e.workbench, "held start", scene.held_psnr())
    pts = [tuple(map(float, p)) for p in e.jitter_points] if e.workbench else list(e.antialias_offsets)
    wts = np.asarray(e.jitter_weights if e.workbench else e.antialias_weights, np.float64); wts /= wts.sum()
    views = []
    for i, view in enumerate(e.scene.views):
        t = np.asarray(view.target, np.float64)
        full = t[..., 3] > 0.999
        fps = []
        for off in pts:
            e.rasterize(e.render_plus, i, offset=off)
            tex = b.target_textures(e.render_plus)
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
    theta = b.read(e.texture_group.theta).reshape(-1, 4)[:, :3].astype(np.float64)
    def score():
        tex = np.concatenate([theta, np.ones((len(theta), 1))], 1).reshape(th, tw, 4).astype(np.float32)
        image_pixels.write_image_pixels(run.inputs.image, tex)
        return scene.held_psnr()
    os_mode = len(sys.argv) > 4 and sys.argv[4] == "os"
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
            print(f"iter {it}: target-pixel psnr {10*np.log10(n/err):.2f}  held {score():.2f}  {time.perf_counter()-t0:.1f}s", flush=True)
            continue
        theta[seen] = np.clip(theta[seen] + lam * num[seen] / den[seen, None], 0, 1)
        print(f"iter {it}: target-pixel rmse-psnr before {10*np.log10(n/err):.2f}  held {score():.2f}  {time.perf_counter()-t0:.1f}s", flush=True)
