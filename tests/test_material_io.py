"""The lit model's reader (issue 9): material, lights, world, view transform and
corner frames, on the real bpy. Every refusal names the problem and changes
nothing."""
from __future__ import annotations


import bpy
import numpy as np
import pytest
from mathutils import Euler, Vector

from sge_optimizer.addon import material_io, scene_inputs, target_setup
from sge_optimizer.addon.errors import InputError
from sge_optimizer.engine.environment import equirect_to_sh9, sh9_basis, sh9_eval


# Scene builders ---------------------------------------------------------------------
def plane(name="plane", size=2.0):
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=2, y_subdivisions=1, size=size)
    obj = bpy.context.object
    assert len(obj.data.polygons) >= 2 and obj.data.uv_layers.keys() == ["UVMap"]
    obj.name = name
    return obj


def material(obj=None, name="mat"):
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    if obj is not None:
        obj.data.materials.append(mat)
    return mat, mat.node_tree.nodes["Principled BSDF"]


def image_node(mat, pixels, linear=False, name="img"):
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = target_setup.new_image(name, pixels, linear=linear)
    return node


def pixels_of(image):
    px = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(image.size[1], image.size[0], -1)


def random_rgba(seed, size=8):
    px = np.random.default_rng(seed).uniform(0, 1, (size, size, 4)).astype(np.float32)
    px[..., 3] = 1
    return px


def link(mat, out, inp):
    mat.node_tree.links.new(out, inp)


def snapshot():
    state = {kind: sorted(x.name for x in getattr(bpy.data, kind))
             for kind in ("objects", "meshes", "materials", "images", "lights", "worlds", "node_groups")}
    for obj in bpy.data.objects:
        if obj.type == "MESH":
            state[obj.name] = (scene_inputs.read_local_positions(obj).tobytes(),
                               tuple(l.name for l in obj.data.uv_layers), len(obj.data.loops))
    for mat in bpy.data.materials:
        if mat.node_tree is not None:
            state["mat " + mat.name] = sorted((l.from_node.name, l.to_node.name) for l in mat.node_tree.links)
    return state


def refused(call, *words):
    before = snapshot()
    with pytest.raises(InputError) as err:
        call()
    message = str(err.value)
    for word in words:
        assert word.lower() in message.lower(), message
    assert snapshot() == before
    return message


