"""Blender material, lights and world -> plain data for the lit model (issue 9).

Reading only: every function validates, refuses what the model does not
reproduce with `InputError` naming what to change, and leaves the scene as it
was (temporary meshes are freed).
"""
from __future__ import annotations

import dataclasses

import bpy
import numpy as np

from ..engine.environment import equirect_to_sh9
from ..engine.lighting import Light, Lighting
from ..engine.materials import ColorChannel, CornerFrames, LitMaterial, NormalChannel, ScalarChannel
from . import shape_keys
from .errors import InputError
from .image_pixels import convert_encoding, image_encoding, read_image_pixels

# Principled inputs the model does not reproduce: (input, neutral value). A
# linked one, or one away from its neutral value, is refused.
UNSUPPORTED_INPUTS = (
    ("Subsurface Weight", 0.0),
    ("Transmission Weight", 0.0),
    ("Coat Weight", 0.0),
    ("Sheen Weight", 0.0),
    ("Anisotropic", 0.0),
    ("Thin Film Thickness", 0.0),
    ("Diffuse Roughness", 0.0),
    ("Alpha", 1.0),
    ("Specular Tint", (1.0, 1.0, 1.0)),
)
# Inputs that must not be linked (their values are read or irrelevant).
UNLINKED_INPUTS = ("Tangent", "IOR", "Specular IOR Level", "Emission Color", "Emission Strength")

# Rec. 709 luminance: Blender's implicit colour -> float socket conversion.
LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)

ACCEPTED_VIEW_TRANSFORMS = ("Standard", "Raw")


# Node-tree helpers ---------------------------------------------------------------
def linked_source(socket):
    """(node, output socket) feeding `socket`, through reroutes; None if unlinked."""
    while socket.is_linked:
        link = socket.links[0]
        if link.is_muted:
            return None
        node = link.from_node
        if node.type != "REROUTE":
            if node.mute:
                raise InputError(f"node '{node.name}' is muted; unmute or remove it")
            return node, link.from_socket
        socket = node.inputs[0]
    return None


def uses_nodes(idblock) -> bool:
    if idblock.node_tree is None:
        return False
    return bpy.app.version >= (5, 0, 0) or idblock.use_nodes  # always on since 5.0


def output_target(scene) -> str:
    """The output-node target the scene's engine renders: Cycles its own; any
    other engine EEVEE's (Workbench does not render shader nodes, and the
    viewport's Material Preview is EEVEE)."""
    return "CYCLES" if scene.render.engine == "CYCLES" else "EEVEE"


def active_output(tree, node_type: str, target: str):
    """The output node Blender renders for `target` ("EEVEE" or "CYCLES"), as
    Blender picks it: one for that target beats one for All, and among equals
    the active one, else the first; None if there is none."""
    outputs = [n for n in tree.nodes if n.type == node_type]
    for kind in (target, "ALL"):
        candidates = [n for n in outputs if n.target == kind]
        if candidates:
            return next((n for n in candidates if n.is_active_output), candidates[0])
    return None


# The material ------------------------------------------------------------------------
def _used_slots(obj) -> list:
    """(slot index, face count, first face) of each material slot the faces
    use (an index past the last slot counts as the last, as Blender draws it);
    slot 0 for a mesh without faces."""
    index = np.zeros(len(obj.data.polygons), np.int32)
    obj.data.polygons.foreach_get("material_index", index)
    if len(index) == 0:
        return [(0, 0, 0)]
    index = np.clip(index, 0, max(len(obj.material_slots) - 1, 0))
    slots, first, counts = np.unique(index, return_index=True, return_counts=True)
    return [(int(s), int(c), int(f)) for s, f, c in zip(slots, first, counts)]


