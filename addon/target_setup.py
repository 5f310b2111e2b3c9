"""Helpers that make targets easy: textured materials, cameras around an
object, and targets captured from a reference object with the optimizer's
own rasterizer."""
from __future__ import annotations

import math
import struct
import tempfile
import zlib
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ..engine import Engine, SceneArrays, Settings, View
from ..engine.synthetic import fibonacci_sphere
from . import scene_inputs
from .image_pixels import image_encoding, read_image_pixels, straight_from_linear
from .gpu_backend import BlenderGPUBackend
from .gpu_context import ensure_gpu


def encode_png(pixels: np.ndarray, bit_depth: int = 8) -> bytes:
    """PNG file bytes (RGBA, 8 or 16 bits) of (h, w, 4) `pixels` in [0, 1],
    bottom-up as Blender stores them. Values outside [0, 1] are clipped."""
    h, w = pixels.shape[:2]
    rgba = np.clip(np.nan_to_num(np.asarray(pixels, np.float64)), 0.0, 1.0)[::-1]
    dtype, top = (">u1", 255) if bit_depth == 8 else (">u2", 65535)
    rows = np.rint(rgba * top).astype(dtype).reshape(h, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, bit_depth, 6, 0, 0, 0)  # colour type 6: RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def new_image(name: str, pixels: np.ndarray, linear: bool = False):
    """A Blender image holding (h, w, 4) `pixels` (bottom-up), packed into the
    .blend. sRGB 8-bit by default; `linear=True` makes a float image holding
    the values as data (16-bit, clipped to [0, 1]).

    The pixels are written to a PNG of our own and loaded from it, rather than
    set on a generated image and packed: that route depends on Blender still
    holding the generated buffer when it packs, and once saved a blank image
    came back."""
    with tempfile.TemporaryDirectory(prefix="sge_") as folder:
        path = Path(folder) / "image.png"
        path.write_bytes(encode_png(pixels, 16 if linear else 8))
        image = bpy.data.images.load(str(path), check_existing=False)
        image.name = name
        if linear:
            image.colorspace_settings.name = "Non-Color"
        image.pack()  # reads the file, which is deleted below
        image.filepath_raw = f"//{bpy.path.clean_name(name)}.png"  # where an unpack writes it
    if image.packed_file is None:
        raise RuntimeError(f"could not pack the image '{name}' into the .blend")
    return image


def apply_subdivision(obj, levels: int) -> None:
    """Replace `obj`'s mesh by its Catmull-Clark subdivision (UVs kept)."""
    mod = obj.modifiers.new("Subdivision", "SUBSURF")
    mod.levels = mod.render_levels = levels
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = bpy.data.meshes.new_from_object(evaluated)
    obj.modifiers.remove(mod)
    old = obj.data
    obj.data = mesh
    mesh.name = obj.name
    bpy.data.meshes.remove(old)


def textured_material(name: str, image):
    """A material whose Principled BSDF Base Color is the Image Texture `image`."""
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True  # always on (and deprecated) since 5.0
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.location = (-400, 300)
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def add_normal_map(obj, pixels: np.ndarray, strength: float = 1.0, name: str = "Normal"):
    """An Image Texture (Non-Color, 16-bit) of (h, w, 3) stored tangent-space
    normals -> Normal Map node (Tangent Space) -> the Principled Normal of
    `obj`'s material; returns the image."""
    mat = obj.active_material
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    tex = nodes.new("ShaderNodeTexImage")
    rgba = np.concatenate([pixels[..., :3], np.ones(pixels.shape[:2] + (1,), np.float32)], -1)
    tex.image = new_image(name, rgba.astype(np.float32), linear=True)
    node = nodes.new("ShaderNodeNormalMap")
    node.inputs["Strength"].default_value = strength
    links.new(tex.outputs["Color"], node.inputs["Color"])
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    links.new(node.outputs["Normal"], bsdf.inputs["Normal"])
    return tex.image


