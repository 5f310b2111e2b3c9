"""Lit fits that move vertices (issue 24): every corner's normal and tangent
follow the drawn positions (engine/frames.py, gpu_kernels/corner_frames.glsl),
and G charges each triangle's ring of vertices as well as its own."""
from __future__ import annotations

import bpy
import numpy as np
import pytest
from helpers import read_renders

from sge_optimizer import gpu_kernels as K
from sge_optimizer.addon import material_io, scene_inputs
from sge_optimizer.engine import Engine, SceneArrays, Settings, View, synthetic
from sge_optimizer.engine import reference as ref
from sge_optimizer.engine.frames import ShadingFrames, corner_frames, frame_fans
from sge_optimizer.engine.lighting import Light, Lighting
from sge_optimizer.engine.materials import LitMaterial, ScalarChannel
from sge_optimizer.engine.scene import LitScene

RES = 64
SUN = Light("SUN", (1.0, 0.95, 0.9), 3.0, (0, 0, 0), (-0.4, 0.5, -0.77))


def angle_degrees(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def blender_frames(obj, loops=None):
    """Blender's mesh arrays and frames; with `loops` (the loop of each
    corner at the start), its frames at those loops: a moved quad may be
    split along its other diagonal, which reorders the corners."""
    mesh = scene_inputs.read_mesh(obj, None)
    frames = material_io.corner_frames(obj, None)
    if loops is not None:
        now = corner_loops(obj)
        where = np.empty(now.max() + 1, np.int64)
        where[now] = np.arange(len(now))
        frames.normals = frames.normals.reshape(-1, 3)[where[loops]].reshape(-1, 3, 3)
        frames.tangents = frames.tangents.reshape(-1, 4)[where[loops]].reshape(-1, 3, 4)
    return mesh, frames


def corner_loops(obj) -> np.ndarray:
    obj.data.calc_loop_triangles()
    loops = np.empty(len(obj.data.loop_triangles) * 3, np.int64)
    obj.data.loop_triangles.foreach_get("loops", loops)
    return loops


def shaded_object(kind: str):
    """A Blender mesh with UVs: a smooth torus, a flat cube, or a cylinder
    with flat caps and smooth sides (sharp edges split its normals)."""
    if kind == "torus":
        bpy.ops.mesh.primitive_torus_add(major_segments=24, minor_segments=12)
        bpy.ops.object.shade_smooth()
    elif kind == "cube":
        bpy.ops.mesh.primitive_cube_add()
        bpy.ops.object.shade_flat()
    else:
        bpy.ops.mesh.primitive_cylinder_add(vertices=16)
        obj = bpy.context.active_object
        for poly in obj.data.polygons:
            poly.use_smooth = len(poly.vertices) == 4
    obj = bpy.context.active_object
    obj.rotation_euler = (0.3, 0.2, 0.1)
    bpy.context.view_layer.update()
    return obj


@pytest.mark.parametrize("kind", ["torus", "cube", "cylinder"])
def test_frames_from_positions_follow_blenders_own(empty_scene, kind):
    """The fans read off Blender's frames at the start give Blender's
    frames back there, and, with the vertices moved, the frames Blender
    computes for the moved mesh: the rule is Blender's, not a copy of its
    numbers."""
    obj = shaded_object(kind)
    mesh, frames = blender_frames(obj)
    fans = frame_fans(mesh.positions, mesh.triangles, frames, mesh.corner_uvs)
    normals, tangents = corner_frames(mesh.positions, mesh.triangles, mesh.corner_uvs, fans)
    assert angle_degrees(normals, frames.normals).max() < 0.5
    assert angle_degrees(tangents[..., :3], frames.tangents[..., :3]).max() < 2.0
    np.testing.assert_array_equal(tangents[..., 3], frames.tangents[..., 3])

    # Move the vertices a little (the quads stay near planar: a quad's
    # normal is Blender's polygon normal, ours its triangles').
    loops = corner_loops(obj)
    rng = np.random.default_rng(1)
    local = scene_inputs.read_local_positions(obj)
    edges = np.array([e.vertices[:] for e in obj.data.edges])
    edge = np.linalg.norm(local[edges[:, 0]] - local[edges[:, 1]], axis=1).mean()
    moved = local + rng.normal(0.0, 0.08 * edge, local.shape)
    obj.data.vertices.foreach_set("co", moved.astype(np.float32).ravel())
    obj.data.update()
    moved_mesh, moved_frames = blender_frames(obj, loops)
    normals, tangents = corner_frames(moved_mesh.positions, mesh.triangles, mesh.corner_uvs, fans)
    moved_by = angle_degrees(frames.normals, moved_frames.normals)
    error = angle_degrees(normals, moved_frames.normals)
    assert moved_by.mean() > 1.0
    assert error.mean() < 0.15 * moved_by.mean() and np.percentile(error, 99) < 0.5 * moved_by.max()
    t_moved = angle_degrees(frames.tangents[..., :3], moved_frames.tangents[..., :3])
    t_error = angle_degrees(tangents[..., :3], moved_frames.tangents[..., :3])
    # Tangents: MikkTSpace's own quad split and projected angles are followed;
    # an n-gon's are its loop triangles', which Blender re-triangulates once
    # it bends (its tangents then differ by the new split).
    small = np.repeat(fans.face_count <= 4, 3).reshape(-1, 3)
    assert t_error[small].mean() < 0.05 * t_moved[small].mean()
    assert t_error.mean() < 0.6 * t_moved.mean()


def bumpy_sphere(scale=(1.0, 1.0, 1.0)):
    mesh = synthetic.uv_sphere(24, 12)
    mesh.positions = (mesh.positions * np.asarray(scale, np.float32)).astype(np.float32)
    return mesh


def lit_scene(mesh, views: int = 6, lighting=None):
    eyes = synthetic.fibonacci_sphere(views, 3.5)
    proj = synthetic.perspective(0.8, 1.0)
    view_list = [View(f"v{i}", (proj @ synthetic.look_at(e)).astype(np.float32), np.zeros((RES, RES, 4), np.float32))
                 for i, e in enumerate(eyes)]
    lit = LitScene.from_material(LitMaterial(roughness=ScalarChannel(constant=0.5)),
                                 lighting or Lighting(lights=(SUN,), ambient=(0.08, 0.08, 0.1)),
                                 synthetic.sphere_frames(synthetic.uv_sphere(24, 12)), list(eyes))
    return SceneArrays(mesh, synthetic.checker_texture(32), view_list, lit=lit)


def test_the_frames_kernel_matches_its_numpy_reference(backend):
    """CORNER_FRAMES on moved positions against engine/frames.py corner_frames."""
    scene = lit_scene(bumpy_sphere())
    mesh = scene.mesh
    frames = ShadingFrames(backend, mesh, scene.lit.frames, moving=True)
    rng = np.random.default_rng(2)
    moved = mesh.positions + rng.normal(0, 0.03, mesh.positions.shape).astype(np.float32)
    from sge_optimizer.engine.params import PARAM_WIDTH, pack_rows
    positions = backend.texture(PARAM_WIDTH, 1, "RGBA32F", pack_rows(moved, PARAM_WIDTH))
    got = backend.read(frames.follow(positions)).reshape(-1, 4)[: 2 * frames.corners]
    fans = frame_fans(mesh.positions, mesh.triangles, scene.lit.frames, mesh.corner_uvs)
    normals, tangents = corner_frames(moved, mesh.triangles, mesh.corner_uvs, fans)
    np.testing.assert_allclose(got[0::2, :3], normals.reshape(-1, 3), atol=1e-3)  # float32 acos and sums on the GPU
    np.testing.assert_allclose(got[1::2], tangents.reshape(-1, 4), atol=2e-3)
    # The frames moved: they are not the start's.
    assert angle_degrees(got[0::2, :3], scene.lit.frames.normals.reshape(-1, 3)).max() > 2.0


def test_the_ring_of_a_triangle_is_its_fans_other_vertices():
    """On a closed sphere, a triangle's ring is the other vertices of the
    faces around its three corners: none of its own, and every face that
    shares one of its vertices contributes."""
    mesh = synthetic.uv_sphere(12, 6)
    frames = synthetic.sphere_frames(mesh)
    fans = frame_fans(mesh.positions, mesh.triangles, frames, mesh.corner_uvs)
    start, count, ring = fans.influence_ring(mesh.triangles)
    for t in (0, len(mesh.triangles) // 2, len(mesh.triangles) - 1):
        own = set(mesh.triangles[t].tolist())
        want = {int(v) for f in mesh.triangles if own & set(f.tolist()) for v in f} - own
        assert set(ring[start[t]:start[t] + count[t]].tolist()) == want


def test_g_charges_the_ring_as_its_numpy_reference(backend):
    """A lit positions sub-step: G with FLAG_RING against the reference's
    ring charge, count for count."""
    scene = lit_scene(bumpy_sphere())
    rng = np.random.default_rng(4)
    for v in scene.views:
        v.target[...] = rng.uniform(0, 1, v.target.shape).astype(np.float32)
    engine = Engine(backend, scene, Settings(optimize_positions=True, optimize_texture=False, lit=True,
                                             silhouette_fraction=0.0, ring_charge=True))
    assert engine.raster.frames.moving
    sub = engine.make_substep(2, 0, 1)
    engine.clear_gradients()
    engine.substep(sub)
    got = engine.read_gradients()
    plus, minus = read_renders(engine, sub)
    mesh, tex = scene.mesh, engine.params.texture
    fans = frame_fans(mesh.positions, mesh.triangles, scene.lit.frames, mesh.corner_uvs)
    start, count, ring = fans.influence_ring(mesh.triangles)
    rings = [ring[s:s + c] for s, c in zip(start, count)]
    want = ref.accumulate_gradient(
        plus["color"], minus["color"], np.rint(plus["id"][..., 0]).astype(int),
        np.rint(minus["id"][..., 0]).astype(int), plus["uv"][..., :2], minus["uv"][..., :2],
        engine.loss_targets[1], mesh.triangles, len(mesh.positions), (tex.width, tex.rows),
        key_pos=ref.perturbation_key(0, 2, engine.params.positions.salt), key_tex=0, texture=False, ring=rings)
    without = ref.accumulate_gradient(
        plus["color"], minus["color"], np.rint(plus["id"][..., 0]).astype(int),
        np.rint(minus["id"][..., 0]).astype(int), plus["uv"][..., :2], minus["uv"][..., :2],
        engine.loss_targets[1], mesh.triangles, len(mesh.positions), (tex.width, tex.rows),
        key_pos=ref.perturbation_key(0, 2, engine.params.positions.salt), key_tex=0, texture=False)
    assert want["positions_count"].sum() > 3 * without["positions_count"].sum()  # the ring is charged
    np.testing.assert_array_equal(got["positions_count"], want["positions_count"])
    resolution = 4.0 / K.FIXED_SCALE
    assert np.all(np.abs(got["positions"] - want["positions"]) <= (want["positions_count"] + 1)[:, None] * resolution)


def test_a_lit_fit_moves_vertices_toward_a_known_shape(backend):
    """Lit targets of a sphere squashed to 0.8 in z, rendered with the frames
    of the squashed shape: a lit positions fit from the round sphere moves
    the vertices toward it, and its own renders of the targets improve."""
    truth = bumpy_sphere((1.0, 1.0, 0.8))
    scene = lit_scene(truth, views=8)
    render_settings = Settings(optimize_positions=True, optimize_texture=False, lit=True,
                               antialias=False)
    maker = Engine(backend, scene, render_settings)
    assert maker.raster.frames.moving
    for i, v in enumerate(scene.views):
        v.target[...] = maker.render(i)["color"]
    start = bumpy_sphere()
    fit_scene = SceneArrays(start, scene.texture, scene.views, lit=scene.lit)
    settings = Settings(optimize_positions=True, optimize_texture=False, lit=True, steps=300,
                        antialias=False, keep_best=False, lr_positions=0.01)
    engine = Engine(backend, fit_scene, settings)
    before = np.mean([m["mse"] for m in engine.evaluate()])
    engine.start()
    for _ in range(settings.steps):
        engine.step()
    engine.finish()
    after = np.mean([m["mse"] for m in engine.evaluate()])
    fitted = engine.positions()

    def off_the_truth(p):  # distance from the squashed sphere, near enough (vertices may slide along it)
        return float(np.abs(np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2 + (p[:, 2] / 0.8) ** 2) - 1.0).mean())

    assert off_the_truth(fitted) < 0.5 * off_the_truth(start.positions)
    assert after < 0.6 * before
    assert np.all(np.isfinite(fitted))