def base_color_image(obj, scene=None) -> tuple:
    """(image, uv map name or None) that the object's faces show as base colour,
    each used material followed from the Material Output that the scene's
    engine renders (`principled_bsdf`) to its Base Color's Image Texture.
    Faces that show different images, or none, are refused by slot."""
    slots = obj.material_slots
    advice = ("give it a material whose Principled BSDF, connected to the Material Output, has its "
              "Base Color fed by an Image Texture node")
    if len(slots) == 0:
        raise InputError(f"object '{obj.name}' has no base-colour image (it has no material): {advice}")
    shown = []  # (slot, faces, first face, material, (image, uv map) or None)
    for slot, faces, first in _used_slots(obj):
        mat = slots[slot].material
        source = None if mat is None else _base_color_source(mat, principled_bsdf(mat, scene))
        shown.append((slot, faces, first, mat, None if source is None else (source[0].image, source[2] or None)))
    distinct = {entry[4] for entry in shown}
    if len(distinct) == 1 and None not in distinct:
        return distinct.pop()
    if len(shown) == 1:
        mat = shown[0][3]
        why = "its faces use an empty material slot" if mat is None else \
            f"nothing feeds the Base Color of material '{mat.name}'"
        raise InputError(f"object '{obj.name}' has no base-colour image ({why}): {advice}")

    def shows(mat, source):
        if mat is None:
            return "(empty)"
        if source is None:
            return f"'{mat.name}' (no base-colour image)"
        uv = f" through UV map '{source[1]}'" if source[1] else ""
        return f"'{mat.name}' (image '{source[0].name}'{uv})"

    detail = "; ".join(f"slot {slot + 1} {shows(mat, source)} on {faces} faces (the first is face {first})"
                       for slot, faces, first, mat, source in shown)
    raise InputError(f"object '{obj.name}' shows different base colours on its faces: {detail}. A fit "
                     "optimizes one base-colour image: give these faces materials that share one image, "
                     "or split the object (Edit Mode > Mesh > Separate > By Material)")


def object_material(obj):
    """The one material on all of the object's faces."""
    slots = obj.material_slots
    if len(slots) == 0:
        raise InputError(f"object '{obj.name}' has no material: add one with a Principled BSDF")
    materials = [slots[slot].material for slot, _, _ in _used_slots(obj)]
    if any(m is None for m in materials):
        raise InputError(f"object '{obj.name}' has faces in an empty material slot: "
                         "give every face the same material")
    if len({m.name for m in materials}) > 1:
        names = ", ".join(sorted(f"'{m.name}'" for m in set(materials)))
        raise InputError(f"object '{obj.name}' uses several materials ({names}) on its faces; "
                         "the lit model takes one material: assign one material to all faces")
    return materials[0]


def _material_output(mat, scene):
    """The Material Output the scene's engine renders (`active_output`)."""
    if not uses_nodes(mat):
        raise InputError(f"material '{mat.name}' does not use nodes: enable Use Nodes "
                         "and give it a Principled BSDF")
    output = active_output(mat.node_tree, "OUTPUT_MATERIAL", output_target(scene or bpy.context.scene))
    if output is None:
        raise InputError(f"material '{mat.name}' has no Material Output node (for the scene's render engine)")
    return output


def principled_bsdf(mat, scene=None):
    """The Principled BSDF feeding the Surface of the Material Output that the
    scene's engine renders (through reroutes); anything else is refused by name."""
    output = _material_output(mat, scene)
    source = linked_source(output.inputs["Surface"])
    if source is None:
        raise InputError(f"material '{mat.name}': nothing feeds the Surface of its Material Output "
                         f"'{output.name}'; connect a Principled BSDF")
    node = source[0]
    if node.type != "BSDF_PRINCIPLED":
        raise InputError(f"material '{mat.name}': its surface is a '{node.bl_label}' node; SGE Optimizer "
                         f"reads a Principled BSDF connected directly to the Material Output '{output.name}'")
    return node


def principled_node(mat, scene=None):
    """`principled_bsdf`, refusing what the lit model does not reproduce on the
    Material Output (Volume, Displacement)."""
    output = _material_output(mat, scene)
    for name in ("Volume", "Displacement"):
        if name in output.inputs and output.inputs[name].is_linked:
            raise InputError(f"material '{mat.name}': its Material Output has a {name} input; "
                             f"the lit model does not reproduce {name.lower()}: disconnect it")
    return principled_bsdf(mat, scene)