# Material: supported layouts ---------------------------------------------------------
def test_constants(empty_scene):
    obj = plane()
    mat, bsdf = material(obj)
    bsdf.inputs["Base Color"].default_value = (0.2, 0.4, 0.6, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.3
    bsdf.inputs["Metallic"].default_value = 0.7
    bsdf.inputs["Specular IOR Level"].default_value = 0.4
    bsdf.inputs["IOR"].default_value = 1.45
    lit = material_io.read_lit_material(obj)
    np.testing.assert_allclose(lit.base_color.constant, (0.2, 0.4, 0.6), atol=1e-6)
    assert not lit.base_color.is_image and lit.base_color.image_name is None
    assert lit.roughness.constant == pytest.approx(0.3) and not lit.roughness.is_image
    assert lit.metallic.constant == pytest.approx(0.7) and not lit.metallic.is_image
    assert lit.specular_ior_level == pytest.approx(0.4) and lit.ior == pytest.approx(1.45)
    assert lit.normal is None and lit.uv_map is None and lit.name == "mat"
    assert lit.distribution == bsdf.distribution
    assert lit.image_channels() == {}


def test_every_channel_from_images(empty_scene):
    obj = plane()
    mat, bsdf = material(obj)
    base = image_node(mat, random_rgba(0), name="base")
    rough = image_node(mat, random_rgba(1), linear=True, name="rough")
    metal = image_node(mat, random_rgba(2), linear=True, name="metal")
    normal_img = image_node(mat, random_rgba(3), linear=True, name="normal")
    uv = mat.node_tree.nodes.new("ShaderNodeUVMap")
    uv.uv_map = "UVMap"
    normal_map = mat.node_tree.nodes.new("ShaderNodeNormalMap")
    normal_map.inputs["Strength"].default_value = 0.7
    link(mat, uv.outputs["UV"], base.inputs["Vector"])
    link(mat, base.outputs["Color"], bsdf.inputs["Base Color"])
    link(mat, rough.outputs["Color"], bsdf.inputs["Roughness"])
    link(mat, metal.outputs["Alpha"], bsdf.inputs["Metallic"])
    link(mat, normal_img.outputs["Color"], normal_map.inputs["Color"])
    link(mat, normal_map.outputs["Normal"], bsdf.inputs["Normal"])

    lit = material_io.read_lit_material(obj)
    assert lit.base_color.srgb and lit.base_color.image_name == "base"
    np.testing.assert_array_equal(lit.base_color.image, pixels_of(base.image))
    assert lit.roughness.image.shape == (8, 8) and lit.roughness.image_name == "rough"
    want = pixels_of(rough.image)[..., :3] @ np.array([0.2126, 0.7152, 0.0722])
    np.testing.assert_allclose(lit.roughness.image, want, atol=1e-6)
    np.testing.assert_array_equal(lit.metallic.image, pixels_of(metal.image)[..., 3])
    assert lit.normal.image.shape == (8, 8, 3) and lit.normal.image_name == "normal"
    np.testing.assert_array_equal(lit.normal.image, pixels_of(normal_img.image)[..., :3])
    assert lit.normal.strength == pytest.approx(0.7)
    assert lit.uv_map == "UVMap"  # the UV Map node and the default render UV map are the same
    assert set(lit.image_channels()) == {"base_color", "roughness", "metallic", "normal"}


def test_linear_base_color_and_reroute(empty_scene):
    obj = plane()
    mat, bsdf = material(obj)
    base = image_node(mat, random_rgba(4), linear=True, name="base")
    reroute = mat.node_tree.nodes.new("NodeReroute")
    link(mat, base.outputs["Color"], reroute.inputs[0])
    link(mat, reroute.outputs[0], bsdf.inputs["Base Color"])
    lit = material_io.read_lit_material(obj)
    assert not lit.base_color.srgb and lit.base_color.image.shape == (8, 8, 4)


def test_second_uv_map_for_all_images(empty_scene):
    obj = plane()
    obj.data.uv_layers.new(name="Other")
    mat, bsdf = material(obj)
    base = image_node(mat, random_rgba(0), name="base")
    uv = mat.node_tree.nodes.new("ShaderNodeUVMap")
    uv.uv_map = "Other"
    link(mat, uv.outputs["UV"], base.inputs["Vector"])
    link(mat, base.outputs["Color"], bsdf.inputs["Base Color"])
    assert material_io.read_lit_material(obj).uv_map == "Other"


def test_same_material_in_two_slots_is_fine(empty_scene):
    obj = plane()
    mat, _ = material(obj)
    obj.data.materials.append(mat)
    obj.data.polygons[0].material_index = 1
    assert material_io.read_lit_material(obj).name == "mat"


# Material: refusals --------------------------------------------------------------------
def _between(node_type, channel):
    """A material with `node_type` between an image and `channel`."""
    def build(obj):
        mat, bsdf = material(obj)
        img = image_node(mat, random_rgba(0), linear=channel != "Base Color")
        mid = mat.node_tree.nodes.new(node_type)
        if node_type == "ShaderNodeMix":
            mid.data_type = "RGBA"
            inp, out = mid.inputs[6], mid.outputs[2]  # A and Result of the colour mix
        else:
            inp, out = mid.inputs[0], mid.outputs[0]
        link(mat, img.outputs["Color"], inp)
        link(mat, out, bsdf.inputs[channel])
    return build


def _diffuse(obj):
    mat, bsdf = material(obj)
    diffuse = mat.node_tree.nodes.new("ShaderNodeBsdfDiffuse")
    link(mat, diffuse.outputs[0], mat.node_tree.nodes["Material Output"].inputs["Surface"])


def _normal_map(space="TANGENT", linear=True, uv_node="", map_uv=""):
    def build(obj):
        obj.data.uv_layers.new(name="Other")
        mat, bsdf = material(obj)
        img = image_node(mat, random_rgba(0), linear=linear)
        nm = mat.node_tree.nodes.new("ShaderNodeNormalMap")
        nm.space, nm.uv_map = space, map_uv
        link(mat, img.outputs["Color"], nm.inputs["Color"])
        link(mat, nm.outputs["Normal"], bsdf.inputs["Normal"])
        if uv_node:
            uv = mat.node_tree.nodes.new("ShaderNodeUVMap")
            uv.uv_map = uv_node
            link(mat, uv.outputs["UV"], img.inputs["Vector"])
    return build


def _bump(obj):
    mat, bsdf = material(obj)
    img = image_node(mat, random_rgba(0), linear=True)
    bump = mat.node_tree.nodes.new("ShaderNodeBump")
    link(mat, img.outputs["Color"], bump.inputs["Height"])
    link(mat, bump.outputs["Normal"], bsdf.inputs["Normal"])


def _srgb_roughness(obj):
    mat, bsdf = material(obj)
    img = image_node(mat, random_rgba(0))
    link(mat, img.outputs["Color"], bsdf.inputs["Roughness"])


def _two_uv_maps(obj):
    obj.data.uv_layers.new(name="Other")
    mat, bsdf = material(obj)
    base = image_node(mat, random_rgba(0), name="base")
    rough = image_node(mat, random_rgba(1), linear=True, name="rough")
    uv = mat.node_tree.nodes.new("ShaderNodeUVMap")
    uv.uv_map = "Other"
    link(mat, uv.outputs["UV"], rough.inputs["Vector"])
    link(mat, base.outputs["Color"], bsdf.inputs["Base Color"])
    link(mat, rough.outputs["Color"], bsdf.inputs["Roughness"])


def _mapping(obj):
    mat, bsdf = material(obj)
    base = image_node(mat, random_rgba(0))
    mapping = mat.node_tree.nodes.new("ShaderNodeMapping")
    link(mat, mapping.outputs[0], base.inputs["Vector"])
    link(mat, base.outputs["Color"], bsdf.inputs["Base Color"])


def _same_image_twice(obj):
    mat, bsdf = material(obj)
    img = image_node(mat, random_rgba(0), linear=True)
    link(mat, img.outputs["Color"], bsdf.inputs["Roughness"])
    link(mat, img.outputs["Alpha"], bsdf.inputs["Metallic"])


def _two_materials(obj):
    material(obj, "first")
    material(obj, "second")
    obj.data.polygons[0].material_index = 1


def _empty_slot(obj):
    material(obj)
    obj.data.materials.append(None)
    obj.data.polygons[0].material_index = 1


def _value(name, value):
    def build(obj):
        _, bsdf = material(obj)
        bsdf.inputs[name].default_value = value
    return build


def _alpha_linked(obj):
    mat, bsdf = material(obj)
    img = image_node(mat, random_rgba(0))
    link(mat, img.outputs["Alpha"], bsdf.inputs["Alpha"])


REFUSALS = {
    "mix": (_between("ShaderNodeMix", "Base Color"), ["Mix", "Image Texture node directly"]),
    "color ramp": (_between("ShaderNodeValToRGB", "Roughness"), ["Color Ramp"]),
    "separate": (_between("ShaderNodeSeparateColor", "Metallic"), ["Separate Color"]),
    "math": (_between("ShaderNodeMath", "Roughness"), ["Math"]),
    "bump": (_bump, ["Bump", "Normal Map node"]),
    "diffuse shader": (_diffuse, ["Diffuse BSDF", "Principled BSDF"]),
    "object space": (_normal_map(space="OBJECT"), ["Object space", "Tangent"]),
    "world space": (_normal_map(space="WORLD"), ["World space", "Tangent"]),
    "srgb normal map": (_normal_map(linear=False), ["normal map", "Non-Color"]),
    "srgb roughness": (_srgb_roughness, ["Roughness", "Non-Color"]),
    "two uv maps": (_two_uv_maps, ["different UV maps", "'Other'"]),
    "normal map uv": (_normal_map(map_uv="Other"), ["Normal Map node uses UV map 'Other'"]),
    "mapping": (_mapping, ["Mapping", "UV Map node"]),
    "same image twice": (_same_image_twice, ["feeds both Roughness and Metallic"]),
    "two materials": (_two_materials, ["several materials", "'first'", "'second'"]),
    "empty slot": (_empty_slot, ["empty material slot"]),
    "no material": (lambda obj: None, ["no material"]),
    "emission": (_value("Emission Strength", 1.0), ["Emission", "set it to 0"]),
    "transmission": (_value("Transmission Weight", 0.5), ["Transmission Weight"]),
    "coat": (_value("Coat Weight", 0.2), ["Coat Weight"]),
    "sheen": (_value("Sheen Weight", 0.2), ["Sheen Weight"]),
    "subsurface": (_value("Subsurface Weight", 0.2), ["Subsurface Weight"]),
    "alpha value": (_value("Alpha", 0.5), ["Alpha"]),
    "alpha linked": (_alpha_linked, ["Alpha", "connected"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_material_refusals(empty_scene, case):
    build, words = REFUSALS[case]
    obj = plane()
    build(obj)
    refused(lambda: material_io.read_lit_material(obj), *words)


# Lights ---------------------------------------------------------------------------------
def add_light(kind, name=None, location=(0, 0, 0), rotation=(0, 0, 0), scale=(1, 1, 1)):
    data = bpy.data.lights.new(name or kind.lower(), kind)
    obj = bpy.data.objects.new(name or kind.lower(), data)
    bpy.context.scene.collection.objects.link(obj)
    obj.location, obj.rotation_euler, obj.scale = location, rotation, scale
    bpy.context.view_layer.update()  # matrix_world
    return obj


def down(rotation):
    return np.array(Euler(rotation).to_matrix() @ Vector((0, 0, -1)))


def test_lights_of_each_kind(empty_scene):
    rot = (0.3, -0.5, 1.2)
    sun = add_light("SUN", rotation=rot)
    sun.data.energy, sun.data.color, sun.data.angle = 3.0, (1.0, 0.9, 0.8), 0.1
    point = add_light("POINT", location=(1, 2, 3))
    point.data.energy, point.data.shadow_soft_size, point.data.use_shadow = 100.0, 0.25, False
    spot = add_light("SPOT", location=(-1, 0, 2), rotation=(0.5, 0, 0))
    spot.data.energy, spot.data.spot_size, spot.data.spot_blend = 50.0, 0.8, 0.3
    area = add_light("AREA", location=(0, -2, 1), rotation=rot, scale=(2, 3, 1))
    area.data.shape, area.data.size, area.data.size_y, area.data.energy = "RECTANGLE", 0.5, 0.25, 20.0
    hidden = add_light("POINT", name="hidden")
    hidden.hide_render = True
    bpy.context.view_layer.update()

    lighting = material_io.read_lighting(bpy.context.scene)
    by_kind = {l.kind: l for l in lighting.lights}
    assert len(lighting.lights) == 4  # the hidden one is left out
    s = by_kind["SUN"]
    np.testing.assert_allclose(s.direction, down(rot), atol=1e-6)
    assert s.power == pytest.approx(3.0) and s.radius == pytest.approx(0.1)
    np.testing.assert_allclose(s.color, (1.0, 0.9, 0.8), atol=1e-6)
    p = by_kind["POINT"]
    np.testing.assert_allclose(p.position, (1, 2, 3), atol=1e-6)
    assert p.power == pytest.approx(100.0) and p.radius == pytest.approx(0.25) and not p.cast_shadow
    sp = by_kind["SPOT"]
    np.testing.assert_allclose(sp.direction, down((0.5, 0, 0)), atol=1e-6)
    assert sp.spot_size == pytest.approx(0.8) and sp.spot_blend == pytest.approx(0.3) and sp.cast_shadow
    a = by_kind["AREA"]
    np.testing.assert_allclose(a.area_size, (1.0, 0.75), atol=1e-6)
    assert a.area_shape == "RECTANGLE" and a.power == pytest.approx(20.0)
    np.testing.assert_allclose(a.direction, down(rot), atol=1e-6)
    np.testing.assert_allclose(a.position, (0, -2, 1), atol=1e-6)
    x_axis = np.array(Euler(rot).to_matrix()) @ np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(a.axis_x, x_axis, atol=1e-6)  # the `size` side, unit length


def test_lights_in_hidden_or_excluded_collections_are_left_out(empty_scene):
    for name in ("off", "excluded"):
        coll = bpy.data.collections.new(name)
        bpy.context.scene.collection.children.link(coll)
        inner = bpy.data.collections.new(name + " inner")
        coll.children.link(inner)
        inner.objects.link(bpy.data.objects.new(name, bpy.data.lights.new(name, "SUN")))
    bpy.data.collections["off"].hide_render = True
    bpy.context.view_layer.layer_collection.children["excluded"].exclude = True
    add_light("POINT")
    lighting = material_io.read_lighting(bpy.context.scene)
    assert [l.kind for l in lighting.lights] == ["POINT"]


def test_exposure_scales_power(empty_scene):
    light = add_light("POINT")
    light.data.energy, light.data.exposure = 10.0, 1.0
    assert material_io.read_lighting(bpy.context.scene).lights[0].power == pytest.approx(20.0)


# The world -----------------------------------------------------------------------------
def world(scene):
    w = bpy.data.worlds.new("world")
    if bpy.app.version < (5, 0, 0):
        w.use_nodes = True
    scene.world = w
    return w, w.node_tree.nodes["Background"]


def test_world_background_colour_and_strength(empty_scene):
    _, bg = world(empty_scene)
    bg.inputs["Color"].default_value = (0.2, 0.3, 0.4, 1.0)
    bg.inputs["Strength"].default_value = 2.0
    lighting = material_io.read_lighting(empty_scene)
    np.testing.assert_allclose(lighting.ambient, (0.4, 0.6, 0.8), atol=1e-6)
    assert lighting.lights == () and lighting.environment_sh is None


@pytest.mark.skipif(bpy.app.version >= (5, 0, 0), reason="worlds always use nodes since 5.0")
def test_world_colour_without_nodes(empty_scene):
    w = bpy.data.worlds.new("world")
    w.use_nodes = False
    w.color = (0.1, 0.2, 0.3)
    empty_scene.world = w
    np.testing.assert_allclose(material_io.read_lighting(empty_scene).ambient, (0.1, 0.2, 0.3), atol=1e-6)


def environment(scene, pixels, linear=True, strength=1.0):
    w, bg = world(scene)
    env = w.node_tree.nodes.new("ShaderNodeTexEnvironment")
    env.image = target_setup.new_image("env", pixels, linear=linear)
    w.node_tree.links.new(env.outputs["Color"], bg.inputs["Color"])
    bg.inputs["Strength"].default_value = strength
    return env


def cycles_direction(u, v):
    """Cycles' equirectangular_to_direction (range -2pi, pi, -pi, pi)."""
    phi, theta = -2 * np.pi * u + np.pi, -np.pi * v + np.pi
    return np.stack(np.broadcast_arrays(np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                                        np.cos(theta)), -1)


def test_constant_environment_sh(empty_scene):
    px = np.ones((64, 128, 4), np.float32)
    px[..., :3] = (0.25, 0.5, 0.75)
    environment(empty_scene, px, strength=2.0)
    sh = material_io.read_lighting(empty_scene).environment_sh
    assert sh.shape == (9, 3)
    # The integral of c * Y00 over the sphere: c * 0.282095 * 4 pi.
    np.testing.assert_allclose(sh[0], np.array([0.5, 1.0, 1.5]) * 0.282095 * 4 * np.pi, rtol=2e-3)
    np.testing.assert_allclose(sh[1:], 0, atol=3e-3)  # midpoint quadrature error of the Y20 term


def test_environment_sh_reconstructs_a_smooth_sky(empty_scene):
    h, w = 64, 128
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    d = cycles_direction(u[None, :], v[:, None])  # rows bottom-up, like image.pixels
    radiance = 0.5 + 0.3 * d[..., 0] - 0.2 * d[..., 1] + 0.25 * d[..., 2] + 0.1 * d[..., 0] * d[..., 2]
    px = np.ones((h, w, 4), np.float32)
    px[..., :3] = radiance[..., None]
    environment(empty_scene, px)
    sh = material_io.read_lighting(empty_scene).environment_sh
    probe = np.random.default_rng(0).normal(size=(50, 3))
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    want = 0.5 + 0.3 * probe[:, 0] - 0.2 * probe[:, 1] + 0.25 * probe[:, 2] + 0.1 * probe[:, 0] * probe[:, 2]
    np.testing.assert_allclose(sh9_eval(sh, probe)[:, 0], want, atol=0.01)  # 16-bit image, quadrature


def test_sh_projection_matches_direct_sum():
    rng = np.random.default_rng(1)
    radiance = rng.uniform(0, 1, (8, 16, 3)).astype(np.float32)
    u = (np.arange(16) + 0.5) / 16
    v = (np.arange(8) + 0.5) / 8
    d = cycles_direction(u[None, :], v[:, None])
    weight = np.sin(np.pi * (1 - v))[:, None] * (2 * np.pi / 16) * (np.pi / 8)
    want = np.einsum("hwk,hwc->kc", sh9_basis(d) * weight[..., None], radiance)
    np.testing.assert_allclose(equirect_to_sh9(radiance), want, rtol=1e-4, atol=1e-5)


def _world_refusal(kind):
    def build(scene):
        if kind == "mirror ball":
            environment(scene, np.ones((8, 8, 4), np.float32)).projection = "MIRROR_BALL"
            return
        w, bg = world(scene)
        tree = w.node_tree
        if kind == "sky":
            sky = tree.nodes.new("ShaderNodeTexSky")
            tree.links.new(sky.outputs[0], bg.inputs["Color"])
        elif kind == "mix shader":
            mix = tree.nodes.new("ShaderNodeMixShader")
            tree.links.new(mix.outputs[0], tree.nodes["World Output"].inputs["Surface"])
        elif kind == "dark":
            bg.inputs["Color"].default_value = (0, 0, 0, 1)
    return build


@pytest.mark.parametrize("kind,words", [
    ("sky", ["Sky Texture", "Environment Texture"]),
    ("mix shader", ["Mix Shader", "Background node"]),
    ("mirror ball", ["Mirror Ball", "Equirectangular"]),
    ("dark", ["nothing to see", "add a light"]),
])
def test_world_refusals(empty_scene, kind, words):
    _world_refusal(kind)(empty_scene)
    refused(lambda: material_io.read_lighting(empty_scene), *words)


def test_no_world_and_no_lights_is_nothing_to_see(empty_scene):
    empty_scene.world = None
    refused(lambda: material_io.read_lighting(empty_scene), "nothing to see")


# View transform -----------------------------------------------------------------------
@pytest.mark.parametrize("transform", ["AgX", "Filmic", "False Color", "Khronos PBR Neutral"])
def test_tone_mapping_view_transforms_refused(empty_scene, transform):
    empty_scene.view_settings.view_transform = transform
    message = refused(lambda: material_io.check_view_transform(empty_scene), transform, "Standard",
                      "Render Properties > Color Management")
    assert "View Transform" in message


def test_standard_view_transform_accepted(empty_scene):
    empty_scene.view_settings.view_transform = "Standard"
    material_io.check_view_transform(empty_scene)
    empty_scene.view_settings.exposure = 1.0
    refused(lambda: material_io.check_view_transform(empty_scene), "Exposure")


# Corner frames -------------------------------------------------------------------------
def check_frames(frames):
    n, t = frames.normals, frames.tangents[..., :3]
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=-1), 1, atol=1e-5)
    np.testing.assert_allclose(np.sum(n * t, -1), 0, atol=1e-5)
    assert set(np.unique(frames.tangents[..., 3])) <= {-1.0, 1.0}


@pytest.mark.parametrize("mirrored", [False, True])
def test_plane_tangents_follow_u_in_world_space(empty_scene, mirrored):
    obj = plane()
    obj.rotation_euler = (0.4, 0.2, 1.0)
    obj.scale = (-1.5 if mirrored else 1.5, 0.5, 2.0)
    bpy.context.view_layer.update()
    before = snapshot()
    frames = material_io.corner_frames(obj, "UVMap")
    assert snapshot() == before
    check_frames(frames)
    m = np.array(obj.matrix_world)[:3, :3]
    u_axis = m @ (1, 0, 0)
    v_axis = m @ (0, 1, 0)
    normal = np.linalg.inv(m).T @ (0, 0, 1)
    for axis in (u_axis, v_axis, normal):
        axis /= np.linalg.norm(axis)
    corners = 3 * len(obj.data.loop_triangles)
    assert frames.normals.shape == (corners // 3, 3, 3) and frames.tangents.shape == (corners // 3, 3, 4)
    np.testing.assert_allclose(frames.normals.reshape(-1, 3), np.broadcast_to(normal, (corners, 3)), atol=1e-5)
    np.testing.assert_allclose(frames.tangents[..., :3].reshape(-1, 3), np.broadcast_to(u_axis, (corners, 3)),
                               atol=1e-5)
    # The bitangent the Normal Map node builds points along V.
    np.testing.assert_allclose(frames.bitangents().reshape(-1, 3), np.broadcast_to(v_axis, (corners, 3)),
                               atol=1e-5)
    assert np.all(frames.tangents[..., 3] == (-1.0 if mirrored else 1.0))


def face_normals(mesh_arrays):
    p = mesh_arrays.positions[mesh_arrays.triangles]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_corner_order_matches_read_mesh(empty_scene):
    bpy.ops.mesh.primitive_cube_add()  # flat shaded: corner normals are face normals
    obj = bpy.context.object
    obj.rotation_euler = (0.3, 0.6, 0.9)
    bpy.context.view_layer.update()
    arrays = scene_inputs.read_mesh(obj, "UVMap")
    frames = material_io.corner_frames(obj, "UVMap")
    check_frames(frames)
    assert frames.normals.shape == (len(arrays.triangles), 3, 3)
    np.testing.assert_allclose(frames.normals, np.repeat(face_normals(arrays)[:, None], 3, 1), atol=1e-5)
    np.testing.assert_allclose(frames.tangents[:, 0, :3], u_direction(arrays), atol=1e-4)


def u_direction(arrays):
    """(T, 3) unit direction in which U grows across each triangle."""
    p = arrays.positions[arrays.triangles]
    uv = arrays.corner_uvs
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    r = 1.0 / (d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1])
    du = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r[:, None]
    return du / np.linalg.norm(du, axis=1, keepdims=True)


def test_ngons_shape_keys_and_smooth_normals(empty_scene):
    bpy.ops.mesh.primitive_cylinder_add(vertices=8, end_fill_type="NGON")  # octagon caps
    obj = bpy.context.object
    assert max(len(p.vertices) for p in obj.data.polygons) == 8
    for poly in obj.data.polygons:
        poly.use_smooth = len(poly.vertices) == 4
    obj.shape_key_add(name="Basis")
    key = obj.shape_key_add(name="Tall")
    for point in key.data:
        point.co.z += 0.3 * point.co.x  # tilts the caps
    key.value = 1.0
    meshes = len(bpy.data.meshes)
    arrays = scene_inputs.read_mesh(obj, None)
    frames = material_io.corner_frames(obj, None)
    assert len(bpy.data.meshes) == meshes
    check_frames(frames)
    assert frames.normals.shape == (len(arrays.triangles), 3, 3)
    caps = np.array([len(obj.data.polygons[t.polygon_index].vertices) == 8 for t in obj.data.loop_triangles])
    # Flat caps: the face normal of the shape the keys show, and their
    # tangents along U; the sides are smooth, so their normals differ per corner.
    np.testing.assert_allclose(frames.normals[caps], np.repeat(face_normals(arrays)[caps][:, None], 3, 1),
                               atol=1e-5)
    assert np.abs(face_normals(arrays)[caps][:, 0]).min() > 0.2  # the shape key's tilt, not the Basis
    du = u_direction(arrays)
    du -= frames.normals[:, 0] * np.sum(frames.normals[:, 0] * du, -1, keepdims=True)
    du /= np.linalg.norm(du, axis=1, keepdims=True)
    np.testing.assert_allclose(frames.tangents[caps][:, :, :3], np.repeat(du[caps][:, None], 3, 1), atol=1e-4)
    assert not np.allclose(frames.normals[~caps][:, 0], frames.normals[~caps][:, 1], atol=1e-3)


def test_degenerate_uvs_still_give_a_frame(empty_scene):
    obj = plane()
    uv = obj.data.uv_layers["UVMap"].uv
    uv.foreach_set("vector", np.zeros(len(uv) * 2, np.float32))  # every corner at one UV point
    check_frames(material_io.corner_frames(obj, "UVMap"))


def test_elliptic_spot_refused(empty_scene):
    add_light("SPOT", scale=(1, 2, 1))
    refused(lambda: material_io.read_lighting(bpy.context.scene), "spot light 'spot'", "same X and Y scale")


def test_modifiers_are_left_out_like_read_mesh(empty_scene):
    obj = plane()
    obj.modifiers.new("Subdivision", "SUBSURF")
    bpy.context.view_layer.update()
    frames = material_io.corner_frames(obj, "UVMap")
    assert len(frames.normals) == len(scene_inputs.read_mesh(obj, "UVMap").triangles)
    assert len(obj.modifiers) == 1


def test_a_fitted_constant_beside_an_image_fed_channel_is_refused(empty_scene):
    """Roughness and metallic share one parameter map: a constant fitted beside
    an image would be fitted per texel, with no single value to write back."""
    obj = plane()
    mat, bsdf = material(obj)
    rough = image_node(mat, random_rgba(3), linear=True, name="rough")
    rough.image.colorspace_settings.name = "Non-Color"
    link(mat, rough.outputs["Color"], bsdf.inputs["Roughness"])
    refused(lambda: material_io.fitted_inputs(obj, ["metallic"]), "roughness comes from an image", "per texel")
    sockets, images = material_io.fitted_inputs(obj, ["roughness"])
    assert not sockets and images["roughness"] == (rough.image, "color")
    bsdf_links = [l for l in mat.node_tree.links if l.to_socket == bsdf.inputs["Roughness"]]
    mat.node_tree.links.remove(bsdf_links[0])
    assert set(material_io.fitted_inputs(obj, ["metallic", "roughness"])[0]) == {"metallic", "roughness"}


# The Material Output the scene's engine renders (issue 23) -------------------------
def _output_fed_by(mat, name, target):
    """A Material Output for `target` fed by a new Principled BSDF whose Base
    Color is a new image `name`."""
    nodes = mat.node_tree.nodes
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    link(mat, image_node(mat, random_rgba(len(nodes)), name=name).outputs["Color"], bsdf.inputs["Base Color"])
    output = nodes.new("ShaderNodeOutputMaterial")
    output.target = target
    link(mat, bsdf.outputs[0], output.inputs["Surface"])
    return output


def test_the_output_for_the_scenes_engine_is_followed(empty_scene):
    """Blender's rule: an output for the engine beats an All output, and among
    equals the active one (else the first) renders. Both readers follow it."""
    obj = plane()
    mat, bsdf = material(obj)
    link(mat, image_node(mat, random_rgba(0), name="all").outputs["Color"], bsdf.inputs["Base Color"])
    eevee = _output_fed_by(mat, "eevee", "EEVEE")
    _output_fed_by(mat, "cycles", "CYCLES")
    second_all = _output_fed_by(mat, "all 2", "ALL")
    mat.node_tree.nodes["Material Output"].is_active_output = True
    scene = empty_scene

    def shown():
        unlit = scene_inputs.find_base_color_image(obj, scene)[0].name
        lit = material_io.read_lit_material(obj, scene).base_color.image_name
        assert unlit == lit
        return unlit

    scene.render.engine = "CYCLES"
    assert shown() == "cycles"
    scene.render.engine = "BLENDER_WORKBENCH"  # not rendered from nodes: what Material Preview (EEVEE) shows
    assert shown() == "eevee"
    eevee.is_active_output = True
    scene.render.engine = "CYCLES"
    assert shown() == "cycles"  # the active output is for EEVEE only
    mat.node_tree.nodes.remove(eevee)
    scene.render.engine = "BLENDER_WORKBENCH"
    assert shown() == "all"  # the first of the All outputs: none is active now
    second_all.is_active_output = True
    assert shown() == "all 2"
