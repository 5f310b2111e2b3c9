"""Scenes built in code and scored as a user would judge a fit, shared by the
tests and the lab (lab/cases.py holds the evaluation's cases and tables).

An evaluation that cannot flatter us: targets and scoring views rendered by
Blender's own Workbench engine (flat lighting, texture colour, Standard view
transform, its own antialiasing), targets attached as camera background
images as a user would, and the fit scored on cameras that were not targets,
again rendered by Workbench.

Lit cases do the same with EEVEE or Cycles: a Principled material
(base-colour image, constant roughness), a sun and a point light (shadows
off: the lit model has none), a world colour; the fit is a lit one
(`Settings.lit`), also scored on how close its base colour comes to the true
albedo (the lighting must not be baked into it).

`run_case` builds, fits and scores one `Case`; `lod_reference` is Fit LOD's
high-poly reference. Nothing here uses the optimizer's rasterizer to judge it.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import lit_scene
import numpy as np

from sge_optimizer.addon import image_pixels, lod, scene_inputs, target_setup
from sge_optimizer.addon.api import OptimizationRun
from sge_optimizer.engine import Settings, quality_preset
from sge_optimizer.engine.color import image_metrics
from sge_optimizer.engine.synthetic import flat_texture

# Textures ----------------------------------------------------------------------
# A 3x5 bitmap font for the "text" texture: digits and a few letters.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "E": "111100110100111", "G": "111100101101111", "S": "111100111001111", "T": "111010010010010",
}


def noise_texture(size: int, seed: int = 1) -> np.ndarray:
    """Fine colour noise: value noise at 2, 4 and 8 texels plus smooth bands."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((size, size, 3), np.float64)
    for cell, weight in ((2, 0.45), (4, 0.3), (8, 0.25)):
        n = max(size // cell, 1)
        block = rng.random((n, n, 3))
        tex += weight * np.kron(block, np.ones((cell, cell, 1)))[:size, :size]
    return _opaque(0.1 + 0.8 * tex)


def stripes_texture(size: int) -> np.ndarray:
    """Stripes of rising frequency (down to 8 texels a period: 2-4 pixels at
    2-4 texels per pixel, the finest a 256 px target resolves) in three colours."""
    y, x = np.mgrid[0:size, 0:size] / size
    freq = 4 + (size / 8 - 4) * x ** 2  # periods across the texture
    phase = 2 * np.pi * np.cumsum(freq, axis=1) / size
    r = 0.5 + 0.45 * np.sign(np.sin(phase))
    g = 0.5 + 0.4 * np.sin(2 * np.pi * 6 * y)
    b = 0.5 + 0.45 * np.sign(np.sin(2 * np.pi * y * size / 8))
    return _opaque(np.stack([r, g, b], -1))


def text_texture(size: int, glyph_texels: int | None = None, seed: int = 2) -> np.ndarray:
    """Rows of dark characters on coloured paper, each stroke `glyph_texels`
    wide (by default 1/128 of the texture: about a pixel in the targets)."""
    glyph_texels = glyph_texels or max(2, size // 128)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    paper = np.stack([0.85 + 0.1 * np.sin(4 * x), 0.8 + 0.1 * np.cos(3 * y), 0.6 + 0.2 * x], -1)
    ink = np.zeros((size, size), bool)
    cw, ch = 4 * glyph_texels, 6 * glyph_texels
    letters = list(_GLYPHS)
    for row in range(0, size - ch + 1, ch):
        for col in range(0, size - cw + 1, cw):
            bits = np.array([c == "1" for c in _GLYPHS[letters[rng.integers(len(letters))]]]).reshape(5, 3)
            glyph = np.kron(bits, np.ones((glyph_texels, glyph_texels), bool))
            ink[row:row + 5 * glyph_texels, col:col + 3 * glyph_texels] |= glyph[::-1]
    colour = np.where(ink[..., None], [[0.08, 0.1, 0.35]], paper)
    return _opaque(colour)


def bump_normals(size: int, bumps: int, tilt: float = 0.5) -> np.ndarray:
    """(size, size, 3) stored tangent-space normals ((x, y, z) / 2 + 1/2) of
    `bumps` x `bumps` bumps tilting up to atan(tilt)."""
    v, u = (np.mgrid[0:size, 0:size] + 0.5) / size
    x = tilt * np.cos(2 * np.pi * bumps * u) * np.sin(2 * np.pi * bumps * v)
    y = tilt * np.sin(2 * np.pi * bumps * u) * np.cos(2 * np.pi * bumps * v)
    n = np.stack([-x, -y, np.ones_like(x)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return (n * 0.5 + 0.5).astype(np.float32)


def _opaque(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([np.clip(rgb, 0, 1), np.ones(rgb.shape[:2] + (1,))], -1).astype(np.float32)


TEXTURES = {"noise": noise_texture, "stripes": stripes_texture, "text": text_texture}


# Meshes ----------------------------------------------------------------------------
def _new_object(name: str, build) -> object:
    build()
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    return obj


def _displace(obj, amplitude: float, frequency: float) -> None:
    """Move vertices along their normals by a smooth pattern (a bumpy surface)."""
    mesh = obj.data
    n = len(mesh.vertices)
    co, normal = np.empty(3 * n, np.float32), np.empty(3 * n, np.float32)
    mesh.vertices.foreach_get("co", co)
    mesh.vertices.foreach_get("normal", normal)
    co, normal = co.reshape(-1, 3), normal.reshape(-1, 3)
    f = frequency
    bump = np.sin(f * co[:, 0]) * np.sin(f * co[:, 1] + 1.0) * np.cos(f * co[:, 2] + 0.5)
    mesh.vertices.foreach_set("co", (co + amplitude * bump[:, None] * normal).ravel())
    mesh.update()


def torus(name: str) -> object:
    obj = _new_object(name, lambda: bpy.ops.mesh.primitive_torus_add(
        major_segments=48, minor_segments=18, major_radius=1.0, minor_radius=0.4, generate_uvs=True))
    _displace(obj, 0.06, 6.0)
    return obj


def torus_fine(name: str) -> object:
    """`torus` at four times the triangles: a reference worth decimating to 10 %."""
    obj = _new_object(name, lambda: bpy.ops.mesh.primitive_torus_add(
        major_segments=96, minor_segments=36, major_radius=1.0, minor_radius=0.4, generate_uvs=True))
    _displace(obj, 0.06, 6.0)
    return obj


def suzanne(name: str) -> object:
    obj = _new_object(name, lambda: bpy.ops.mesh.primitive_monkey_add(size=2.0, calc_uvs=True))
    target_setup.apply_subdivision(obj, 1)
    return obj


def blob(name: str) -> object:
    obj = _new_object(name, lambda: bpy.ops.mesh.primitive_uv_sphere_add(
        segments=48, ring_count=24, radius=1.0, calc_uvs=True))
    _displace(obj, 0.18, 2.5)
    return obj


def sphere(name: str) -> object:
    """The coarse start for `blob`: same topology and UVs, no bumps."""
    return _new_object(name, lambda: bpy.ops.mesh.primitive_uv_sphere_add(
        segments=48, ring_count=24, radius=1.0, calc_uvs=True))


def decimated(build, ratio: float = 0.1):
    """A start made from the reference's own mesh, decimated (Collapse, UVs
    kept) to `ratio` of its triangles: a LOD whose lost detail a lit fit
    puts back into the vertices and the normal map."""
    def make(name: str) -> object:
        obj = build(name)
        mod = obj.modifiers.new("Decimate", "DECIMATE")
        mod.ratio = ratio
        mesh = bpy.data.meshes.new_from_object(obj.evaluated_get(bpy.context.evaluated_depsgraph_get()))
        obj.modifiers.remove(mod)
        old, obj.data = obj.data, mesh
        mesh.name = name
        bpy.data.meshes.remove(old)
        return obj
    return make


MESHES = {"torus": torus, "torus-fine": torus_fine, "suzanne": suzanne, "blob": blob}
COARSE = {"blob": sphere}
DECIMATED = {name: decimated(build) for name, build in MESHES.items()}


# Workbench rendering ------------------------------------------------------------
def setup_output(scene, resolution: int) -> None:
    """Square frames written as 8-bit RGBA PNG (sRGB-encoded, as a user's would be)."""
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"


def setup_workbench(scene, resolution: int) -> None:
    """Unlit texture colour, Standard view transform, transparent film (alpha
    is coverage), Workbench's own antialiasing."""
    setup_output(scene, resolution)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "TEXTURE"
    scene.display.shading.show_object_outline = False
    scene.display.shading.show_cavity = False
    scene.display.shading.show_shadows = False
    scene.display.shading.show_specular_highlight = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.render.film_transparent = True


# Lit rendering ------------------------------------------------------------------
LIT_WORLD = (0.15, 0.16, 0.18)  # bright enough that the unlit sides still show their albedo


def setup_lit(scene, case) -> list:
    """EEVEE or Cycles (tests/lit_scene.py: shadows off, no indirect light,
    Standard), a sun and a point light from two sides and a grey world.
    Returns the lights."""
    setup_output(scene, case.resolution)
    lit_scene.setup_engine(scene, case.render, cycles_samples=case.cycles_samples, shadows=case.shadows)
    scene.eevee.taa_render_samples = case.eevee_samples
    if case.render == "cycles":
        scene.cycles.use_denoising = case.cycles_denoise
        scene.cycles.adaptive_threshold = 0.01  # with a few samples: the default, not the ceiling's 0.002
    lit_scene.set_world(scene, LIT_WORLD)
    return [lit_scene.add_light(scene, "SUN", "Sun", (0, 0, 5), (math.radians(40), 0, math.radians(30)),
                                energy=2.5, color=(1.0, 0.95, 0.9), angle=math.radians(2), shadow=case.shadows),
            lit_scene.add_light(scene, "POINT", "Point", (2.5, -2.5, 2.0), (0, 0, 0), energy=300.0,
                                color=(0.9, 0.95, 1.0), shadow_soft_size=0.1, shadow=case.shadows)]


render_to_png = lod.render_to_file


def load_image(path: Path, name: str):
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.pack()  # the scratch file may go away
    return image


premultiplied_pixels = lod.premultiplied


render_pixels = lod.render_view  # a render by the scene's engine, premultiplied sRGB


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = a[..., 3] > 0.5, b[..., 3] > 0.5
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else 1.0


def image_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over premultiplied RGBA, as the tool's own reports."""
    return image_metrics(a, b)["psnr"]


# Cameras ------------------------------------------------------------------------
held_out_cameras = lod.held_out_cameras


# One case ---------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    mesh: str  # a key of MESHES
    texture: str  # a key of TEXTURES
    texture_size: int
    targets: int
    optimize: str = "texture"  # texture | both
    # exact (true mesh, flat texture) | coarse (COARSE mesh) | decimated (DECIMATED mesh) | answer (the truth)
    start: str = "exact"
    held_out: int = 6
    resolution: int = 256
    # Lit cases: the engine that renders targets and held-out views (workbench:
    # unlit), whether the fit is lit, the true roughness, and where a fitted
    # roughness starts (None: not fitted, the source has the true one).
    render: str = "workbench"  # workbench | eevee | cycles
    lit: bool = False
    roughness: float = 0.5
    start_roughness: float | None = None
    eevee_samples: int = 16
    cycles_samples: int = 32  # 48 dB from a 1024-spp frame, far above the fits' scores
    cycles_denoise: bool = False
    # A true tangent-space normal map of `normal_bumps` bumps across the UV
    # square (0: none); `fit_normal`: the source starts with a flat one and the
    # true albedo, and only the normal map is fitted.
    normal_bumps: int = 0
    fit_normal: bool = False
    # The source also has a flat tangent-space normal map, fitted with the rest (a lit fit's default).
    flat_normal: bool = False
    shadows: bool = False  # the lights cast shadows (EEVEE's on; the lit fit's shadow maps)

    @property
    def describe(self) -> str:
        if self.render == "workbench":
            return (f"{self.mesh}, {self.texture} {self.texture_size}², {self.targets} targets, "
                    f"{self.optimize}, {self.start} start")
        what = ("normal map" if self.fit_normal else
                "albedo + roughness" if self.start_roughness is not None else "albedo")
        if self.optimize == "both":
            what = f"vertices + {what}"
        if self.flat_normal:
            what += " + normal map"
        engine = ("EEVEE" if self.render == "eevee" else
                  f"Cycles {self.cycles_samples} spp{' denoised' if self.cycles_denoise else ''}")
        return (f"{self.mesh}, {self.texture} {self.texture_size}², {self.targets} targets, {engine}, "
                f"{'lit' if self.lit else 'UNLIT'} fit of {what}, {self.start} start")


@dataclass
class Result:
    case: Case
    seconds: float
    steps: int
    target_before: float
    target_after: float
    held_before: float
    held_after: float
    iou_before: float
    iou_after: float
    kept_step: int | None
    shape_kept: str | None = None  # joint fits: "start" or "fitted"
    tool_psnr: tuple = ()  # the run's own target-view PSNR (our renders), before and after
    trace: list = field(default_factory=list)  # (fit seconds, held-out PSNR)
    # Lit cases: RMSE of the base colour against the true albedo over the
    # texels the targets see (stored, sRGB-encoded values), before and after;
    # and (before, after, truth) of a fitted roughness.
    albedo_rmse: tuple = ()
    roughness: tuple = ()
    normal_degrees: tuple = ()  # mean angle to the true normals over the seen texels, before and after
    validation: tuple = ()  # the run's own PSNR of its validation views (never fitted), before and after

    def seconds_to(self, db: float) -> float | None:
        return next((t for t, p in self.trace if p >= db), None)


class Scene:
    """The reference, the source, target and held-out cameras of one `Case`."""

    def __init__(self, case: Case, folder: Path):
        self.case, self.folder = case, folder
        bpy.ops.wm.read_homefile(use_empty=True, app_template="")
        self.scene = bpy.context.scene
        if case.render == "workbench":
            setup_workbench(self.scene, case.resolution)
        else:
            setup_lit(self.scene, case)
        size = case.texture_size
        truth = TEXTURES[case.texture](size)
        self.reference = MESHES[case.mesh]("Reference")
        self.reference.data.materials.append(target_setup.textured_material(
            "Reference", target_setup.new_image("Reference Albedo", truth)))
        if case.start == "coarse":
            self.source = COARSE[case.mesh]("Source")
        elif case.start == "decimated":
            self.source = DECIMATED[case.mesh]("Source")
        else:
            self.source = MESHES[case.mesh]("Source")
        start_texture = truth if case.start == "answer" or case.fit_normal else flat_texture(size)
        self.source.data.materials.append(target_setup.textured_material(
            "Source", target_setup.new_image("Source Albedo", start_texture)))
        if case.render != "workbench":
            start = case.roughness if case.start_roughness is None else case.start_roughness
            for obj, rough in ((self.reference, case.roughness), (self.source, start)):
                principled(obj).inputs["Roughness"].default_value = rough
                if case.render == "cycles" and not case.shadows:
                    lit_scene.unshadowed(obj)
        if case.normal_bumps:
            target_setup.add_normal_map(self.reference, bump_normals(size, case.normal_bumps), name="Reference Normal")
            start_normals = np.full((size, size, 3), (0.5, 0.5, 1.0), np.float32) if case.fit_normal else \
                bump_normals(size, case.normal_bumps)
            target_setup.add_normal_map(self.source, start_normals, name="Source Normal")
        elif case.flat_normal:
            target_setup.add_normal_map(self.source, np.full((size, size, 3), (0.5, 0.5, 1.0), np.float32),
                                        name="Source Normal")
        self.targets = target_setup.add_cameras_around(self.reference, case.targets, "Targets")
        self.held = held_out_cameras(self.reference, case.held_out, "Held Out")
        self.target_cams = scene_inputs.collection_cameras(self.targets)
        self.held_cams = scene_inputs.collection_cameras(self.held)
        self._show(self.reference)
        for cam in self.target_cams:  # targets as background images, as a user would attach them
            path = render_to_png(self.scene, cam, folder / "target.png")
            bg = cam.data.background_images.new()
            bg.image = load_image(path, f"Target {cam.name}")
            cam.data.show_background_images = True
        self.held_truth = [render_pixels(self.scene, cam, folder) for cam in self.held_cams]
        self.target_truth = [premultiplied_pixels(cam.data.background_images[0].image)
                             for cam in self.target_cams]
        self._show(self.source)

    def normal_degrees(self, seen: np.ndarray) -> float:
        """Mean angle (degrees) between the source's and the reference's
        tangent-space normals over the `seen` texels."""
        def normals(obj):
            image = next(n.image for n in obj.active_material.node_tree.nodes
                         if n.type == "TEX_IMAGE" and n.image.colorspace_settings.name == "Non-Color")
            flat = image_pixels.stored_pixels(image)
            n = flat.reshape(image.size[1], image.size[0], -1)[..., :3].astype(np.float64) * 2 - 1
            return n / np.linalg.norm(n, axis=-1, keepdims=True)
        cos = np.clip((normals(self.source) * normals(self.reference)).sum(-1)[seen], -1, 1)
        return float(np.degrees(np.arccos(cos)).mean())

    def albedo_rmse(self, seen: np.ndarray) -> float:
        """RMSE of the source's base colour against the reference's over the
        `seen` texels (stored values: sRGB-encoded for these 8-bit images)."""
        def rgb(obj):
            image = next(n.image for n in obj.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
            return image_pixels.stored_pixels(image).reshape(image.size[1], image.size[0], 4)[..., :3]

        return float(np.sqrt(np.mean((rgb(self.source)[seen] - rgb(self.reference)[seen]) ** 2)))

    def _show(self, obj) -> None:
        for o in (self.reference, self.source):
            o.hide_render = o is not obj

    def score(self, targets: bool = True) -> tuple:
        """(target-view PSNR, held-out PSNR, held-out IoU) of the source as the
        case's engine renders it; `targets` False leaves the target views out
        (NaN: an EEVEE frame costs seconds here)."""
        held = self._renders(self.held_cams)
        target = (self._mean(image_psnr, self._renders(self.target_cams), self.target_truth)
                  if targets else math.nan)
        return (target, self._mean(image_psnr, held, self.held_truth),
                self._mean(silhouette_iou, held, self.held_truth))

    def held_psnr(self) -> float:
        return self._mean(image_psnr, self._renders(self.held_cams), self.held_truth)

    def _renders(self, cameras) -> list:
        return [render_pixels(self.scene, cam, self.folder) for cam in cameras]

    @staticmethod
    def _mean(measure, renders, truths) -> float:
        return float(np.mean([measure(a, b) for a, b in zip(renders, truths)]))


def principled(obj):
    return next(n for n in obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")


def settings_for(case: Case, settings: Settings | None, quality: str = "standard") -> Settings:
    """`settings` (the defaults when None, with the `quality` preset's steps
    and views a step for the case's kind of fit, as tools/optimize.py gives;
    the working resolution stays the case's) for `case`."""
    joint = case.optimize == "both"
    visits = not joint and not case.lit
    preset = quality_preset(quality, joint, visits)
    s = settings or Settings(steps=preset["steps"], views_per_step=preset["views_per_step"])
    s.optimize_positions = joint
    s.optimize_texture = True
    s.lit = case.lit
    s.optimize_roughness = case.start_roughness is not None
    s.optimize_normal = case.fit_normal or case.flat_normal
    s.optimize_texture = not case.fit_normal
    return s


def seen_texels(engine, size: tuple) -> np.ndarray:
    """(h, w) bool: the texels nearest to a pixel of some target view, by the
    fit's own rasterizer (used only to pick texels, not to judge them)."""
    h, w = size
    seen = np.zeros((h, w), bool)
    for i in range(len(engine.scene.views)):
        r = engine.render(i)
        uv = r["uv"][r["id"] > 0]
        seen[np.clip((uv[:, 1] * h).astype(int), 0, h - 1), np.clip((uv[:, 0] * w).astype(int), 0, w - 1)] = True
    return seen


def run_case(case: Case, settings: Settings | None = None, snapshots: int = 8, log=None,
             score_targets: bool = True, overrides: dict | None = None) -> Result:
    """Build the case, fit it with `settings` (the defaults when None; then
    the fields in `overrides`, over what the case's kind sets), and score it.
    `snapshots` held-out scorings during the run give seconds-to-PSNR (their
    rendering is outside the fit's clock); `score_targets` False scores the
    held-out views only."""
    with tempfile.TemporaryDirectory(prefix="sge_eval_") as tmp:
        scene = Scene(case, Path(tmp))
        target_before, held_before, iou_before = scene.score(score_targets)
        settings = settings_for(case, settings)
        for key, value in (overrides or {}).items():
            setattr(settings, key, value)
        run = OptimizationRun(scene.source, scene.targets, settings, resolution=case.resolution,
                              scene=scene.scene)
        clock = time.perf_counter()
        run.start()
        fit_seconds = time.perf_counter() - clock
        seen = seen_texels(run.engine, (case.texture_size, case.texture_size)) if case.render != "workbench" else None
        albedo_before = scene.albedo_rmse(seen) if seen is not None else None
        normal_before = scene.normal_degrees(seen) if case.normal_bumps and seen is not None else None
        trace = [(0.0, held_before)]
        every = max(1, math.ceil(settings.steps / snapshots)) if snapshots else settings.steps + 1
        while True:
            clock = time.perf_counter()
            done = run.advance(max_steps=every)
            run.sample_loss()
            fit_seconds += time.perf_counter() - clock
            if done:
                break
            run.write_back()
            trace.append((fit_seconds, scene.held_psnr()))
            if log:
                log(f"  {case.name}: step {run.step}/{settings.steps}  held-out {trace[-1][1]:.2f} dB  "
                    f"{fit_seconds:.1f} s")
        clock = time.perf_counter()
        summary = run.finish()
        fit_seconds += time.perf_counter() - clock
        target_after, held_after, iou_after = scene.score(score_targets)
        trace.append((fit_seconds, held_after))
        albedo = (albedo_before, scene.albedo_rmse(seen)) if seen is not None else ()
        normal = (normal_before, scene.normal_degrees(seen)) if normal_before is not None else ()
        rough = summary.get("material", {}).get("roughness")
        rough = (rough["before"], rough["after"], case.roughness) if rough else ()
        return Result(case, fit_seconds, summary["steps"], target_before, target_after, held_before,
                      held_after, iou_before, iou_after, summary.get("kept_step"), summary.get("shape_kept"),
                      (summary["mean_psnr_before"], summary["mean_psnr_after"]), trace, albedo, rough, normal,
                      (summary["mean_psnr_validation_before"], summary["mean_psnr_validation_after"]))


# Fit LOD to Reference ----------------------------------------------------------------
def lod_reference(scene, segments: int = 48, rings: int = 24, texture: int = 256, sun: bool = True,
                  world=(0.25, 0.25, 0.3)):
    """The LOD case's high-poly reference: a UV sphere subdivided once and
    displaced, an 8-texel colour-noise base colour, roughness 0.6; a sun
    (shadows off) and a dim world."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=rings)
    ref = bpy.context.active_object
    ref.name = "Reference"
    target_setup.apply_subdivision(ref, 1)
    co = scene_inputs.read_local_positions(ref).astype(np.float64)
    co *= 1 + 0.08 * np.sin(5 * co[:, :1]) * np.sin(4 * co[:, 1:2]) * np.cos(3 * co[:, 2:3])
    ref.data.vertices.foreach_set("co", co.astype(np.float32).ravel())
    ref.data.update()
    for poly in ref.data.polygons:
        poly.use_smooth = True
    cells = np.random.default_rng(0).random((texture // 8, texture // 8, 3))
    albedo = _opaque(0.15 + 0.7 * np.kron(cells, np.ones((8, 8, 1))))
    mat = target_setup.textured_material("reference", target_setup.new_image("reference base", albedo))
    principled_node = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    principled_node.inputs["Roughness"].default_value = 0.6
    ref.data.materials.append(mat)
    if sun:
        lit_scene.add_light(scene, "SUN", "Sun", (0, 0, 5), (math.radians(40), 0, math.radians(30)), energy=3.0)
    lit_scene.set_world(scene, world)
    scene.eevee.taa_render_samples = 16
    return ref
