"""Blender data -> arrays, and arrays -> Blender data.

Reading validates everything and changes nothing; writing touches only the
optimized mesh and image, and never writes a non-finite value.

Colour encoding: we compare in scene-linear light, where Blender's engines
blend texels and filter pixels. The base-colour image keeps its own stored
encoding (`image.pixels` values: sRGB-encoded for an 8-bit sRGB texture,
linear for float or Non-Color images) and the rasterizer decodes it; targets
are converted to linear, clamped to [0, 1] and premultiplied by their alpha,
which is coverage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from ..engine import MeshArrays, SceneArrays, View, memory
from ..engine.scene import LitScene
from . import material_io, shape_keys
from .errors import InputError
from .image_pixels import convert_encoding, image_encoding, read_image_pixels, resample, stored_pixels


# The base-colour texture ---------------------------------------------------------
def find_base_color_image(obj, scene=None):
    """(image, uv_map_name or None) that the object's faces show as base colour,
    followed from the Material Output that `scene`'s engine renders
    (`material_io.base_color_image`: faces showing different images are refused)."""
    return material_io.base_color_image(obj, scene)


# The mesh ---------------------------------------------------------------------------
def check_mesh_object(obj) -> None:
    if obj is None:
        raise InputError("no object chosen: pick the mesh object to optimize")
    if obj.type != "MESH":
        raise InputError(f"object '{obj.name}' is a {obj.type.lower()}, not a mesh")
    mesh = obj.data
    if len(mesh.polygons) == 0:
        raise InputError(f"mesh '{mesh.name}' has no faces")
    if len(mesh.uv_layers) == 0:
        raise InputError(f"mesh '{mesh.name}' has no UV map: unwrap it first (UV > Unwrap)")


def check_modifiers(obj, depsgraph) -> None:
    active = [m for m in obj.modifiers if m.show_viewport or m.show_render]
    if not active:
        return
    evaluated = obj.evaluated_get(depsgraph).data
    if (len(evaluated.vertices), len(evaluated.polygons)) != (len(obj.data.vertices), len(obj.data.polygons)):
        names = ", ".join(f"'{m.name}'" for m in active)
        raise InputError(f"modifiers {names} on '{obj.name}' change its topology; apply or disable them "
                         "(the optimizer works on the mesh without modifiers)")


def read_mesh(obj, uv_map: str | None) -> MeshArrays:
    if obj.mode == "EDIT":  # its mesh data is stale; the operator and optimize() leave Edit Mode first
        raise InputError(f"object '{obj.name}' is in Edit Mode: switch to Object Mode (Tab) first")
    mesh = obj.data
    layer = mesh.uv_layers.get(uv_map) if uv_map else (
        next((u for u in mesh.uv_layers if u.active_render), None) or mesh.uv_layers.active)
    if layer is None:
        raise InputError(f"mesh '{mesh.name}' has no UV map named '{uv_map}' (used by its texture)")
    matrix = np.array(obj.matrix_world, np.float64)
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise InputError(f"object '{obj.name}' has a zero scale; its vertices cannot be written back")
    co = shape_keys.visible_positions(obj)  # with shape keys, the mix the user sees
    if not np.all(np.isfinite(co)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(co), axis=1))[0])
        raise InputError(f"mesh '{mesh.name}' has a non-finite vertex (index {bad})")
    # Loop triangles triangulate quads and n-gons internally; the mesh is untouched.
    mesh.calc_loop_triangles()
    n = len(mesh.loop_triangles)
    tris = np.empty(n * 3, np.int32)
    loops = np.empty(n * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    mesh.loop_triangles.foreach_get("loops", loops)
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    layer.uv.foreach_get("vector", uv)
    uv = uv.reshape(-1, 2)
    world = co.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return MeshArrays(world, tris.reshape(-1, 3), uv[loops].reshape(-1, 3, 2))


def write_positions(obj, world_positions: np.ndarray) -> None:
    world = np.asarray(world_positions, np.float64)
    mesh = obj.data
    if world.shape != (len(mesh.vertices), 3):
        raise ValueError(f"{world.shape} positions for {len(mesh.vertices)} vertices of '{mesh.name}'")
    if not np.all(np.isfinite(world)):
        raise ValueError(f"refusing to write non-finite positions into '{mesh.name}'")
    inverse = np.linalg.inv(np.array(obj.matrix_world, np.float64))
    local = world @ inverse[:3, :3].T + inverse[:3, 3]
    shape_keys.write_local(obj, local)
    mesh.update()


def read_local_positions(obj) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


# Cameras and targets -------------------------------------------------------------
def collection_cameras(collection) -> list:
    if collection is None:
        raise InputError("no camera collection chosen: pick the collection holding the target cameras")
    cams = sorted((o for o in collection.all_objects if o.type == "CAMERA"), key=lambda o: o.name)
    if not cams:
        raise InputError(f"collection '{collection.name}' has no cameras")
    return cams


def render_aspect(scene) -> float:
    """Width / height of the rendered frame, pixel aspect included."""
    r = scene.render
    return (r.resolution_x * r.pixel_aspect_x) / (r.resolution_y * r.pixel_aspect_y)


def working_resolution(scene, longest_side: int) -> tuple:
    """(width, height) with the render aspect (pixel aspect included)."""
    aspect = render_aspect(scene)
    if aspect >= 1:
        return int(longest_side), max(1, round(longest_side / aspect))
    return max(1, round(longest_side * aspect)), int(longest_side)


def view_projection(cam_obj, scene, width: int, height: int) -> np.ndarray:
    cam = cam_obj.data
    if cam.type == "PANO":
        raise InputError(f"camera '{cam_obj.name}' is panoramic; use a perspective or orthographic camera")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    r = scene.render
    projection = cam_obj.calc_matrix_camera(depsgraph, x=width, y=height,
                                            scale_x=r.pixel_aspect_x, scale_y=r.pixel_aspect_y)
    view = cam_obj.matrix_world.inverted()
    return np.array(projection @ view, np.float32)


_UNSUPPORTED_BACKGROUND = (
    ("offset", lambda bg: tuple(bg.offset) != (0.0, 0.0), "an offset"),
    ("rotation", lambda bg: bg.rotation != 0.0, "a rotation"),
    ("scale", lambda bg: bg.scale != 1.0, "a scale other than 1"),
)


def target_background(cam_obj):
    """The camera's first background image entry (its target), if it holds an
    image; InputError otherwise. Cheap: reads no pixels."""
    backgrounds = cam_obj.data.background_images
    bg = backgrounds[0] if len(backgrounds) else None
    if bg is not None and bg.source != "IMAGE":
        raise InputError(f"camera '{cam_obj.name}': its background is a movie clip; use an image")
    if bg is None or bg.image is None:
        raise InputError(f"camera '{cam_obj.name}' has no background image: add one in "
                         "Camera Properties > Background Images (it is the target)")
    return bg


def read_target(cam_obj, scene, width: int, height: int, encoding: str) -> np.ndarray:
    """The camera's first background image as the frame shows it, at
    (height, width), premultiplied, in `encoding`."""
    bg = target_background(cam_obj)
    for _, unsupported, words in _UNSUPPORTED_BACKGROUND:
        if unsupported(bg):
            raise InputError(f"camera '{cam_obj.name}': the background image has {words}; "
                             "SGE Optimizer maps it onto the whole frame, so reset it")
    image = bg.image
    pixels = read_image_pixels(image, f"background image of camera '{cam_obj.name}'")
    ih, iw = pixels.shape[:2]
    aspect = render_aspect(scene)
    if abs((iw / ih) / aspect - 1) > 0.01:
        raise InputError(f"camera '{cam_obj.name}': target '{image.name}' is {iw}x{ih} "
                         f"(aspect {iw / ih:.3f}) but the render aspect is {aspect:.3f}")
    if bg.use_flip_x:
        pixels = pixels[:, ::-1]
    if bg.use_flip_y:
        pixels = pixels[::-1]
    pixels = resample(pixels, width, height)
    rgb = convert_encoding(np.clip(pixels[..., :3], 0, None), image_encoding(image), encoding)
    alpha = pixels[..., 3:4]
    if image.alpha_mode in {"NONE", "CHANNEL_PACKED"}:
        alpha = np.ones_like(alpha)
    elif image.alpha_mode == "PREMUL":
        rgb = np.where(alpha > 0, rgb / np.maximum(alpha, 1e-6), 0)
    rgb = np.clip(rgb, 0, 1)
    alpha = np.clip(alpha, 0, 1)
    return np.concatenate([rgb * alpha, alpha], -1).astype(np.float32)


# Everything together ----------------------------------------------------------
def check_memory(longest_side: int, width: int, height: int, cameras: list, image, obj) -> None:
    """Refuse a run that will not fit in the memory free now, before reading
    any pixels (the estimate counts host and GPU memory together: on a
    discrete GPU it is conservative)."""
    available = memory.available_bytes()
    texels, vertices = image.size[0] * image.size[1], len(obj.data.vertices)
    source = max(math.prod(target_background(cam).image.size) for cam in cameras)
    sizes = (width, height, len(cameras), texels, vertices, source)
    needed = memory.run_bytes(*sizes)
    if available is None or needed <= available:
        return
    fits = memory.largest_side(longest_side, *sizes, available)
    advice = (f"use a working resolution of {fits} or less" if fits >= 8
              else "use a smaller texture or smaller target images")
    raise InputError(f"a run at resolution {longest_side} with {len(cameras)} views and a {image.size[0]}x"
                     f"{image.size[1]} texture needs about {needed / 2**30:.1f} GiB of memory, but "
                     f"{available / 2**30:.1f} GiB are free: {advice}, or fewer cameras")


@dataclass
class SceneInputs:
    obj: object
    image: object
    cameras: list
    arrays: SceneArrays
    encoding: str  # of renders and targets: always "linear"
    original_positions: np.ndarray  # local space, for restore
    original_pixels: np.ndarray  # image.pixels as stored, flat
    original_shape_keys: list | None = None  # every key's positions, for restore
    scene: object = None  # the scene read: its engine picks the Material Output
    lit_material: object = None  # a lit fit's engine.materials.LitMaterial, as read


# A Gaussian's sigma per pixel of filter size: Cycles' Blackman-Harris of full
# width `filter_width` has sigma 0.1414 * width; EEVEE's film filter is the
# Gaussian it fits to a Blackman-Harris of radius `filter_size` (sigma 0.284 *
# radius; eevee_film). So at the 1.5 px defaults: 0.21 px and 0.43 px.
CYCLES_SIGMA_PER_WIDTH = 0.1414
EEVEE_SIGMA_PER_RADIUS = 0.284


# A custom property Capture Targets sets on the images it makes.
CAPTURED = "sge_captured"


def pixel_filter_for(scene, cameras=()) -> dict:
    """The Settings (pixel_filter, workbench_samples, filter_sigma) of
    targets rendered by `scene`'s own engine and settings: Workbench's TAA
    where it renders (its Render samples), EEVEE's and Cycles' pixel filters
    as Gaussians; Workbench with antialiasing off or FXAA, any other engine,
    and targets that Capture Targets made (all of `cameras`' are), the
    default Gaussian."""
    from ..engine.pixel_filter import WORKBENCH_SAMPLES
    from ..engine.scene import Settings

    engine = scene.render.engine
    sigma = Settings.filter_sigma
    captured = [bool(c.data.background_images and c.data.background_images[0].image is not None
                     and c.data.background_images[0].image.get(CAPTURED)) for c in cameras]
    if captured and all(captured):
        engine = "SGE"  # our own rasterizer's filter
    if engine == "BLENDER_WORKBENCH":
        aa = scene.display.render_aa
        if aa.isdigit() and int(aa) in WORKBENCH_SAMPLES:
            return {"pixel_filter": "workbench", "workbench_samples": int(aa), "filter_sigma": sigma}
    elif engine.startswith("BLENDER_EEVEE"):
        sigma = EEVEE_SIGMA_PER_RADIUS * scene.render.filter_size
    elif engine == "CYCLES" and getattr(scene, "cycles", None) is not None:
        sigma = CYCLES_SIGMA_PER_WIDTH * scene.cycles.filter_width
    return {"pixel_filter": "gaussian", "workbench_samples": Settings.workbench_samples,
            "filter_sigma": float(min(max(sigma, 0.05), 1.0))}


def read_scene(obj, camera_collection, longest_side: int = 256, scene=None, lit: bool = False) -> SceneInputs:
    """Validate and read everything the optimizer needs. Changes nothing.
    `lit`: also the lights, the world, the rest of the Principled material and
    the corners' shading frames, for a fit rendered under them."""
    scene = scene or bpy.context.scene
    check_mesh_object(obj)
    check_modifiers(obj, bpy.context.evaluated_depsgraph_get())
    image, uv_map = find_base_color_image(obj, scene)
    lit_parts = read_lit_parts(obj, scene) if lit else None
    cameras = collection_cameras(camera_collection)
    if not 8 <= longest_side <= 16384:
        raise InputError(f"working resolution must be 8..16384 pixels, got {longest_side}")
    texture_encoding = image_encoding(image)
    encoding = "linear"
    width, height = working_resolution(scene, longest_side)
    check_memory(longest_side, width, height, cameras, image, obj)
    texture = read_image_pixels(image, "base-colour image")
    mesh = read_mesh(obj, uv_map)
    views = [View(cam.name, view_projection(cam, scene, width, height),
                  read_target(cam, scene, width, height, encoding)) for cam in cameras]
    raw = stored_pixels(image)
    arrays = SceneArrays(mesh, texture, views, texture_srgb=(texture_encoding == "srgb"))
    if lit_parts is not None:
        material, lighting, frames = lit_parts
        positions = [tuple(cam.matrix_world.translation) for cam in cameras]
        try:
            arrays.lit = LitScene.from_material(material, lighting, frames, positions)
        except ValueError as exc:
            raise InputError(f"material '{material.name}': {exc}") from None
    return SceneInputs(obj, image, cameras, arrays, encoding, read_local_positions(obj), raw,
                       shape_keys.snapshot(obj), scene, lit_parts[0] if lit_parts else None)


def read_lit_parts(obj, scene) -> tuple:
    """(material, lighting, corner frames) of a lit fit, each validated
    (addon/material_io.py refuses what the model does not reproduce)."""
    material_io.check_view_transform(scene)
    material = material_io.read_lit_material(obj, scene)
    if not material.base_color.is_image:
        raise InputError(f"material '{material.name}': a lit fit optimizes the base-colour image; "
                         "feed Base Color from an Image Texture node")
    lighting = material_io.without_unrendered_shadows(material_io.read_lighting(scene), obj, scene)
    return material, lighting, material_io.corner_frames(obj, material.uv_map)


def restore_mesh(inputs: SceneInputs) -> None:
    mesh = inputs.obj.data
    mesh.vertices.foreach_set("co", inputs.original_positions.ravel())
    shape_keys.restore(inputs.obj, inputs.original_shape_keys)
    mesh.update()


def restore_image(inputs: SceneInputs) -> None:
    inputs.image.pixels.foreach_set(inputs.original_pixels)
    inputs.image.update()