def _check_unsupported(mat, bsdf) -> None:
    for name, neutral in UNSUPPORTED_INPUTS:
        if name not in bsdf.inputs:
            continue
        socket = bsdf.inputs[name]
        if socket.is_linked:
            raise InputError(f"material '{mat.name}': the Principled BSDF's {name} is connected; "
                             "the lit model does not reproduce it: disconnect it")
        value = socket.default_value
        if isinstance(neutral, tuple):
            off = any(abs(a - b) > 1e-6 for a, b in zip(tuple(value)[:3], neutral))
        else:
            off = abs(value - neutral) > 1e-6
        if off:
            want = "white" if isinstance(neutral, tuple) else f"{neutral:g}"
            raise InputError(f"material '{mat.name}': the Principled BSDF's {name} is not {want}; "
                             f"the lit model does not reproduce it: set it to {want}")
    for name in UNLINKED_INPUTS:
        if name in bsdf.inputs and bsdf.inputs[name].is_linked:
            raise InputError(f"material '{mat.name}': the Principled BSDF's {name} is connected; "
                             "only constant values are supported there: disconnect it")
    strength = bsdf.inputs["Emission Strength"].default_value
    if strength > 0 and max(tuple(bsdf.inputs["Emission Color"].default_value)[:3]) > 0:
        raise InputError(f"material '{mat.name}': the Principled BSDF emits light (Emission Strength "
                         f"{strength:g}); the lit model does not reproduce emission: set it to 0")


def _image_node(mat, socket, what: str):
    """(Image Texture node, output socket, uv map or '') feeding `socket` directly."""
    node, out = linked_source(socket)
    if node.type != "TEX_IMAGE":
        raise InputError(f"material '{mat.name}': the {what} comes from a '{node.bl_label}' node; "
                         "connect an Image Texture node directly (no Mix, Color Ramp, Math, "
                         "Separate or other nodes in between)")
    if node.image is None:
        raise InputError(f"material '{mat.name}': the Image Texture node '{node.name}' ({what}) has no image")
    if node.projection != "FLAT":
        raise InputError(f"material '{mat.name}': the {what} texture '{node.image.name}' uses "
                         f"{node.projection.title()} projection; set it to Flat")
    uv_map = ""
    vector = linked_source(node.inputs["Vector"])
    if vector is not None:
        if vector[0].type != "UVMAP":
            raise InputError(f"material '{mat.name}': the {what} texture '{node.image.name}' is mapped by "
                             f"a '{vector[0].bl_label}' node; only a UV Map node (or none) is supported")
        uv_map = vector[0].uv_map
    return node, out, uv_map


def _require_non_color(mat, image, what: str) -> None:
    if not image.colorspace_settings.is_data:
        raise InputError(f"material '{mat.name}': the {what} image '{image.name}' has colour space "
                         f"'{image.colorspace_settings.name}'; set it to Non-Color in the Image Texture node")


def _scalar_image(mat, node, out, what: str) -> np.ndarray:
    _require_non_color(mat, node.image, what)
    pixels = read_image_pixels(node.image, f"{what} image")
    if out.name == "Alpha":
        return np.ascontiguousarray(pixels[..., 3])
    return (pixels[..., :3] @ LUMINANCE).astype(np.float32)


def _resolve_uv(mesh, name: str) -> str | None:
    """A UV map name ('' = the render-active one) -> the layer's name."""
    if name:
        if mesh.uv_layers.get(name) is None:
            raise InputError(f"mesh '{mesh.name}' has no UV map named '{name}' (used by its material)")
        return name
    layer = next((u for u in mesh.uv_layers if u.active_render), None) or mesh.uv_layers.active
    return layer.name if layer is not None else None


def _base_color_source(mat, bsdf):
    """(Image Texture node, output socket, uv map or '') feeding the Principled
    Base Color, or None where it is unlinked; only its Color output is read."""
    base = bsdf.inputs["Base Color"]
    if linked_source(base) is None:
        return None
    node, out, uv = _image_node(mat, base, "Base Color")
    if out.name != "Color":
        raise InputError(f"material '{mat.name}': the Base Color comes from the Alpha output of "
                         f"'{node.image.name}'; connect its Color output")
    return node, out, uv