def bounding_sphere(obj) -> tuple:
    """Centre of the world bounding box and the farthest vertex from it."""
    co = scene_inputs.read_local_positions(obj).astype(np.float64)
    m = np.array(obj.matrix_world)
    world = co @ m[:3, :3].T + m[:3, 3]
    centre = (world.min(0) + world.max(0)) / 2
    radius = float(np.linalg.norm(world - centre, axis=1).max()) if len(world) else 1.0
    return Vector(centre), max(radius, 1e-3)


def add_cameras_around(obj, count: int = 12, collection_name: str = "SGE Cameras",
                       lens: float = 50.0, margin: float = 1.05, scene=None):
    """`count` cameras on a Fibonacci sphere, each framing `obj`, in a new collection."""
    if count < 1:
        raise ValueError("camera count must be at least 1")
    scene = scene or bpy.context.scene
    collection = bpy.data.collections.new(collection_name)
    scene.collection.children.link(collection)
    centre, radius = bounding_sphere(obj)
    width = 36.0  # sensor width (mm); the default fit (AUTO) spans the longer side
    aspect = scene_inputs.render_aspect(scene)
    half_fov = math.atan(width / (2 * lens) * min(aspect, 1 / aspect))
    distance = margin * radius / math.sin(half_fov)
    for i, offset in enumerate(fibonacci_sphere(count, distance)):
        data = bpy.data.cameras.new(f"{collection_name} {i:02d}")
        data.lens, data.sensor_width = lens, width
        data.clip_start = max(distance - 2 * radius, 1e-3) * 0.5
        data.clip_end = distance + 4 * radius
        cam = bpy.data.objects.new(data.name, data)
        cam.location = centre + Vector(offset)
        cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()
        collection.objects.link(cam)
    return collection


def capture_targets(reference, cameras, scene=None, hide=()) -> list:
    """Render `reference` (its mesh and base-colour texture) from each camera
    at the scene's render resolution, with the optimizer's rasterizer
    (antialiased: the mean of 4 sub-pixel samples), into
    new images set as each camera's first background image. Objects in `hide`
    are hidden in the viewport during the capture and restored after."""
    scene = scene or bpy.context.scene
    scene_inputs.check_mesh_object(reference)
    image, uv_map = scene_inputs.find_base_color_image(reference, scene)
    encoding = image_encoding(image)
    mesh = scene_inputs.read_mesh(reference, uv_map)
    texture = read_image_pixels(image, "base-colour image")
    r = scene.render
    width = max(1, r.resolution_x * r.resolution_percentage // 100)
    height = max(1, r.resolution_y * r.resolution_percentage // 100)
    views = [View(cam.name, scene_inputs.view_projection(cam, scene, width, height),
                  np.zeros((height, width, 4), np.float32)) for cam in cameras]
    hidden = [(o, o.hide_viewport) for o in hide]
    try:
        for o, _ in hidden:
            o.hide_viewport = True
        ensure_gpu()
        engine = Engine(BlenderGPUBackend(), SceneArrays(mesh, texture, views, texture_srgb=(encoding == "srgb")),
                        Settings(optimize_positions=False, optimize_texture=True))
        images = []
        for i, cam in enumerate(cameras):
            # Linear, premultiplied, alpha is coverage: stored straight, in the texture's encoding.
            pixels = straight_from_linear(engine.render_color(i, antialias=True), encoding)
            name = f"Target {cam.name}"
            old = bpy.data.images.get(name)
            if old is not None:
                bpy.data.images.remove(old)
            target = new_image(name, pixels, linear=(encoding == "linear"))
            target.alpha_mode = "STRAIGHT"
            # Made by our filter, not the scene's engine (scene_inputs.pixel_filter_for).
            target[scene_inputs.CAPTURED] = True
            backgrounds = cam.data.background_images
            bg = backgrounds[0] if len(backgrounds) else backgrounds.new()
            bg.image = target
            cam.data.show_background_images = True
            images.append(target)
        return images
    finally:
        for o, state in hidden:
            o.hide_viewport = state
