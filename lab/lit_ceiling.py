"""The lit-shading ceiling (issue 9): with the true maps and the same lights,
how close is our lit render (gpu_kernels/lit_shading.glsl) to EEVEE's?

Builds a smooth UV sphere with a Principled BSDF (base-colour image, constant
roughness/metallic, a tangent-space normal map), a sun, a point, a spot and an
area light and a grey world; renders it with EEVEE (film transparent, shadows
off, a low light threshold; see tests/lit_scene.py) from a few cameras, and with
the rasterize_lit kernel (jittered renders averaged), then prints PSNR per
light kind alone and all together, per material, with and without the normal
map.

    bash tools/dev.sh python lab/lit_ceiling.py [--size 128] [--out out/lit_ceiling]
    bash tools/dev.sh python lab/lit_ceiling.py --engine cycles [--cycles-samples 1024]

With --scene plate (issue 24: shadows) the mesh is a ground square with a
box plate above it (engine.synthetic.ground_and_plate), lit by a sun, a spot
and a point light that cast shadows in the reference, and rendered by the fit's own R
(RASTERIZE_LIT_FIT through engine.raster.Rasterizer, with its shadow maps):
each light once with our shadows off (the model before) and once on.

    bash tools/dev.sh python lab/lit_ceiling.py --scene plate [--engine cycles]

With --engine cycles the reference is Cycles (CPU) instead: light shadows off,
diffuse/glossy/transmission/volume bounces 0 (direct light and the world only,
since we have no indirect light), denoising off, a small adaptive threshold;
see tests/lit_scene.py. Reference frames are cached in --out (delete them to
re-render).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paths  # noqa: E402,F401 (tools/ and tests/ on sys.path)
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import bpy  # noqa: E402
import gpu  # noqa: E402
import lit_scene as ls  # noqa: E402

from sge_optimizer import gpu_kernels as K  # noqa: E402
from sge_optimizer.addon.gpu_backend import BlenderGPUBackend  # noqa: E402
from sge_optimizer.addon.gpu_context import ensure_gpu  # noqa: E402
from sge_optimizer.addon.scene_inputs import view_projection  # noqa: E402
from sge_optimizer.engine import lit_reference as lit  # noqa: E402
from sge_optimizer.engine.color import psnr  # noqa: E402
from sge_optimizer.engine.reference import encode_srgb  # noqa: E402
from sge_optimizer.engine.lighting import Light, Lighting  # noqa: E402
from sge_optimizer.engine.samples import gaussian_offsets, jittered  # noqa: E402
from sge_optimizer.engine import SceneArrays, Settings, View, synthetic  # noqa: E402
from sge_optimizer.engine.materials import LitMaterial, ScalarChannel  # noqa: E402
from sge_optimizer.engine.optimizer import build_parameters  # noqa: E402
from sge_optimizer.engine.raster import Rasterizer  # noqa: E402
from sge_optimizer.engine.scene import LitScene  # noqa: E402

TEX = 128
AMBIENT = (0.05, 0.055, 0.065)
MATERIALS = {  # roughness, metallic, specular IOR level
    "rough": (0.7, 0.0, 0.5),
    "glossy": (0.25, 0.0, 0.5),
    "metallic": (0.35, 1.0, 0.5),
}
# (name, lights, material, normal-map strength)
CASES = [("sun", ("SUN",), "rough", 0.0), ("point", ("POINT",), "rough", 0.0),
         ("spot", ("SPOT",), "rough", 0.0), ("area", ("AREA",), "rough", 0.0),
         ("world", (), "rough", 0.0),
         ("all", ("SUN", "POINT", "SPOT", "AREA"), "rough", 0.0),
         ("all", ("SUN", "POINT", "SPOT", "AREA"), "glossy", 0.0),
         ("all", ("SUN", "POINT", "SPOT", "AREA"), "metallic", 0.0),
         ("sun", ("SUN",), "metallic", 0.0), ("point", ("POINT",), "metallic", 0.0),
         ("area", ("AREA",), "metallic", 0.0), ("world", (), "metallic", 0.0),
         ("sun", ("SUN",), "glossy", 0.0),
         ("all", ("SUN", "POINT", "SPOT", "AREA"), "rough", 1.0),
         ("all", ("SUN", "POINT", "SPOT", "AREA"), "glossy", 1.0)]
CAMERAS = (((0.0, -4.5, 1.2),), ((3.6, 2.4, 1.8),))


def base_color_texture() -> np.ndarray:
    """(TEX, TEX, 4) linear RGBA: smooth colour blobs (low frequency, so that
    EEVEE's mipmapped lookups and our level-0 bilinear ones agree)."""
    u, v = np.meshgrid((np.arange(TEX) + 0.5) / TEX, (np.arange(TEX) + 0.5) / TEX)
    r = 0.45 + 0.3 * np.sin(2 * np.pi * 2 * u) * np.cos(2 * np.pi * v)
    g = 0.4 + 0.25 * np.cos(2 * np.pi * 3 * u + 1.0)
    b = 0.35 + 0.25 * np.sin(2 * np.pi * 2 * v + 2 * np.pi * u)
    return np.stack([r, g, b, np.ones_like(r)], -1).astype(np.float32)


def normal_map_texture() -> np.ndarray:
    """(TEX, TEX, 4) tangent-space normal map (Non-Color): gentle bumps."""
    u, v = np.meshgrid((np.arange(TEX) + 0.5) / TEX, (np.arange(TEX) + 0.5) / TEX)
    dx = 0.35 * np.cos(2 * np.pi * 6 * u) * np.sin(2 * np.pi * 3 * v)
    dy = 0.35 * np.sin(2 * np.pi * 6 * u) * np.cos(2 * np.pi * 3 * v)
    n = np.stack([-dx, -dy, np.ones_like(dx)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.concatenate([n * 0.5 + 0.5, np.ones_like(dx)[..., None]], -1).astype(np.float32)


def _image(name, pixels, colorspace):
    image = bpy.data.images.new(name, TEX, TEX, alpha=True, float_buffer=True)
    image.colorspace_settings.name = colorspace
    image.pixels.foreach_set(pixels.reshape(-1))
    image.pack()
    return image


def build_scene(size: int, engine: str = "eevee", cycles_samples: int = 1024, cycles_seed: int = 0):
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=1.0)
    obj = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    mat = bpy.data.materials.new("lit")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = _image("base", base_color_texture(), "Linear Rec.709")
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    ntex = nodes.new("ShaderNodeTexImage")
    ntex.image = _image("normal", normal_map_texture(), "Non-Color")
    nmap = nodes.new("ShaderNodeNormalMap")
    links.new(ntex.outputs["Color"], nmap.inputs["Color"])
    links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    obj.data.materials.append(mat)

    ls.set_world(scene, AMBIENT)

    def add_light(kind, name, location, rotation, **props):
        return ls.add_light(scene, kind, name, location, rotation, **props)

    lights = {
        "SUN": add_light("SUN", "sun", (0, 0, 5), (math.radians(40), 0, math.radians(30)),
                         energy=2.5, color=(1.0, 0.95, 0.9), angle=math.radians(2)),
        "POINT": add_light("POINT", "point", (2.5, -2.5, 2.0), (0, 0, 0), energy=400.0,
                           color=(0.9, 0.95, 1.0), shadow_soft_size=0.1),
        "SPOT": add_light("SPOT", "spot", (-2.5, -2.0, 2.5), _look_rotation((2.3, 2.0, -2.5)),
                          energy=800.0, color=(1.0, 0.85, 0.8), spot_size=math.radians(35),
                          spot_blend=0.3, shadow_soft_size=0.1),
        "AREA": add_light("AREA", "area", (0.5, -3.0, -1.0), _look_rotation((-0.5, 3.0, 1.3)),
                          energy=80.0, color=(0.85, 1.0, 0.9), size=1.0),
    }
    cams = add_cameras(scene, [eye for (eye,) in CAMERAS], (0.0, 0.0, 0.0), 50, size)
    ls.setup_engine(scene, engine, cycles_samples, cycles_seed)
    bpy.context.view_layer.update()
    return scene, obj, lights, cams, nmap, bsdf


# The engines' settings (shadows off, no indirect light, ...): tests/lit_scene.py.
EEVEE_SETTINGS, CYCLES_SETTINGS = ls.EEVEE_SETTINGS, ls.CYCLES_SETTINGS


_look_rotation = ls.look_rotation


def add_cameras(scene, eyes, centre, lens: float, size: int) -> list:
    """Cameras at `eyes` looking at `centre`, and square 32-bit EXR renders of `size`."""
    cams = []
    for i, eye in enumerate(eyes):
        data = bpy.data.cameras.new(f"cam{i}")
        data.lens = lens
        cam = bpy.data.objects.new(f"cam{i}", data)
        cam.location = eye
        cam.rotation_euler = _look_rotation(np.asarray(centre, np.float64) - np.asarray(eye, np.float64))
        scene.collection.objects.link(cam)
        cams.append(cam)
    r = scene.render
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth = "32"
    return cams


def light_data(ob) -> Light:
    """Our Light from a Blender light object (a stand-in for addon/material_io.py)."""
    d = ob.data
    m = ob.matrix_world
    z = np.array(m.col[2][:3])
    x = np.array(m.col[0][:3])
    power = d.energy * 2.0 ** d.exposure
    common = dict(color=tuple(d.color), power=power, position=tuple(m.translation),
                  direction=tuple(-z / np.linalg.norm(z)), cast_shadow=d.use_shadow)
    if d.type == "SUN":
        return Light("SUN", radius=d.angle, **common)
    if d.type == "POINT":
        return Light("POINT", radius=d.shadow_soft_size, **common)
    if d.type == "SPOT":
        return Light("SPOT", radius=d.shadow_soft_size, spot_size=d.spot_size, spot_blend=d.spot_blend,
                     **common)
    scale = ob.matrix_world.to_scale()
    sy = d.size_y if d.shape in ("RECTANGLE", "ELLIPSE") else d.size
    return Light("AREA", area_size=(d.size * scale.x, sy * scale.y), axis_x=tuple(x / np.linalg.norm(x)),
                 **common)


def read_exr(path: Path, size: int) -> np.ndarray:
    image = bpy.data.images.load(str(path))
    pixels = np.empty(size * size * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(size, size, 4)  # bottom-up rows, premultiplied linear


def render_reference(scene, lights, cams, nmap, bsdf, out: Path, size: int,
                     engine: str = "eevee") -> dict:
    frames = {}
    for name, kinds, material, strength in CASES:
        for k, ob in lights.items():
            ob.hide_render = k not in kinds
        rough, metal, spec = MATERIALS[material]
        bsdf.inputs["Roughness"].default_value = rough
        bsdf.inputs["Metallic"].default_value = metal
        bsdf.inputs["Specular IOR Level"].default_value = spec
        nmap.inputs["Strength"].default_value = strength
        for i, cam in enumerate(cams):
            path = out / f"{engine_tag(scene, engine)}_{name}_{material}_n{strength:g}_cam{i}.exr"
            frames[(name, material, strength, i)] = render_cached(scene, cam, path, engine, size)
    return frames


def engine_tag(scene, engine: str) -> str:
    """The renders' file-name tag: the engine, Cycles' samples and seed."""
    if engine == "eevee":
        return "eevee"
    return f"cycles{scene.cycles.samples}" + (f"_seed{scene.cycles.seed}" if scene.cycles.seed else "")


def render_cached(scene, cam, path: Path, engine: str, size: int) -> np.ndarray:
    """`cam`'s render as an EXR at `path` (rendered only if not there yet), read back."""
    if not path.exists():
        scene.camera = cam
        scene.render.filepath = str(path)
        t = time.time()
        bpy.ops.render.render(write_still=True)
        print(f"  {engine} {path.name}: {time.time() - t:.1f} s", flush=True)
    return read_exr(path, size)


def mesh_arrays(obj):
    """World-space corners of the loop triangles: positions, normals, tangents
    (with the bitangent sign), uvs."""
    mesh = obj.data
    mesh.calc_tangents(uvmap=mesh.uv_layers.active.name)
    n_loops = len(mesh.loops)
    tangent = np.empty(n_loops * 3, np.float32)
    sign = np.empty(n_loops, np.float32)
    mesh.loops.foreach_get("tangent", tangent)
    mesh.loops.foreach_get("bitangent_sign", sign)
    normal = np.empty(n_loops * 3, np.float32)
    mesh.corner_normals.foreach_get("vector", normal)
    uv = np.empty(n_loops * 2, np.float32)
    mesh.uv_layers.active.data.foreach_get("uv", uv)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    mesh.calc_loop_triangles()
    tri_loops = np.empty(len(mesh.loop_triangles) * 3, np.int64)
    mesh.loop_triangles.foreach_get("loops", tri_loops)
    loop_vert = np.empty(n_loops, np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vert)
    m = np.array(obj.matrix_world)
    nm = np.linalg.inv(m[:3, :3]).T
    pos = co.reshape(-1, 3)[loop_vert[tri_loops]] @ m[:3, :3].T + m[:3, 3]
    nrm = normal.reshape(-1, 3)[tri_loops] @ nm.T
    tan = tangent.reshape(-1, 3)[tri_loops] @ m[:3, :3].T
    tan4 = np.concatenate([tan, sign[tri_loops, None]], 1)
    return pos, nrm, tan4, uv.reshape(-1, 2)[tri_loops]


def lit_batch(pos, nrm, tan4, uv):
    fmt = gpu.types.GPUVertFormat()
    fmt.attr_add(id="position", comp_type="F32", len=3, fetch_mode="FLOAT")
    fmt.attr_add(id="normal", comp_type="F32", len=3, fetch_mode="FLOAT")
    fmt.attr_add(id="tangent", comp_type="F32", len=4, fetch_mode="FLOAT")
    fmt.attr_add(id="corner_uv", comp_type="F32", len=2, fetch_mode="FLOAT")
    vbo = gpu.types.GPUVertBuf(fmt, len(pos))
    for name, data in (("position", pos), ("normal", nrm), ("tangent", tan4), ("corner_uv", uv)):
        vbo.attr_fill(name, np.ascontiguousarray(data, np.float32))
    return gpu.types.GPUBatch(type="TRIS", buf=vbo)


def render_ours(backend, batch, scene, cams, lights, size, offsets, textures) -> dict:
    target = backend.render_target(size, size)
    frames = {}
    for name, kinds, material, strength in CASES:
        lighting = Lighting(tuple(light_data(lights[k]) for k in kinds), ambient=AMBIENT)
        packed = lit.pack_lights(lighting)
        light_tex = backend.texture(4, packed.shape[0], "RGBA32F", packed)
        rough, metal, spec = MATERIALS[material]
        mat_tex = backend.texture(1, 1, "RGBA32F", np.array([rough, metal, spec, 1.0], np.float32))
        for i, cam in enumerate(cams):
            vp = view_projection(cam, scene, size, size)
            eye = [float(v) for v in cam.matrix_world.translation]
            acc = np.zeros((size, size, 4), np.float64)
            for dx, dy in offsets:
                backend.draw(K.RASTERIZE_LIT, target, batch,
                             samplers={"lights": light_tex, "base_color": textures["base"],
                                       "material": mat_tex, "normal_map": textures["normal"]},
                             constants={"view_projection": jittered(vp, dx, dy, size, size),
                                        "camera_position": eye, "normal_strength": float(strength)})
                backend.finish()
                acc += backend.read(target.color)
            frames[(name, material, strength, i)] = (acc / len(offsets)).astype(np.float32)
    return frames


def frame_psnr(a, b, mask=None):
    """PSNR of two premultiplied linear frames, sRGB-encoded as the kernels
    encode (premultiplied RGB), over `mask`'s pixels."""
    d = (encode_srgb(a)[..., :3] - encode_srgb(b)[..., :3]) ** 2
    return psnr(d.mean() if mask is None else d[mask].mean())


def interior(a, b):
    """Pixels fully covered in both, one pixel in from the silhouette."""
    m = (a[..., 3] > 0.999) & (b[..., 3] > 0.999)
    m[1:] &= m[:-1].copy()
    m[:-1] &= m[1:].copy()
    m[:, 1:] &= m[:, :-1].copy()
    m[:, :-1] &= m[:, 1:].copy()
    return m


# The shadow scene (--scene plate): (name, lights that cast shadows in the reference)
PLATE_CASES = [("sun", ("SUN",)), ("spot", ("SPOT",)), ("sun+spot", ("SUN", "SPOT")), ("point", ("POINT",)),
               ("all three", ("SUN", "SPOT", "POINT"))]
PLATE_CAMERAS = ((0.4, -3.6, 2.6), (-2.6, 2.2, 2.4))
PLATE_ROUGHNESS = 0.6


def build_plate_scene(size: int, engine: str = "eevee", cycles_samples: int = 1024, cycles_seed: int = 0):
    """ground_and_plate as a Blender mesh (flat shaded, the base-colour image on
    its UVs, roughness PLATE_ROUGHNESS), a sun, a spot and a point light
    casting shadows, the grey world; EEVEE with shadows on."""
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    scene = bpy.context.scene
    arrays = synthetic.ground_and_plate()
    me = bpy.data.meshes.new("plate")
    quads = np.arange(len(arrays.positions)).reshape(-1, 4)  # each quad has 4 vertices of its own
    me.from_pydata(arrays.positions.tolist(), [], quads.tolist())
    uv = me.uv_layers.new(name="UVMap")
    vertex_uv = np.zeros((len(arrays.positions), 2), np.float32)
    vertex_uv[arrays.triangles.reshape(-1)] = arrays.corner_uvs.reshape(-1, 2)
    uv.data.foreach_set("uv", vertex_uv[quads.reshape(-1)].reshape(-1))
    obj = bpy.data.objects.new("plate", me)
    scene.collection.objects.link(obj)
    mat = bpy.data.materials.new("lit")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = _image("base", base_color_texture(), "Linear Rec.709")
    tex.interpolation = "Linear"
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = PLATE_ROUGHNESS
    me.materials.append(mat)
    ls.set_world(scene, AMBIENT)
    lights = {
        "SUN": ls.add_light(scene, "SUN", "sun", (0, 0, 5), _look_rotation((0.35, -0.25, -0.9)),
                            energy=3.0, color=(1.0, 0.95, 0.9), angle=math.radians(3)),
        "SPOT": ls.add_light(scene, "SPOT", "spot", (-1.4, 1.0, 3.2), _look_rotation((0.4, -0.3, -0.9)),
                             energy=500.0, color=(1.0, 0.85, 0.8), spot_size=math.radians(80),
                             spot_blend=0.3, shadow_soft_size=0.1),
        "POINT": ls.add_light(scene, "POINT", "point", (0.9, -0.7, 1.6), (0, 0, 0), energy=250.0,
                              color=(0.85, 0.9, 1.0), shadow_soft_size=0.1),
    }
    for ob in lights.values():  # the reference casts shadows (tests/lit_scene.py turns them off)
        ob.data.use_shadow = True
        ob.visible_shadow = True
    cams = add_cameras(scene, PLATE_CAMERAS, (0.0, 0.0, 0.2), 40, size)
    ls.setup_engine(scene, engine, cycles_samples, cycles_seed)
    scene.eevee.use_shadows = True
    if engine == "cycles":  # direct light only, as ours: the plate hides no world light from the ground
        obj.visible_diffuse = obj.visible_glossy = False
    bpy.context.view_layer.update()
    return scene, arrays, lights, cams


def render_plate_reference(scene, lights, cams, out: Path, size: int, engine: str) -> dict:
    frames = {}
    tag = engine_tag(scene, engine)
    for name, kinds in PLATE_CASES:
        for k, ob in lights.items():
            ob.hide_render = k not in kinds
        for i, cam in enumerate(cams):
            frames[(name, i)] = render_cached(scene, cam, out / f"{tag}_plate_{name}_cam{i}.exr", engine, size)
    return frames


def render_plate_ours(backend, scene, arrays, lights, cams, size, offsets, shadows: bool) -> dict:
    """Each case through the fit's R (Rasterizer: RASTERIZE_LIT_FIT and its shadow maps)."""
    frames = {}
    views = [View(f"cam{i}", view_projection(cam, scene, size, size), np.zeros((size, size, 4), np.float32))
             for i, cam in enumerate(cams)]
    eyes = [np.array(cam.matrix_world.translation) for cam in cams]
    texture = base_color_texture()
    for name, kinds in PLATE_CASES:
        chosen = []
        for k in kinds:
            light = light_data(lights[k])
            chosen.append(Light(**{**light.__dict__, "cast_shadow": shadows}))
        lit_scene = LitScene.from_material(LitMaterial(roughness=ScalarChannel(constant=PLATE_ROUGHNESS)),
                                           Lighting(tuple(chosen), ambient=AMBIENT),
                                           synthetic.flat_frames(arrays), eyes)
        sa = SceneArrays(arrays, texture, views, lit=lit_scene)
        params = build_parameters(backend, sa, Settings(lit=True, optimize_positions=False), sart=False)
        raster = Rasterizer(backend, sa, params, seed=0, with_pair=False)
        for i in range(len(cams)):
            acc = np.zeros((size, size, 4), np.float64)
            for offset in offsets:
                raster.draw(raster.plus, i, offset=(float(offset[0]), float(offset[1])))
                acc += backend.read(backend.target_textures(raster.plus)["color"])
            frames[(name, i)] = (acc / len(offsets)).astype(np.float32)
    return frames


def plate_main(args, out: Path) -> None:
    scene, arrays, lights, cams = build_plate_scene(args.size, args.engine, args.cycles_samples, args.cycles_seed)
    print(f"Blender {bpy.app.version_string}, {scene.render.engine}, {args.size}px, shadow scene", flush=True)
    reference = render_plate_reference(scene, lights, cams, out, args.size, args.engine)
    ref = "EEVEE" if args.engine == "eevee" else "Cycles"
    ensure_gpu()
    backend = BlenderGPUBackend()
    offsets = gaussian_offsets(args.samples, args.sigma)
    ours = {on: render_plate_ours(backend, scene, arrays, lights, cams, args.size, offsets, on) for on in (False, True)}
    print(f"\n| lights (casting shadows) | our shadows | PSNR vs {ref} (dB) | interior (dB) | mean ratio ours/{ref} |")
    print("|---|---|---|---|---|")
    for name, _ in PLATE_CASES:
        for on in (False, True):
            full, inner, ratio = [], [], []
            for i in range(len(cams)):
                a, b = ours[on][(name, i)], reference[(name, i)]
                m = interior(a, b)
                full.append(frame_psnr(a, b))
                inner.append(frame_psnr(a, b, m))
                ratio.append(a[m][:, :3].mean() / max(b[m][:, :3].mean(), 1e-8))
                np.save(out / f"ours_plate_{name}_{'on' if on else 'off'}_cam{i}.npy", a)
            print(f"| {name} | {'on' if on else 'off'} | {np.mean(full):.1f} | {np.mean(inner):.1f} | "
                  f"{np.mean(ratio):.3f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", default="out/lit_ceiling")
    parser.add_argument("--samples", type=int, default=16, help="jittered renders averaged")
    parser.add_argument("--sigma", type=float, default=0.3, help="jitter Gaussian sigma in pixels")
    parser.add_argument("--engine", choices=("eevee", "cycles"), default="eevee",
                        help="the reference renderer")
    parser.add_argument("--cycles-samples", type=int, default=1024)
    parser.add_argument("--cycles-seed", type=int, default=0,
                        help="a second seed gives the Cycles noise floor (PSNR between seeds)")
    parser.add_argument("--cases", default="", help="comma-separated case indices (default all)")
    parser.add_argument("--scene", choices=("sphere", "plate"), default="sphere",
                        help="plate: the self-shadowing scene (suns and spots casting shadows)")
    args = parser.parse_args(argv)
    if args.scene == "plate":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        return plate_main(args, out)
    global CASES
    if args.cases:
        CASES = [CASES[int(i)] for i in args.cases.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene, obj, lights, cams, nmap, bsdf = build_scene(args.size, args.engine, args.cycles_samples,
                                                   args.cycles_seed)
    print(f"Blender {bpy.app.version_string}, {scene.render.engine}, {args.size}px", flush=True)
    eevee = render_reference(scene, lights, cams, nmap, bsdf, out, args.size, args.engine)
    ref = "EEVEE" if args.engine == "eevee" else "Cycles"
    ensure_gpu()
    backend = BlenderGPUBackend()
    textures = {"base": backend.texture(TEX, TEX, "RGBA32F", base_color_texture()),
                "normal": backend.texture(TEX, TEX, "RGBA32F", normal_map_texture())}
    batch = lit_batch(*mesh_arrays(obj))
    ours = render_ours(backend, batch, scene, cams, lights, args.size,
                       gaussian_offsets(args.samples, args.sigma), textures)
    print(f"\n| lights | material | normal map | PSNR vs {ref} (dB) | interior (dB) | mean ratio ours/{ref} |")
    print("|---|---|---|---|---|---|")
    for name, kinds, material, strength in CASES:
        full, inner, ratio = [], [], []
        for i in range(len(cams)):
            a, b = ours[(name, material, strength, i)], eevee[(name, material, strength, i)]
            m = interior(a, b)
            full.append(frame_psnr(a, b))
            inner.append(frame_psnr(a, b, m))
            ratio.append(a[m][:, :3].mean() / max(b[m][:, :3].mean(), 1e-8))
            np.save(out / f"ours_{name}_{material}_n{strength:g}_cam{i}.npy", a)
        print(f"| {name} | {material} | {'on' if strength else 'off'} | {np.mean(full):.1f} | "
              f"{np.mean(inner):.1f} | {np.mean(ratio):.3f} |", flush=True)


if __name__ == "__main__":
    main()