def read_lit_material(obj, scene=None) -> LitMaterial:
    """The object's material as a `LitMaterial`. Changes nothing."""
    mat = object_material(obj)
    bsdf = principled_node(mat, scene)
    _check_unsupported(mat, bsdf)
    result = LitMaterial(name=mat.name,
                         specular_ior_level=float(bsdf.inputs["Specular IOR Level"].default_value),
                         ior=float(bsdf.inputs["IOR"].default_value), distribution=bsdf.distribution)
    uv_maps = {}  # image name -> its UV map
    images = {}  # image name -> channel

    def note(node, uv, channel):
        name = node.image.name
        if name in images:
            raise InputError(f"material '{mat.name}': the image '{name}' feeds both {images[name]} and "
                             f"{channel}; use a separate image for each channel")
        images[name] = channel
        uv_maps[name] = _resolve_uv(obj.data, uv)

    source = _base_color_source(mat, bsdf)
    if source is None:
        base = bsdf.inputs["Base Color"]
        result.base_color = ColorChannel(constant=tuple(float(c) for c in base.default_value[:3]))
    else:
        node, _, uv = source
        note(node, uv, "Base Color")
        encoding = image_encoding(node.image)
        result.base_color = ColorChannel(image=read_image_pixels(node.image, "base-colour image"),
                                         srgb=(encoding == "srgb"), image_name=node.image.name)

    for key, label in (("roughness", "Roughness"), ("metallic", "Metallic")):
        socket = bsdf.inputs[label]
        if linked_source(socket) is None:
            value = float(socket.default_value)
            setattr(result, key, ScalarChannel(constant=value))
            continue
        node, out, uv = _image_node(mat, socket, label)
        note(node, uv, label)
        setattr(result, key, ScalarChannel(image=_scalar_image(mat, node, out, label),
                                           image_name=node.image.name))

    result.normal = _read_normal(mat, bsdf, note, obj)
    names = set(uv_maps.values())
    if len(names) > 1:
        detail = ", ".join(f"'{image}' uses '{uv}'" for image, uv in sorted(uv_maps.items()))
        raise InputError(f"material '{mat.name}': its images use different UV maps ({detail}); "
                         "use one UV map for all of them")
    result.uv_map = names.pop() if names else None
    return result


def _read_normal(mat, bsdf, note, obj) -> NormalChannel | None:
    source = linked_source(bsdf.inputs["Normal"])
    if source is None:
        return None
    node = source[0]
    if node.type != "NORMAL_MAP":
        raise InputError(f"material '{mat.name}': the Normal comes from a '{node.bl_label}' node; the lit "
                         "model supports an Image Texture (Non-Color) through a Normal Map node")
    if node.space != "TANGENT":
        raise InputError(f"material '{mat.name}': the Normal Map node '{node.name}' is in "
                         f"{node.space.title()} space; set it to Tangent Space")
    if node.inputs["Strength"].is_linked:
        raise InputError(f"material '{mat.name}': the Normal Map node's Strength is connected; "
                         "only a constant strength is supported")
    if linked_source(node.inputs["Color"]) is None:
        raise InputError(f"material '{mat.name}': the Normal Map node '{node.name}' has no image; "
                         "connect an Image Texture or remove the node")
    tex, out, uv = _image_node(mat, node.inputs["Color"], "normal map")
    if out.name != "Color":
        raise InputError(f"material '{mat.name}': the normal map comes from the Alpha output of "
                         f"'{tex.image.name}'; connect its Color output")
    _require_non_color(mat, tex.image, "normal map")
    note(tex, uv, "Normal")
    tangent_uv = _resolve_uv(obj.data, node.uv_map)
    image_uv = _resolve_uv(obj.data, uv)
    if tangent_uv != image_uv:
        raise InputError(f"material '{mat.name}': the Normal Map node uses UV map '{tangent_uv}' but its "
                         f"image uses '{image_uv}'; use the same UV map for both")
    pixels = read_image_pixels(tex.image, "normal map image")
    return NormalChannel(image=np.ascontiguousarray(pixels[..., :3]),
                         strength=float(node.inputs["Strength"].default_value), image_name=tex.image.name)


# Corner frames ------------------------------------------------------------------------
def check_frames_follow(obj) -> None:
    """A lit fit that moves vertices recomputes the normals by Blender's own
    rule (engine/frames.py); custom split normals are the user's, and no
    rule brings them along."""
    if obj.data.has_custom_normals:
        raise InputError(f"mesh '{obj.data.name}' has custom split normals, which a lit fit that moves vertices "
                         "cannot carry along: untick Positions, or clear them (Object Data > Geometry Data > "
                         "Clear Custom Split Normals Data)")


