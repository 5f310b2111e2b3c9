"""How Workbench reconstructs a texture, measured: the numbers behind the
README's "What Workbench does to a texture".

    bash tools/dev.sh python lab/judge_filter.py     # about 30 s

A plane fills an orthographic camera's 256² frame, square-on, so texel
(x, y) of a 256² texture sits exactly on pixel (x, y). It prints
1. the response to single white texels on black (the point spread of the
   texture reconstruction and antialiasing, in linear light), for
   Workbench's antialiasing off and at 8 and 32 samples;
2. the same with the camera moved a quarter pixel (AA off: a bilinear
   lookup gives 0.25 / 0.75);
3. how well Gaussian pixel filters of a few widths, applied to a box-mipmap
   model of a random texture, match Workbench at 1 and 2 texels per pixel;
4. the same for engine/pixel_filter.py's model of Workbench's antialiasing;
5. how EEVEE reconstructs the same texture: Gaussian widths, level 0 against
   box mipmaps, and the best linear texel kernel.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import bpy  # noqa: E402
import scenes  # noqa: E402
import numpy as np  # noqa: E402

from sge_optimizer.addon import target_setup  # noqa: E402
from sge_optimizer.engine.color import linear_to_srgb, psnr, srgb_to_linear  # noqa: E402
from sge_optimizer.engine.samples import gaussian_offsets  # noqa: E402
from sge_optimizer.engine.pixel_filter import log_space, workbench_points  # noqa: E402

SIZE = 256


def plane_scene(render_aa: str, shift_px: float = 0.0):
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    scene = bpy.context.scene
    scenes.setup_workbench(scene, SIZE)
    scene.display.render_aa = render_aa
    bpy.ops.mesh.primitive_plane_add(size=2.0)
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.type, cam_data.ortho_scale = "ORTHO", 2.0
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (shift_px * 2.0 / SIZE, 0.0, 5.0)
    return scene, bpy.context.active_object, cam


def render_linear(scene, plane, cam, texture: np.ndarray) -> np.ndarray:
    plane.data.materials.clear()
    plane.data.materials.append(target_setup.textured_material("M", target_setup.new_image("T", texture)))
    with tempfile.TemporaryDirectory() as tmp:
        px = scenes.render_pixels(scene, cam, Path(tmp))
    return srgb_to_linear(np.clip(px[..., :3], 0, 1))


def point_spread(render_aa: str, shift_px: float = 0.0) -> np.ndarray:
    """Mean 5x5 linear response around single white texels (256² texture, 1:1)."""
    scene, plane, cam = plane_scene(render_aa, shift_px)
    tex = np.zeros((SIZE, SIZE, 4), np.float32)
    tex[..., 3] = 1.0
    centres = range(32, SIZE - 16, 48)
    for y in centres:
        for x in centres:
            tex[y, x, :3] = 1.0
    lin = render_linear(scene, plane, cam, tex)[..., 0]
    return np.mean([lin[y - 2:y + 3, x - 2:x + 3] for y in centres for x in centres], axis=0)


def bilinear(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = tex.shape[:2]
    x, y = u * w - 0.5, v * h - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(int) % w, y0.astype(int) % h
    x1, y1 = (x0 + 1) % w, (y0 + 1) % h
    return ((tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx) * (1 - fy)
            + (tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx) * fy)


def random_texture_render(texels: int, eevee: bool = False) -> tuple:
    """A random 8-bit texture at `texels` per pixel: (the render, sRGB, inner
    pixels; the texture in linear light). Workbench with 8 AA samples, or
    EEVEE (64 samples, the texture through an Emission shader)."""
    n = SIZE * texels
    scene, plane, cam = plane_scene("8")
    rng = np.random.default_rng(0)
    tex = np.ones((n, n, 4), np.float32)
    tex[..., :3] = rng.integers(0, 256, (n, n, 3)) / 255.0
    if eevee:
        scene.render.engine = "BLENDER_EEVEE" if bpy.app.version >= (5, 0, 0) else "BLENDER_EEVEE_NEXT"
        scene.eevee.taa_render_samples = 64
        scene.world = bpy.data.worlds.new("Black")
        mat = target_setup.textured_material("M", target_setup.new_image("T", tex))
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        emission = nodes.new("ShaderNodeEmission")
        links.new(next(nd for nd in nodes if nd.type == "TEX_IMAGE").outputs["Color"], emission.inputs["Color"])
        links.new(emission.outputs["Emission"], next(nd for nd in nodes if nd.type == "OUTPUT_MATERIAL").inputs["Surface"])
        plane.data.materials.append(mat)
        with tempfile.TemporaryDirectory() as tmp:
            px = scenes.render_pixels(scene, cam, Path(tmp))
        truth = px[..., :3][8:-8, 8:-8]
    else:
        truth = linear_to_srgb(render_linear(scene, plane, cam, tex))[8:-8, 8:-8]
    return truth, srgb_to_linear(tex[..., :3].astype(np.float64))


def eevee_match(texels: int, sigmas=(0.21, 0.43, 0.6)) -> list:
    """(model, PSNR against EEVEE) for Gaussian-filtered bilinear lookups at
    level 0 and at the box mip level of this scale, and for the best linear
    5 x 5 texel kernel (least squares) on the better of the two."""
    truth, level0 = random_texture_render(texels, eevee=True)
    mip = level0.reshape(SIZE, texels, SIZE, texels, 3).mean((1, 3))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    out = []
    for sigma in sigmas:
        for name, level in (("level 0", level0), ("box mip", mip)):
            offsets = gaussian_offsets(64, sigma)
            model = np.mean([bilinear(level, (xs + ox) / SIZE, (ys + oy) / SIZE) for ox, oy in offsets], axis=0)
            out.append((f"Gaussian σ {sigma:.2f}, {name}", _psnr(model, truth)))
    level = mip if texels > 1 else level0
    columns = [np.roll(level, (-dy, -dx), (0, 1)).reshape(-1, 3) for dy in range(-2, 3) for dx in range(-2, 3)]
    a = np.stack(columns, 1).transpose(0, 2, 1).reshape(-1, 25)  # (pixels * 3, 25)
    b = srgb_to_linear(np.clip(truth, 0, 1).astype(np.float64))
    inner = np.zeros(level.shape[:2], bool)
    inner[8:-8, 8:-8] = True
    rows = np.repeat(inner.reshape(-1), 3)
    k, *_ = np.linalg.lstsq(a[rows], b.reshape(-1), rcond=None)
    model = (a @ k).reshape(level.shape)
    out.append(("best linear 5 x 5 kernel, " + ("box mip" if texels > 1 else "level 0"), _psnr(model, truth)))
    return out


def _psnr(model: np.ndarray, truth: np.ndarray) -> float:
    err = linear_to_srgb(model)[8:-8, 8:-8] - truth
    return psnr(float(np.mean(err ** 2)))


def gaussian_match(texels: int, sigmas=(0.0, 0.21, 0.35, 0.5, 0.6)) -> list:
    """PSNR (sRGB, inner pixels) of Gaussian-filtered box-mip models against
    Workbench (8 AA samples) for a random texture at `texels` per pixel."""
    truth, level0 = random_texture_render(texels)
    level = level0.reshape(SIZE, texels, SIZE, texels, 3).mean((1, 3))  # the mip level read at this scale
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    out = []
    for sigma in sigmas:
        offsets = gaussian_offsets(32, sigma) if sigma > 0 else ((0.0, 0.0),)
        model = np.mean([bilinear(level, (xs + ox) / SIZE, (ys + oy) / SIZE) for ox, oy in offsets], axis=0)
        out.append((sigma, _psnr(model, truth)))
    return out


def workbench_match(texels: int) -> dict:
    """PSNR against Workbench (8 samples) of engine/pixel_filter.py's model:
    its 28 weighted point samples of bilinear level-0 lookups, averaged as
    log2(c + 1) (Workbench's TAA), averaged linearly, and read from a box
    mip level instead of level 0."""
    truth, level0 = random_texture_render(texels)
    mip = level0.reshape(SIZE, texels, SIZE, texels, 3).mean((1, 3))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    points, weights = workbench_points(8)
    out = {}
    for name, level, log in (("log2 mean, level 0", level0, True), ("linear mean, level 0", level0, False),
                             ("log2 mean, box mip", mip, True)):
        samples = [bilinear(level, (xs + dx) / SIZE, (ys + dy) / SIZE) for dx, dy in points]
        if log:
            model = np.exp2(sum(w * log_space(c) for w, c in zip(weights, samples))) - 1.0
        else:
            model = sum(w * c for w, c in zip(weights, samples))
        out[name] = _psnr(model, truth)
    return out


def main() -> int:
    np.set_printoptions(precision=3, suppress=True)
    for aa, shift in (("OFF", 0.0), ("OFF", 0.25), ("8", 0.0), ("32", 0.0)):
        psf = point_spread(aa, shift)
        print(f"\n## antialiasing {aa}, camera moved {shift} px: response to one texel (linear), "
              f"sum {psf.sum():.3f}, own pixel {psf[2, 2]:.3f}")
        print(psf[::-1])  # top row first, as on screen
    print("\n| texels per pixel | Gaussian sigma (px) | PSNR against Workbench, 8 AA samples (dB) |")
    print("|---|---|---|")
    for texels in (1, 2):
        for sigma, value in gaussian_match(texels):
            print(f"| {texels} | {sigma:.2f} | {value:.1f} |")
    print("\n| texels per pixel | Workbench model (engine/pixel_filter.py) | PSNR against Workbench (dB) |")
    print("|---|---|---|")
    for texels in (1, 2):
        for name, value in workbench_match(texels).items():
            print(f"| {texels} | {name} | {value:.1f} |")
    print("\n| texels per pixel | model of EEVEE (64 samples, Filter Size 1.5 px) | PSNR against EEVEE (dB) |")
    print("|---|---|---|")
    for texels in (1, 2):
        for name, value in eevee_match(texels):
            print(f"| {texels} | {name} | {value:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
