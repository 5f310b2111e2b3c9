"""Fit LOD to Reference: a decimated copy of a high-poly reference, with a
fresh UV unwrap and new base-colour, normal and roughness maps baked down
from it, then fitted to renders of the reference by Blender's own engine
(EEVEE, or Cycles on request) under the scene's lights. Held-out cameras
(not targets) judge the copy against the reference before and after the fit.

`fit_lod()` is the whole job, blocking; `tools/optimize.py lod` and the
Python API call it. `fit_lod_stages()` is the same job as a generator that
yields between units of work (a bake, a render, a slice of fit steps), which
the operator runs a tick at a time from the UI (addon/operator_runs.py `LodDriver`).
Everything is validated before the scene is touched.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..engine import Settings, psnr, quality_preset
from ..engine.color import linear_to_srgb
from . import material_io, scene_inputs, target_setup
from .errors import InputError
from .fit_run import OptimizationRun, drive, progress_text, run_stages
from .image_pixels import stored_pixels
from .input_checks import COORDINATE_LIMIT

RENDER_ENGINES = ("EEVEE", "CYCLES")


@dataclass
class LodOptions:
    ratio: float = 0.1  # triangles kept (Decimate, Collapse)
    triangles: int = 0  # a per-asset budget: at most this many triangles (0: the ratio decides)
    texture_size: int = 512  # the new maps' width and height
    target_views: int = 16
    held_out_views: int = 6
    resolution: int = 256  # targets and scoring renders, longest side
    render_engine: str = "EEVEE"
    cycles_samples: int = 64
    steps: int | None = None  # None: the Standard preset's
    fit_roughness: bool = True  # the reference's constant roughness, or the baked roughness image
    fit_normal: bool = True  # the baked tangent-space normal map
    fit_positions: bool = True  # the copy's vertices too: a joint lit fit (its normals follow them)
    name: str = ""  # the copy's name (default: "<reference> LOD")
    pictures: str = ""  # a folder: the first held-out view of the reference, the bake and the fit (PNG)
    settings_overrides: dict = field(default_factory=dict)

    def validate(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise InputError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.triangles != 0 and self.triangles < 4:
            raise InputError(f"a triangle budget must be at least 4 (0: use the ratio), got {self.triangles}")
        if not 16 <= self.texture_size <= 8192:
            raise InputError(f"texture size must be 16..8192 pixels, got {self.texture_size}")
        if self.target_views < 1 or self.held_out_views < 0:
            raise InputError("at least one target view (and no negative held-out count)")
        if not 16 <= self.resolution <= 4096:
            raise InputError(f"resolution must be 16..4096 pixels, got {self.resolution}")
        if self.render_engine not in RENDER_ENGINES:
            raise InputError(f"render engine must be one of {RENDER_ENGINES}, got '{self.render_engine}'")
        if self.cycles_samples < 1:
            raise InputError(f"Cycles samples must be at least 1, got {self.cycles_samples}")

    def ratio_for(self, reference_triangles: int) -> float:
        """The Decimate ratio: the budget's share of the reference's triangles, or `ratio`."""
        return min(1.0, self.triangles / reference_triangles) if self.triangles else self.ratio

    def fit_settings(self) -> Settings:
        """The lit fit's Settings (the Standard preset's, joint where the
        vertices move, these options' steps and overrides), checked:
        InputError if they are bad."""
        preset = quality_preset("standard", joint=self.fit_positions)
        preset.pop("resolution", None)
        # No start margin: the engine's renders decide whether the fit beats the bake.
        settings = Settings(**{**preset, "optimize_positions": self.fit_positions, "optimize_texture": True,
                               "lit": True,
                               "start_margin_db": 0.0, "optimize_roughness": self.fit_roughness,
                               "optimize_normal": self.fit_normal, **self.settings_overrides})
        if self.steps is not None:
            settings.steps = self.steps
        try:
            settings.validate()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return settings


def eevee_id() -> str:
    """EEVEE's engine id: BLENDER_EEVEE_NEXT in 4.2-4.5, BLENDER_EEVEE again in 5.x."""
    ids = {e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in ids else "BLENDER_EEVEE"


# Validation ---------------------------------------------------------------------
def check_reference(reference, scene) -> Surface:
    """Refuse what cannot work, before anything changes. Returns what the
    copy's maps start from (`reference_surface`)."""
    if reference is None or reference.type != "MESH":
        raise InputError("the reference must be a mesh object")
    check_visible(reference, bpy.context.view_layer)
    # No UV map needed: the reference is only rendered and baked from, and the copy gets its own unwrap.
    if _triangles(reference, evaluated=True) < 8:
        raise InputError(f"'{reference.name}' has too few triangles to decimate")
    check_vertices(reference)
    surface = reference_surface(reference)
    material_io.read_lighting(scene)  # no lights and a black world, or an unmodelled light: refused here
    return surface


@dataclass
class Surface:
    """What the copy's material starts from."""
    roughness: float | None = None  # the reference's constant, or None: a roughness image, baked
    metallic: float = 0.0
    neutral: dict = field(default_factory=dict)  # {channel: stored value} of the images no bake can fill
    warnings: list = field(default_factory=list)


NEUTRAL_GREY = NEUTRAL_ROUGHNESS = 0.5
# The closures a Diffuse Color bake reads (a group: whatever it holds), and those with nothing to bake.
DIFFUSE_NODES = {"BSDF_PRINCIPLED", "BSDF_DIFFUSE", "SUBSURFACE_SCATTERING", "GROUP"}
NOT_BSDF_NODES = {"EMISSION", "HOLDOUT", "BSDF_TRANSPARENT", "BACKGROUND"}


def reference_surface(reference) -> Surface:
    """The reference is only rendered and baked, so any surface will do.
    From a Principled BSDF on the Material Output: its constant roughness
    and metallic (one material). Otherwise the bakes read what they can
    (Emission is not a BSDF: no base colour or roughness to bake), the rest
    starts from a neutral value, and a warning says which."""
    materials = list({s.material.name: s.material for s in reference.material_slots
                      if s.material is not None}.values())
    if not materials:
        raise InputError(f"'{reference.name}' has no material: there is nothing to bake or render")
    surface = Surface()
    principled = {m.name: _principled_or_none(m) for m in materials}
    active = reference.active_material
    bsdf = principled.get(active.name) if active is not None else None
    if bsdf is not None and not bsdf.inputs["Metallic"].is_linked:
        surface.metallic = float(bsdf.inputs["Metallic"].default_value)
    bsdf = principled[materials[0].name]
    if len(materials) == 1 and bsdf is not None and not bsdf.inputs["Roughness"].is_linked:
        surface.roughness = float(bsdf.inputs["Roughness"].default_value)
    others = [(m, _closures(m)) for m in materials if principled[m.name] is None]
    if not others:
        return surface
    closures = [n for _, (_, nodes) in others for n in nodes] + [n for n in principled.values() if n is not None]
    diffuse = any(n.type in DIFFUSE_NODES for n in closures)
    bsdfs = any(n.type not in NOT_BSDF_NODES for n in closures)
    if not diffuse:
        surface.neutral["base color"] = NEUTRAL_GREY
    if not bsdfs:
        surface.roughness = NEUTRAL_ROUGHNESS
    which = "; ".join(f"material '{m.name}': its surface is '{label}'" for m, (label, _) in others)
    what = ("the base colour and roughness are baked from its BSDFs (emission is not baked)" if diffuse else
            f"no diffuse BSDF to bake the base colour from, so it starts at grey {NEUTRAL_GREY:g}; the roughness "
            "is baked" if bsdfs else
            f"no BSDF to bake the base colour or roughness from, so the base colour starts at grey "
            f"{NEUTRAL_GREY:g} and the roughness at {NEUTRAL_ROUGHNESS:g}")
    surface.warnings.append(f"{which}, not a Principled BSDF: {what}; metallic starts at {surface.metallic:g}, "
                            "and the normal map is baked")
    return surface


def _principled_or_none(material):
    try:
        return material_io.principled_node(material)
    except InputError:
        return None


def _closures(material) -> tuple:
    """(the label of the node on the active Material Output's Surface, or
    'nothing'; the shader nodes that reach it through Mix and Add Shader
    nodes and reroutes)."""
    tree = material.node_tree
    # The bakes are Cycles': the output Cycles renders.
    output = material_io.active_output(tree, "OUTPUT_MATERIAL", "CYCLES") if tree is not None else None
    sockets, found, label = [output.inputs["Surface"]] if output is not None else [], [], None
    while sockets:
        for link in sockets.pop().links:
            node = link.from_node
            if link.is_muted or node.mute:
                continue
            if node.type in ("MIX_SHADER", "ADD_SHADER", "REROUTE"):
                sockets += [s for s in node.inputs if s.type == "SHADER"]
            else:
                found.append(node)
            if label is None and node.type != "REROUTE":
                label = node.bl_label
    return label or "nothing", found


def check_visible(reference, view_layer) -> None:
    """Baking selects the reference in the view layer: refuse one that is
    not in it (only in excluded collections) or hidden there, saying which."""
    included, excluded = _layer_membership(reference, view_layer.layer_collection)
    if not included:
        which = (f"collection '{excluded[0]}', which is" if len(excluded) == 1 else
                 f"collections {', '.join(repr(n) for n in excluded)}, which are")
        raise InputError(f"'{reference.name}' is in {which} excluded from view layer '{view_layer.name}': "
                         "baking reads it from the view layer, so include it (the checkbox beside the "
                         "collection in the Outliner)")
    if not reference.visible_get(view_layer=view_layer):
        raise InputError(f"'{reference.name}' is hidden: baking reads it from the view layer, so unhide it "
                         "(or its collection)")


def _layer_membership(obj, layer_collection, excluded_by: str | None = None) -> tuple:
    """(whether a collection of the view layer that is not excluded holds
    `obj`, the names of the outermost excluded collections that hold it)."""
    included, excluded = obj.name in layer_collection.collection.objects and excluded_by is None, []
    if excluded_by and obj.name in layer_collection.collection.objects:
        excluded.append(excluded_by)
    for child in layer_collection.children:
        outer = excluded_by or (child.collection.name if child.exclude else None)
        child_included, child_excluded = _layer_membership(obj, child, outer)
        included = included or child_included
        excluded += [n for n in child_excluded if n not in excluded]
    return included, excluded


def check_vertices(reference) -> None:
    """Refuse a non-finite or far-off vertex by the reference's own name and
    index, before the copy, its bake and the renders inherit it."""
    matrix = np.array(reference.matrix_world, np.float64)
    meshes = [("", reference.data)]
    if reference.modifiers or reference.data.shape_keys:
        evaluated = reference.evaluated_get(bpy.context.evaluated_depsgraph_get())
        meshes.append((" (with its modifiers and shape keys)", evaluated.data))
    for what, mesh in meshes:
        co = np.empty(len(mesh.vertices) * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
        world = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        bad = np.flatnonzero(~(np.abs(world).max(axis=1) <= COORDINATE_LIMIT))
        if len(bad):
            index = int(bad[0])
            x, y, z = world[index]
            why = (f"beyond ±{COORDINATE_LIMIT:.0e} units" if np.all(np.isfinite(world[index]))
                   else "not a finite number")
            raise InputError(f"vertex {index} of '{reference.name}'{what} lies at ({x:.3g}, {y:.3g}, {z:.3g}) "
                             f"in the world, {why}: fix or delete it")


# The copy -----------------------------------------------------------------------
def make_lod_object(reference, ratio: float, name: str):
    """A copy of `reference` with its modifiers applied, decimated to `ratio`
    of its triangles, and a fresh Smart UV Project unwrap, in the reference's
    collections."""
    evaluated = reference.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = bpy.data.meshes.new_from_object(evaluated)
    obj = bpy.data.objects.new(name, mesh)
    obj.matrix_world = reference.matrix_world.copy()
    for collection in reference.users_collection:
        collection.objects.link(obj)
    if ratio < 1.0:
        mod = obj.modifiers.new("Decimate", "DECIMATE")
        mod.ratio = ratio
        decimated = bpy.data.meshes.new_from_object(obj.evaluated_get(bpy.context.evaluated_depsgraph_get()))
        obj.modifiers.remove(mod)
        obj.data = decimated
        bpy.data.meshes.remove(mesh)
        mesh = decimated
    mesh.name = name
    mesh.materials.clear()
    for poly in mesh.polygons:
        poly.use_smooth = True
    _unwrap(obj)
    return obj


def _unwrap(obj) -> None:
    """Smart UV Project into a fresh UV map (the only one, so the lit fit's
    tangents and the baked maps agree)."""
    mesh = obj.data
    while mesh.uv_layers:
        mesh.uv_layers.remove(mesh.uv_layers[0])
    mesh.uv_layers.new(name="UVMap")
    view_layer = bpy.context.view_layer
    with _selection(view_layer, [obj], obj):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(angle_limit=math.radians(66), island_margin=0.02)
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")


class _selection:
    """Select exactly `objects`, make `active` active; put the selection back after."""

    def __init__(self, view_layer, objects, active):
        self.view_layer, self.objects, self.active = view_layer, objects, active

    def __enter__(self):
        self.before = [o for o in self.view_layer.objects if o.select_get()]
        self.active_before = self.view_layer.objects.active
        for o in self.before:
            o.select_set(False)
        for o in self.objects:
            o.select_set(True)
        self.view_layer.objects.active = self.active

    def __exit__(self, *exc):
        for o in self.view_layer.objects:
            o.select_set(o in self.before)
        self.view_layer.objects.active = self.active_before


def lod_material(name: str, size: int, roughness: float | None, metallic: float):
    """Principled BSDF with new base-colour (sRGB), normal (Non-Color, through
    a tangent-space Normal Map node) and, unless `roughness` is a constant,
    roughness (Non-Color) images. Returns (material, {channel: image})."""
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    images = {}

    def image_node(channel, colorspace, y):
        image = bpy.data.images.new(f"{name} {channel}", size, size, alpha=False)
        image.colorspace_settings.name = colorspace
        node = nodes.new("ShaderNodeTexImage")
        node.image, node.location = image, (-500, y)
        images[channel] = image
        return node

    links.new(image_node("base color", "sRGB", 300).outputs["Color"], bsdf.inputs["Base Color"])
    nmap = nodes.new("ShaderNodeNormalMap")
    nmap.location = (-200, -300)
    links.new(image_node("normal", "Non-Color", -300).outputs["Color"], nmap.inputs["Color"])
    links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    if roughness is None:
        links.new(image_node("roughness", "Non-Color", 0).outputs["Color"], bsdf.inputs["Roughness"])
    else:
        bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return mat, images


# Baking and rendering -----------------------------------------------------------
BAKES = {"base color": ("DIFFUSE", {"COLOR"}), "normal": ("NORMAL", set()), "roughness": ("ROUGHNESS", set())}


def bake_down(reference, lod, images: dict, scene, radius: float) -> float:
    """Bake the reference's maps onto the copy's UVs (Cycles, selected to
    active): the plain decimated mesh with its baked-down textures, the
    baseline the fit has to beat, and the fit's start. Returns seconds."""
    t0 = time.perf_counter()
    if not images:
        return 0.0
    tree = lod.active_material.node_tree
    scene.render.engine = "CYCLES"  # these three: put back by _render_setup
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    # Passed to the operator, which leaves the scene's own bake settings alone.
    with _selection(bpy.context.view_layer, [reference, lod], lod):
        for channel, image in images.items():
            kind, passes = BAKES[channel]
            tree.nodes.active = next(n for n in tree.nodes if n.type == "TEX_IMAGE" and n.image == image)
            bpy.ops.object.bake(type=kind, pass_filter=passes, use_selected_to_active=True,
                                cage_extrusion=0.05 * radius, max_ray_distance=0.2 * radius,
                                margin=4, normal_space="TANGENT", target="IMAGE_TEXTURES")
            image.pack()
    return time.perf_counter() - t0


def render_to_file(scene, camera, path: Path) -> Path:
    scene.camera = camera
    bpy.ops.render.render(scene=scene.name)
    bpy.data.images["Render Result"].save_render(str(path), scene=scene)
    return path


def premultiplied(image) -> np.ndarray:
    """(h, w, 4) premultiplied sRGB-encoded RGBA of a straight-alpha PNG image
    (a 16-bit one loads as a float buffer, kept scene-linear: encoded here)."""
    w, h = image.size
    px = stored_pixels(image).reshape(h, w, 4)
    rgb = linear_to_srgb(np.clip(px[..., :3], 0, 1)) if image.is_float else px[..., :3]
    return np.concatenate([rgb * px[..., 3:], px[..., 3:]], -1)


def render_view(scene, camera, folder: Path) -> np.ndarray:
    """`camera`'s render by the scene's engine, as `premultiplied` pixels."""
    image = bpy.data.images.load(str(render_to_file(scene, camera, folder / "view.png")), check_existing=False)
    try:
        return premultiplied(image)
    finally:
        bpy.data.images.remove(image)


def attach_target(camera, folder: Path, scene) -> np.ndarray:
    """Render `camera`, set the picture as its first background image
    (packed), and return its `premultiplied` pixels."""
    path = render_to_file(scene, camera, folder / f"{camera.name}.png")
    name = f"Target {camera.name}"
    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.alpha_mode = "STRAIGHT"
    image.pack()
    backgrounds = camera.data.background_images
    bg = backgrounds[0] if len(backgrounds) else backgrounds.new()
    bg.image = image
    camera.data.show_background_images = True
    return premultiplied(image)


class _render_setup:
    """The scene's render settings for the targets and scoring renders
    (engine, resolution, transparent film, Standard view transform, PNG),
    put back afterwards."""

    KEYS = (("render", "engine"), ("render", "resolution_x"), ("render", "resolution_y"),
            ("render", "resolution_percentage"), ("render", "film_transparent"),
            ("view_settings", "view_transform"), ("view_settings", "look"), ("view_settings", "exposure"),
            ("view_settings", "gamma"), ("render.image_settings", "file_format"),
            ("render.image_settings", "color_mode"), ("render.image_settings", "color_depth"),
            ("cycles", "samples"), ("cycles", "device"), ("", "camera")) + tuple(
            ("eevee", key) for key in ("use_shadows", "use_raytracing", "use_fast_gi", "light_threshold"))
    # The maps are fitted under direct light and the world: what the LOD's own
    # geometry adds at render time (shadows, ray-traced and horizon-scan
    # light) is left out of the targets, as the lit model leaves it out.
    EEVEE = {"use_shadows": False, "use_raytracing": False, "use_fast_gi": False, "light_threshold": 1e-5}

    def __init__(self, scene):
        self.scene = scene

    def _owner(self, path):
        owner = self.scene
        for part in filter(None, path.split(".")):
            owner = getattr(owner, part)
        return owner

    def __enter__(self):
        self.saved = [(path, key, getattr(self._owner(path), key)) for path, key in self.KEYS
                      if hasattr(self._owner(path), key)]  # EEVEE's settings differ across versions
        return self

    def __exit__(self, *exc):
        for path, key, value in self.saved:
            try:
                setattr(self._owner(path), key, value)
            except (TypeError, ValueError):  # an enum whose item went away
                pass

    def use(self, options: LodOptions, width: int, height: int) -> None:
        s, r = self.scene, self.scene.render
        r.engine = eevee_id() if options.render_engine == "EEVEE" else "CYCLES"
        for key, value in self.EEVEE.items():
            if hasattr(s.eevee, key):
                setattr(s.eevee, key, value)
        if options.render_engine == "CYCLES":
            s.cycles.samples = options.cycles_samples
            s.cycles.device = "CPU"
        r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
        r.film_transparent = True
        s.view_settings.view_transform = "Standard"
        s.view_settings.look = "None"
        s.view_settings.exposure = 0.0
        s.view_settings.gamma = 1.0
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGBA"
        r.image_settings.color_depth = "16"


def held_out_cameras(reference, count: int, name: str, scene=None):
    """`count` cameras framing `reference` from between the targets'
    directions (their Fibonacci sphere turned 37 degrees about Z, tilted 23)."""
    collection = target_setup.add_cameras_around(reference, count, name, scene=scene)
    centre, _ = target_setup.bounding_sphere(reference)
    turn = Matrix.Rotation(math.radians(37), 4, "Z") @ Matrix.Rotation(math.radians(23), 4, "X")
    for cam in collection.objects:
        offset = (turn @ (cam.location - centre).to_4d()).to_3d()
        cam.location = centre + offset
        cam.rotation_euler = (-offset).to_track_quat("-Z", "Y").to_euler()
    return collection


def _score(renders: list, truths: list) -> float:
    """Mean PSNR of `renders` against `truths` (premultiplied sRGB RGBA)."""
    return float(np.mean([psnr(float(np.mean((r.astype(np.float64) - t) ** 2))) for r, t in zip(renders, truths)]))


def coverage_ceiling(renders: list, truths: list) -> float:
    """The most `_score` any maps on the rendered copy could reach: each
    pixel's colour chosen freely in [0, 1], only its coverage (the render's
    alpha) kept, so what is left is the silhouettes' error. Maps cannot move
    an edge: a fit of maps alone scores at most this."""
    nearest = []
    for render, truth in zip(renders, truths):
        alpha = np.asarray(render, np.float64)[..., 3:]
        # The premultiplied colour nearest the truth at coverage `alpha` (each
        # channel in [0, alpha]): exact, so the reference's own coverage scores inf.
        nearest.append(np.concatenate([np.minimum(np.asarray(truth, np.float64)[..., :3], alpha), alpha], -1))
    return _score(nearest, truths)


# The whole job ------------------------------------------------------------------
def fit_lod(reference, options: LodOptions | None = None, scene=None, progress=None) -> dict:
    """Make, bake, and fit an LOD of `reference`; returns a summary with the
    held-out PSNR of the baked copy (before) and the fitted one (after)
    against the reference, both rendered by `options.render_engine`. On a
    failure or an interrupt everything it made is removed again."""
    return run_stages(fit_lod_stages(reference, options, scene, progress))


def fit_lod_stages(reference, options: LodOptions | None = None, scene=None, progress=None,
                   fit_budget_s: float | None = None):
    """`fit_lod` as a generator: validates at the first `next()` (raising
    InputError before anything is made), then yields after each unit of
    work: the copy, the bake, each render, and each slice of fit steps (25
    steps, or about `fit_budget_s` seconds). Returns the summary. Closing it
    early (the operator's Esc) removes everything it made, as a failure does,
    and puts the render settings back."""
    options = options or LodOptions()
    scene = scene or bpy.context.scene
    options.validate()
    settings = options.fit_settings()
    surface = check_reference(reference, scene)
    report = progress or (lambda text: None)
    t_start = time.perf_counter()
    name = options.name or f"{reference.name} LOD"
    summary = {"reference": reference.name, "render_engine": options.render_engine,
               "ratio": options.ratio_for(_triangles(reference, evaluated=True)),
               "triangle_budget": options.triangles or None, "warnings": list(surface.warnings)}
    width, height = scene_inputs.working_resolution(scene, options.resolution)
    existing = _datablocks()
    try:
        with tempfile.TemporaryDirectory() as tmp, _render_setup(scene) as setup:
            yield from _make_and_fit(reference, options, settings, scene, Path(tmp), setup, summary, report,
                                     surface, name, width, height, fit_budget_s)
    except BaseException:
        _remove_new(existing, scene)  # a failure, Ctrl+C or Esc leaves no half-made copy behind
        raise
    summary["seconds"] = time.perf_counter() - t_start
    return summary


_KINDS = ("objects", "meshes", "materials", "images", "cameras", "collections")


def _datablocks() -> dict:
    return {kind: set(getattr(bpy.data, kind)) for kind in _KINDS}


def _remove_new(existing: dict, scene) -> None:
    for kind in _KINDS:
        blocks = getattr(bpy.data, kind)
        for block in [b for b in blocks if b not in existing[kind]]:
            blocks.remove(block)
    # Until updated, a view layer lists a removed object as None, and a calling
    # script's loop over `view_layer.objects` fails on it.
    for layer in [*scene.view_layers, bpy.context.view_layer]:
        layer.update()


def _make_and_fit(reference, options, settings, scene, folder, setup, summary, report, surface, name, width,
                  height, fit_budget_s):
    """The job's body, a generator (see `fit_lod_stages`)."""
    report("making the copy")
    yield
    lod = make_lod_object(reference, summary["ratio"], name)
    if options.triangles and _triangles(lod) > options.triangles:  # Decimate lands near its ratio, not under it
        summary["ratio"] *= 0.99 * options.triangles / _triangles(lod)
        bpy.data.meshes.remove(lod.data)  # the object goes with its only mesh
        lod = make_lod_object(reference, summary["ratio"], name)
    mat, images = lod_material(name, options.texture_size, surface.roughness, surface.metallic)
    lod.data.materials.append(mat)
    summary.update(lod=lod.name, triangles_reference=_triangles(reference, evaluated=True),
                   triangles_lod=_triangles(lod), images={k: v.name for k, v in images.items()})
    _, radius = target_setup.bounding_sphere(reference)
    report("baking the reference's maps onto the copy")
    yield
    summary["bake_seconds"] = bake_down(reference, lod, {k: v for k, v in images.items() if k not in surface.neutral},
                                        scene, radius)
    for channel, value in surface.neutral.items():  # nothing to bake: a neutral start
        image = images[channel]
        image.pixels.foreach_set(np.tile(np.float32([value, value, value, 1.0]), len(image.pixels) // 4))
        image.pack()
    setup.use(options, width, height)
    targets = target_setup.add_cameras_around(reference, options.target_views, f"{name} Targets", scene=scene)
    held = (held_out_cameras(reference, options.held_out_views, f"{name} Held-out", scene)
            if options.held_out_views else None)  # none: judged on the target views only
    report(f"rendering {options.target_views} targets and {options.held_out_views} held-out views "
           f"of the reference ({options.render_engine})")
    # Only the reference (then the copy) and the lights are rendered.
    others = [o for o in scene.objects if o.type not in ("LIGHT", "CAMERA") and o not in (reference, lod)
              and not o.hide_render]
    reference_hidden = reference.hide_render
    try:
        for o in others:
            o.hide_render = True
        reference.hide_render, lod.hide_render = False, True
        target_cams, held_cams = list(targets.objects), list(held.objects) if held else []

        def view(cam):
            return render_view(scene, cam, folder)

        target_truths = yield from _each(lambda cam: attach_target(cam, folder, scene), target_cams)
        truths = yield from _each(view, held_cams)
        reference.hide_render, lod.hide_render = True, False
        # The keep-or-revert decision is the engine's own, on views the fit
        # did not train on: the held-out ones (with none, the targets).
        baked = {k: stored_pixels(v) for k, v in images.items()}
        baked_vertices = scene_inputs.read_local_positions(lod)
        report("rendering the baked copy")
        baked_renders = yield from _each(view, target_cams)
        summary["psnr_targets_before"] = _score(baked_renders, target_truths)
        held_renders = yield from _each(view, held_cams)
        summary["psnr_held_out_before"] = _score(held_renders, truths) if held_cams else None
        # The fit changes maps, not the copy's silhouettes: its ceiling on these views.
        summary["psnr_held_out_ceiling"] = coverage_ceiling(held_renders, truths) if held_cams else None
        if options.pictures and held_cams:
            save_picture(truths[0], Path(options.pictures) / "reference.png")
            save_picture(held_renders[0], Path(options.pictures) / "baked.png")
        report("fitting")
        run = OptimizationRun(lod, targets, settings, resolution=options.resolution, scene=scene)
        try:
            fit = yield from drive(run, max_steps=None if fit_budget_s else 25, budget_s=fit_budget_s,
                                   between=lambda: report(progress_text(run.progress())))
        except BaseException:  # an error, or the generator closed (Esc): the copy is removed anyway
            run.abort()
            raise
        summary["fit"] = {k: fit[k] for k in ("steps", "seconds", "mean_psnr_before", "mean_psnr_after",
                                              "kept_step") if k in fit}
        if "material" in fit:
            summary["fit"]["material"] = fit["material"]
        report("rendering the fitted copy")
        fitted_renders = yield from _each(view, target_cams)
        summary["psnr_targets_after"] = _score(fitted_renders, target_truths)
        if options.pictures and held_cams:  # the fit as it came out, kept or not
            save_picture(render_view(scene, held_cams[0], folder), Path(options.pictures) / "fitted.png")
        summary["kept"] = "fitted"
        summary["psnr_held_out_fitted"] = _score((yield from _each(view, held_cams)), truths) if held_cams else None
        if held_cams:
            worse = summary["psnr_held_out_fitted"] < summary["psnr_held_out_before"]
        else:
            worse = summary["psnr_targets_after"] < summary["psnr_targets_before"]
        if worse:
            # Rendered by the engine the targets came from, the fit is
            # worse than the bake (our lit model is not that engine): keep the bake.
            for channel, image in images.items():
                image.pixels.foreach_set(baked[channel].ravel())
                image.update()
            lod.data.vertices.foreach_set("co", baked_vertices.ravel())
            lod.data.update()
            bsdf = material_io.principled_node(lod.active_material)
            for channel, value in summary["fit"].get("material", {}).items():
                bsdf.inputs[channel.title()].default_value = value["before"]
            summary["kept"] = "baked"
        kept_fit = summary["kept"] == "fitted"
        summary["psnr_held_out_after"] = summary["psnr_held_out_fitted" if kept_fit else "psnr_held_out_before"]
    finally:
        reference.hide_render = reference_hidden
        for o in others:
            o.hide_render = False
    for image in images.values():
        image.pack()  # the fitted pixels live in the .blend
    summary["target_cameras"], summary["held_out_cameras"] = targets.name, held.name if held else None


def _each(render, cameras: list):
    """`render(camera)` for each camera, yielding after each (a generator
    whose value is the list of results)."""
    results = []
    for cam in cameras:
        results.append(render(cam))
        yield
    return results


def save_picture(premultiplied_pixels: np.ndarray, path: Path, background: float = 0.5) -> None:
    """A premultiplied render over a grey background, as an opaque PNG."""
    px = np.asarray(premultiplied_pixels, np.float64)
    rgb = px[..., :3] + (1.0 - px[..., 3:]) * background
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(target_setup.encode_png(np.concatenate([rgb, np.ones_like(px[..., 3:])], -1)))


def _triangles(obj, evaluated: bool = False) -> int:
    if evaluated:
        obj = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return sum(len(p.vertices) - 2 for p in obj.data.polygons)


def summary_text(summary: dict) -> str:
    """One line for the status bar and the CLI."""
    before, after = summary.get("psnr_held_out_before"), summary.get("psnr_held_out_after")
    ceiling = summary.get("psnr_held_out_ceiling")
    if before is not None:  # no ceiling where the copy's silhouettes are the reference's (--ratio 1)
        judged = (f"held-out PSNR {before:.1f} -> {after:.1f} dB ({summary['render_engine']}"
                  + (f"; any maps at most {ceiling:.1f})" if math.isfinite(ceiling) else ")"))
    else:
        targets = summary["psnr_targets_after" if summary.get("kept") == "fitted" else "psnr_targets_before"]
        judged = (f"no held-out views, so judged on the targets only: PSNR {summary['psnr_targets_before']:.1f} "
                  f"-> {targets:.1f} dB ({summary['render_engine']})")
    fitted = summary.get("psnr_held_out_fitted")
    kept = "" if summary.get("kept") == "fitted" else (
        "; the fit did not beat the bake" + (f" (held-out {fitted:.1f} dB)" if fitted is not None else "")
        + ", kept the bake")
    return (f"'{summary['lod']}': {summary['triangles_lod']} triangles "
            f"(of {summary['triangles_reference']}), {judged}{kept}, {summary['seconds']:.0f} s")