def corner_frames(obj, uv_map: str | None) -> CornerFrames:
    """World-space normals and MikkTSpace tangents at each loop-triangle corner,
    in the order of `scene_inputs.read_mesh`. The positions are the ones read_mesh
    reads (shape-key mix, no modifiers). Quads keep their tangents as Blender
    computes them for rendering; n-gons use their loop triangles. The user's
    mesh is not changed: the work is done on temporary copies."""
    if obj.mode == "EDIT":
        raise InputError(f"object '{obj.name}' is in Edit Mode: switch to Object Mode (Tab) first")
    mesh = obj.data
    uv_name = _resolve_uv(mesh, uv_map or "")
    if uv_name is None:
        raise InputError(f"mesh '{mesh.name}' has no UV map: unwrap it first (UV > Unwrap)")
    mesh.calc_loop_triangles()
    n = len(mesh.loop_triangles)
    tri_loops = np.empty(n * 3, np.int32)
    mesh.loop_triangles.foreach_get("loops", tri_loops)
    tri_poly = np.empty(n, np.int32)
    mesh.loop_triangles.foreach_get("polygon_index", tri_poly)
    tri_loops = tri_loops.reshape(-1, 3)

    temp = obj.to_mesh(preserve_all_data_layers=True)  # owned by obj, not in bpy.data
    try:
        temp.vertices.foreach_set("co", shape_keys.visible_positions(obj).astype(np.float32).ravel())
        temp.update()
        normals = np.empty(len(temp.loops) * 3, np.float32)
        temp.corner_normals.foreach_get("vector", normals)
        normals = normals.reshape(-1, 3)
        totals = np.empty(len(temp.polygons), np.int32)
        temp.polygons.foreach_get("loop_total", totals)
        if totals.max(initial=0) <= 4:
            tangents = _tangents(temp, uv_name)
            corner_tangents = tangents[tri_loops]
        else:
            corner_tangents = _ngon_tangents(temp, uv_name, normals, totals, tri_loops, tri_poly)
    finally:
        obj.to_mesh_clear()
    corner_normals = normals[tri_loops]
    frames = _to_world(obj, corner_normals, corner_tangents)
    frames.polygons = _polygons(mesh, tri_poly, uv_name)
    return frames


def _polygons(mesh, tri_poly, uv_name: str) -> tuple:
    """Each loop triangle's polygon as (start, count) into the loops' vertex
    list, that list, and the loops' UVs."""
    loop_vertex = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vertex)
    uv = np.empty(2 * len(mesh.loops), np.float32)
    mesh.uv_layers[uv_name].uv.foreach_get("vector", uv)
    starts = np.empty(len(mesh.polygons), np.int64)
    totals = np.empty(len(mesh.polygons), np.int64)
    mesh.polygons.foreach_get("loop_start", starts)
    mesh.polygons.foreach_get("loop_total", totals)
    return starts[tri_poly], totals[tri_poly], loop_vertex, uv.reshape(-1, 2)


def _tangents(mesh, uv_name: str) -> np.ndarray:
    """(loops, 4): tangent xyz and bitangent sign, from Blender's MikkTSpace."""
    try:
        mesh.calc_tangents(uvmap=uv_name)
    except RuntimeError as err:
        raise InputError(f"could not compute tangents on '{mesh.name}': {err}") from err
    count = len(mesh.loops)
    tangent = np.empty(count * 3, np.float32)
    sign = np.empty(count, np.float32)
    mesh.loops.foreach_get("tangent", tangent)
    mesh.loops.foreach_get("bitangent_sign", sign)
    return np.concatenate([tangent.reshape(-1, 3), sign[:, None]], 1)


def _ngon_tangents(temp, uv_name, normals, totals, tri_loops, tri_poly) -> np.ndarray:
    """Tangents of a mesh with n-gons: quads and triangles kept, each n-gon
    replaced by its loop triangles, on a temporary mesh with the same corner
    normals (as custom normals)."""
    starts = np.empty(len(totals), np.int32)
    temp.polygons.foreach_get("loop_start", starts)
    ngon = totals > 4
    kept = np.flatnonzero(~ngon)
    kept_loops = np.concatenate([np.arange(starts[p], starts[p] + totals[p]) for p in kept]) \
        if len(kept) else np.zeros(0, np.int64)
    split = np.flatnonzero(ngon[tri_poly])  # loop triangles of n-gons
    source = np.concatenate([kept_loops, tri_loops[split].ravel()]).astype(np.int64)
    face_sizes = np.concatenate([totals[kept], np.full(len(split), 3)]).astype(np.int32)
    face_starts = np.concatenate([[0], np.cumsum(face_sizes)[:-1]]).astype(np.int32)

    verts = np.empty(len(temp.loops), np.int32)
    temp.loops.foreach_get("vertex_index", verts)
    co = np.empty(len(temp.vertices) * 3, np.float32)
    temp.vertices.foreach_get("co", co)
    uv = np.empty(len(temp.loops) * 2, np.float32)
    temp.uv_layers[uv_name].uv.foreach_get("vector", uv)
    uv = uv.reshape(-1, 2)

    built = bpy.data.meshes.new("sge_tangent_temp")
    try:
        built.vertices.add(len(temp.vertices))
        built.vertices.foreach_set("co", co)
        built.loops.add(len(source))
        built.loops.foreach_set("vertex_index", verts[source])
        built.polygons.add(len(face_sizes))
        built.polygons.foreach_set("loop_start", face_starts)
        built.update(calc_edges=True)
        built.polygons.foreach_set("use_smooth", np.ones(len(face_sizes), bool))
        layer = built.uv_layers.new(name=uv_name)
        layer.uv.foreach_set("vector", uv[source].ravel())
        built.normals_split_custom_set(normals[source])
        tangents = _tangents(built, uv_name)
    finally:
        bpy.data.meshes.remove(built)
    # Where each loop triangle's corners went in the built mesh.
    where = np.full(len(temp.loops), -1, np.int64)
    where[kept_loops] = np.arange(len(kept_loops))
    corner = where[tri_loops]
    corner[split] = len(kept_loops) + np.arange(3 * len(split)).reshape(-1, 3)
    return tangents[corner]


def _to_world(obj, normals: np.ndarray, tangents: np.ndarray) -> CornerFrames:
    matrix = np.array(obj.matrix_world, np.float64)[:3, :3]
    det = np.linalg.det(matrix)
    if abs(det) < 1e-12:
        raise InputError(f"object '{obj.name}' has a zero scale")
    n = normals.astype(np.float64) @ np.linalg.inv(matrix)  # inverse transpose, row vectors
    t = tangents[..., :3].astype(np.float64) @ matrix.T
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    t -= n * np.sum(n * t, -1, keepdims=True)  # orthogonal to the normal we report
    length = np.linalg.norm(t, axis=-1, keepdims=True)
    # Degenerate UVs leave no tangent: any direction across the normal will do.
    helper = np.where(np.abs(n[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    fallback = np.cross(n, helper)
    fallback /= np.linalg.norm(fallback, axis=-1, keepdims=True)
    t = np.where(length > 1e-8, t / np.maximum(length, 1e-12), fallback)
    # A mirroring transform flips handedness (Blender's shaders flip the sign too).
    sign = np.where(tangents[..., 3:4] * np.sign(det) < 0, -1.0, 1.0)
    return CornerFrames(n.astype(np.float32), np.concatenate([t, sign], -1).astype(np.float32))


# Lights -------------------------------------------------------------------------------
def _render_visible_collections(view_layer) -> set:
    """Names of the collections a render of `view_layer` includes: neither
    excluded from the view layer nor disabled in renders, nor inside one that is."""
    seen = set()

    def walk(layer_collection):
        if layer_collection.exclude or layer_collection.collection.hide_render:
            return
        seen.add(layer_collection.collection.name)
        for child in layer_collection.children:
            walk(child)

    walk(view_layer.layer_collection)
    return seen


def visible_lights(scene, view_layer=None) -> list:
    view_layer = view_layer or (bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0])
    collections = _render_visible_collections(view_layer)
    lights = [obj for obj in scene.objects
              if obj.type == "LIGHT" and not obj.hide_render
              and any(c.name in collections for c in obj.users_collection)]
    return sorted(lights, key=lambda o: o.name)


def read_light(obj) -> Light:
    light = obj.data
    matrix = np.array(obj.matrix_world, np.float64)
    direction = -matrix[:3, 2]
    norm = np.linalg.norm(direction)
    if norm < 1e-12:
        raise InputError(f"light '{obj.name}' has a zero scale")
    direction /= norm
    kind = light.type
    power = float(light.energy) * 2.0 ** float(getattr(light, "exposure", 0.0))
    color = tuple(float(c) for c in light.color)
    common = dict(kind=kind, color=color, power=power, position=tuple(matrix[:3, 3]),
                  direction=tuple(direction), cast_shadow=bool(light.use_shadow), name=obj.name)
    if kind == "SUN":
        return Light(radius=float(light.angle), **common)
    if kind == "POINT":
        return Light(radius=float(light.shadow_soft_size), **common)
    if kind == "SPOT":
        sx, sy = np.linalg.norm(matrix[:3, 0]), np.linalg.norm(matrix[:3, 1])
        if abs(sx - sy) > 1e-6 * max(sx, sy):
            raise InputError(f"spot light '{obj.name}' has different X and Y scales, which make its cone "
                             "elliptic; give it the same X and Y scale")
        return Light(radius=float(light.shadow_soft_size), spot_size=float(light.spot_size),
                     spot_blend=float(light.spot_blend), **common)
    if kind == "AREA":
        if not getattr(light, "normalize", True):
            raise InputError(f"light '{obj.name}': its Normalize option is off; tick it "
                             "(Light Properties) so its power does not depend on its size")
        sx, sy = np.linalg.norm(matrix[:3, 0]), np.linalg.norm(matrix[:3, 1])
        size_y = light.size if light.shape in ("SQUARE", "DISK") else light.size_y
        area = (float(light.size * sx), float(size_y * sy))
        axis_x = tuple(matrix[:3, 0] / max(sx, 1e-12))  # the `size` side, for lit_shading's rectangles
        return Light(radius=0.5 * max(area), area_size=area, area_shape=light.shape, axis_x=axis_x, **common)
    raise InputError(f"light '{obj.name}' is of type {kind}; use a sun, point, spot or area light")


# The world ------------------------------------------------------------------------------
def _read_world(world, target: str) -> tuple:
    """(ambient RGB, environment SH (9, 3) or None) from the World Output
    rendered for `target` (`output_target`)."""
    if world is None:
        return (0.0, 0.0, 0.0), None
    if not uses_nodes(world):
        return tuple(float(c) for c in world.color), None
    output = active_output(world.node_tree, "OUTPUT_WORLD", target)
    if output is None:
        return (0.0, 0.0, 0.0), None
    if "Volume" in output.inputs and output.inputs["Volume"].is_linked:
        raise InputError(f"world '{world.name}': its World Output has a Volume input; "
                         "the lit model does not reproduce it: disconnect it")
    source = linked_source(output.inputs["Surface"])
    if source is None:
        return (0.0, 0.0, 0.0), None
    node = source[0]
    if node.type != "BACKGROUND":
        raise InputError(f"world '{world.name}': its surface is a '{node.bl_label}' node; the lit model "
                         "supports a Background node (a colour, or an Environment Texture) "
                         "connected directly to the World Output")
    if node.inputs["Strength"].is_linked:
        raise InputError(f"world '{world.name}': the Background's Strength is connected; "
                         "use a constant strength")
    strength = float(node.inputs["Strength"].default_value)
    color = linked_source(node.inputs["Color"])
    if color is None:
        return tuple(float(c) * strength for c in node.inputs["Color"].default_value[:3]), None
    env = color[0]
    if env.type != "TEX_ENVIRONMENT":
        raise InputError(f"world '{world.name}': the Background colour comes from a '{env.bl_label}' "
                         "node; use a constant colour or an Environment Texture connected directly")
    if env.image is None:
        raise InputError(f"world '{world.name}': the Environment Texture '{env.name}' has no image")
    if env.projection != "EQUIRECTANGULAR":
        projection = env.projection.replace("_", " ").title()
        raise InputError(f"world '{world.name}': the Environment Texture uses {projection} "
                         "projection; set it to Equirectangular")
    if env.inputs["Vector"].is_linked:
        raise InputError(f"world '{world.name}': the Environment Texture's Vector is connected "
                         "(Mapping, Texture Coordinate, ...); disconnect it")
    pixels = read_image_pixels(env.image, "environment image")
    radiance = convert_encoding(np.maximum(pixels[..., :3], 0), image_encoding(env.image), "linear")
    if color[1].name == "Alpha":
        radiance = np.repeat(pixels[..., 3:4], 3, -1)
    return (0.0, 0.0, 0.0), equirect_to_sh9(radiance * strength)


def read_lighting(scene, view_layer=None) -> Lighting:
    """The scene's visible lights and its world. Changes nothing."""
    lights = tuple(read_light(obj) for obj in visible_lights(scene, view_layer))
    ambient, sh = _read_world(scene.world, output_target(scene))
    lighting = Lighting(lights=lights, ambient=ambient, environment_sh=sh)
    env_dark = sh is None or float(np.abs(sh).max()) <= 0
    if not any(l.power > 0 and max(l.color) > 0 for l in lights) and max(ambient) <= 0 and env_dark:
        raise InputError("nothing to see: the scene has no visible light with power and its world is "
                         "black; add a light or give the world a colour (World Properties > Surface)")
    return lighting


def renders_shadows_of(obj, scene) -> bool:
    """Whether the render draws `obj`'s shadows: its Shadow ray visibility is
    on and, with EEVEE, the scene's shadows too."""
    if scene.render.engine.startswith("BLENDER_EEVEE") and not getattr(scene.eevee, "use_shadows", True):
        return False
    return bool(getattr(obj, "visible_shadow", True))


def without_unrendered_shadows(lighting: Lighting, obj, scene) -> Lighting:
    """`lighting` with no light casting a shadow where the render draws none of
    `obj`'s (renders_shadows_of), so the fit's R draws none either."""
    if renders_shadows_of(obj, scene):
        return lighting
    return dataclasses.replace(lighting, lights=tuple(dataclasses.replace(l, cast_shadow=False)
                                                      for l in lighting.lights))


def check_view_transform(scene) -> None:
    """The lit model predicts scene-linear light shown through Standard."""
    view = scene.view_settings
    where = "Render Properties > Color Management"
    if view.view_transform not in ACCEPTED_VIEW_TRANSFORMS:
        raise InputError(f"the scene's View Transform is {view.view_transform}, which tone-maps the "
                         f"render; set View Transform to Standard in {where}")
    if view.look not in ("None", "", "Standard - None"):
        raise InputError(f"the scene's Look is '{view.look}'; set Look to None in {where}")
    if abs(view.exposure) > 1e-6 or abs(view.gamma - 1.0) > 1e-6:
        raise InputError(f"the scene's Exposure is {view.exposure:g} and Gamma {view.gamma:g}; "
                         f"set Exposure to 0 and Gamma to 1 in {where}")
    if view.use_curve_mapping:
        raise InputError(f"the scene uses Curves in its colour management; untick Curves in {where}")


# Writing fitted constants back ----------------------------------------------------
FITTED_CONSTANTS = {"roughness": "Roughness", "metallic": "Metallic"}  # LitMaterial field -> Principled input


def fitted_inputs(obj, channels, scene=None) -> tuple:
    """({channel: Principled input socket} of the fitted constants,
    {channel: (image, "color" or "alpha")} of the fitted images) for
    `channels` ("roughness", "metallic"); call after read_lit_material, which
    validated the images. An image is written back where it is read: its
    Color output as grey, its Alpha output as alpha."""
    mat = object_material(obj)
    bsdf = principled_node(mat, scene)
    sockets, images = {}, {}
    for channel in channels:
        socket = bsdf.inputs[FITTED_CONSTANTS[channel]]
        if socket.is_linked:
            node, out, _ = _image_node(mat, socket, FITTED_CONSTANTS[channel])
            images[channel] = (node.image, "alpha" if out.name == "Alpha" else "color")
            continue
        sockets[channel] = socket
    # Roughness and metallic share one parameter map: beside an image-fed
    # other channel, a fitted constant would be fitted per texel, and one
    # value cannot be written back for it.
    for channel in sockets:
        other = "metallic" if channel == "roughness" else "roughness"
        if bsdf.inputs[FITTED_CONSTANTS[other]].is_linked:
            raise InputError(f"material '{mat.name}': {other} comes from an image, so a constant {channel} "
                             f"cannot be fitted beside it yet (it would be fitted per texel); untick {channel.title()}")
    return sockets, images



def normal_map_image(obj, scene=None):
    """The image feeding the Normal Map node on the Principled Normal, to fit
    and write back (call after read_lit_material, which validated the path);
    refuses a material without one."""
    mat = object_material(obj)
    source = linked_source(principled_node(mat, scene).inputs["Normal"])
    if source is None or source[0].type != "NORMAL_MAP":
        raise InputError(f"material '{mat.name}' has no normal map to fit: connect an Image Texture "
                         "(Non-Color) through a Normal Map node (Tangent Space) to the Principled BSDF's "
                         "Normal, or untick Normal Map")
    tex, _, _ = _image_node(mat, source[0].inputs["Color"], "normal map")
    if tex.image.channels not in (3, 4):
        raise InputError(f"material '{mat.name}': the normal map image '{tex.image.name}' has "
                         f"{tex.image.channels} channel(s); a fitted normal map needs RGB or RGBA")
    return tex.image
