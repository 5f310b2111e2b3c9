"""Shadow maps of a lit fit (issue 24): the depth pass (SHADOW_DEPTH) against a
ray cast, the lookup (lit_shadows.glsl through SHADOW_EVAL) against
engine/shadow_reference.py, and R drawing them from the positions it renders."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sge_optimizer import gpu_kernels as K
from sge_optimizer.engine import SceneArrays, Settings, View, synthetic
from sge_optimizer.engine import shadow_reference as ref
from sge_optimizer.engine.lighting import Light, Lighting
from sge_optimizer.engine.materials import LitMaterial, ScalarChannel
from sge_optimizer.engine.optimizer import build_parameters
from sge_optimizer.engine.params import PARAM_WIDTH, pack_rows
from sge_optimizer.engine.raster import Rasterizer
from sge_optimizer.engine.scene import LitScene
from sge_optimizer.engine.schedule import SubStep
from sge_optimizer.engine.shadows import ShadowMaps, pack_lights_with_shadows, shadow_slots

SUN = Light("SUN", (1.0, 0.95, 0.9), 3.0, (0, 0, 0), (0.35, -0.25, -0.9), radius=math.radians(3))
SPOT = Light("SPOT", (1.0, 0.9, 0.8), 300.0, (-1.2, 0.8, 3.0), (0.3, -0.2, -0.93), radius=0.05,
             spot_size=math.radians(70), spot_blend=0.2)
POINT = Light("POINT", (1.0, 0.9, 0.8), 200.0, (0.5, -0.4, 1.5), (0, 0, -1), radius=0.05)
LIGHTS = {"SUN": SUN, "SPOT": SPOT, "POINT": POINT}
TILE = 128


def _positions_texture(backend, positions):
    rows = pack_rows(np.asarray(positions, np.float32), PARAM_WIDTH)
    return backend.texture(rows.shape[1], rows.shape[0], "RGBA32F", rows)


def _maps(backend, lights, mesh=None, tile=TILE):
    mesh = mesh or synthetic.ground_and_plate()
    maps = ShadowMaps(backend, Lighting(tuple(lights)), mesh, tile)
    maps.draw(_positions_texture(backend, mesh.positions))
    backend.finish()
    return mesh, maps, backend.read(maps.atlas)


@pytest.mark.parametrize("kind", ["SUN", "SPOT", "POINT"])
def test_the_shadow_pass_draws_the_ray_cast_depth(backend, kind):
    mesh, maps, atlas = _maps(backend, [LIGHTS[kind]])
    assert len(maps.slots) == (6 if kind == "POINT" else 1)
    filled = []
    for slot in range(len(maps.slots)):
        want = ref.shadow_depth(maps.packed, slot, mesh.positions, mesh.triangles)
        x0, y0 = (int(v) for v in maps.packed[1 + 1 + 2 * slot + 1, 0, :2])
        got = atlas[y0:y0 + TILE, x0:x0 + TILE]
        filled.append(want[..., 1].mean())
        # Coverage agrees but on triangle edges (a texel centre on an edge may go either way).
        assert np.mean(got[..., 3] != want[..., 1]) < 0.01
        both = (got[..., 3] > 0.5) & (want[..., 1] > 0.5)
        if not both.any():
            continue
        off = np.abs(got[both, 0] - want[both, 0]) > 1e-4 * np.ptp(want[both, 0]) + 1e-5
        assert np.mean(off) < 0.002  # likewise, where the plate's edge passes over the ground
        assert np.median(np.abs(got[both, 0] - want[both, 0])) < 1e-5
    assert max(filled) > 0.15, "the mesh must fill much of a tile"
    if kind == "POINT":  # the lamp is above the ground: its -z face sees most of it, +z nothing
        assert filled[5] > 0.3 and filled[4] == 0.0


def _eval(backend, maps, atlas_tex, p, n, k=0):
    w = 16
    h = len(p) // w

    def tex(a):
        a = np.concatenate([np.asarray(a, np.float32), np.zeros((len(a), 1), np.float32)], 1)
        return backend.texture(w, h, "RGBA32F", a.reshape(h, w, 4))

    out = backend.texture(w, h, "RGBA32F")
    backend.dispatch(K.SHADOW_EVAL, K.SHADOW_EVAL.groups(w, h), images={"out_visibility": out},
                     samplers={"lights": maps.lights, "shadow_atlas": atlas_tex, "in_position": tex(p),
                               "in_normal": tex(n)}, constants={})
    backend.finish()
    return backend.read(out)[..., k].reshape(-1)


def _surface_points(rng, count):
    """Points on the ground (normal +z) and on the plate's top (lit: no acne there)."""
    ground = np.concatenate([rng.uniform(-0.95, 0.95, (count, 2)), np.zeros((count, 1))], 1)
    top = np.concatenate([rng.uniform(-0.39, 0.39, (count // 4, 2)), np.full((count // 4, 1), 0.6)], 1)
    p = np.concatenate([ground, top])
    n = np.tile([0.0, 0.0, 1.0], (len(p), 1))
    return p, n, len(ground)


def _plate_blocks(ground, light, margin):
    """(clearly lit, clearly shadowed) ground points: the ray to the light
    passes the plate (0.8 wide, z 0.5..0.6) by more than `margin` outside or inside."""
    if light.kind == "SUN":
        to_light = np.broadcast_to(-np.asarray(light.direction) / np.linalg.norm(light.direction), ground.shape)
    else:
        to_light = np.asarray(light.position) - ground
    reach = [np.abs(ground[:, :2] + to_light[:, :2] * (z / to_light[:, 2:])).max(1) for z in (0.5, 0.6)]
    return (np.minimum(*reach) > 0.4 + margin), (np.maximum(*reach) < 0.4 - margin)


@pytest.mark.parametrize("kind", ["SUN", "SPOT", "POINT"])
def test_the_shadow_lookup_matches_reference(backend, kind):
    light = LIGHTS[kind]
    area = Light("AREA", (1, 1, 1), 10.0, (0, 0, 3), (0, 0, -1), area_size=(0.5, 0.5))  # casts none
    mesh, maps, atlas = _maps(backend, [area, light])
    p, n, grounds = _surface_points(np.random.default_rng(1), 1024)
    got = _eval(backend, maps, maps.atlas, p, n)
    want = ref.light_visibility(atlas, maps.packed, 0, p, n)
    # Compares sitting on a depth within float rounding may flip one tap in 64.
    assert np.mean(np.abs(got - want) > 1e-3) < 0.01
    assert np.abs(got - want).max() < 0.1
    assert np.mean(want[:grounds] < 0.05) > 0.05, "the plate must shadow part of the ground"
    assert np.mean(want[:grounds] > 0.95) > 0.3
    assert np.mean(np.abs(want[:grounds] - 0.5) < 0.45) > 0.003, "a soft edge"
    np.testing.assert_array_equal(want[grounds:], 1.0)  # the plate's lit top: no acne
    np.testing.assert_array_equal(got[grounds:], 1.0)
    lit, dark = _plate_blocks(p[:grounds], light, margin=0.06)
    assert lit.mean() > 0.3 and dark.mean() > 0.05
    np.testing.assert_array_equal(got[:grounds][lit], 1.0)  # nor on the lit ground
    np.testing.assert_array_equal(got[:grounds][dark], 0.0)


def test_suns_spots_and_points_with_cast_shadow_get_maps():
    """One tile for a sun or spot, a cube's six for a point light; none for a
    light with Cast Shadow off, no power, an area light, or past 4 lights."""
    mesh = synthetic.ground_and_plate()
    off = Light("SUN", (1, 1, 1), 3.0, (0, 0, 0), (0, 0, -1), cast_shadow=False)
    dark = Light("SPOT", (1, 1, 1), 0.0, (0, 0, 3), (0, 0, -1), spot_size=1.0)
    area = Light("AREA", (1, 1, 1), 10.0, (0, 0, 3), (0, 0, -1), area_size=(0.5, 0.5))
    lights = (off, SUN, dark, POINT, area, SPOT, SUN, SUN)
    slots = shadow_slots(Lighting(lights), mesh.positions)
    assert [s.light for s in slots] == [1] + [3] * 6 + [5, 6]
    assert [s.kind for s in slots] == ["SUN"] + ["POINT"] * 6 + ["SPOT", "SUN"]
    maps_packed = shadow_reference_packed(lights, mesh)
    assert list(maps_packed[1:1 + len(lights), 3, 0]) == [0, 1, 0, 2, 0, 3, 4, 0]  # shadowed light + 1
    assert list(maps_packed[0, 2]) == [0, 1, 7, 8] and list(maps_packed[0, 3]) == [1, 6, 1, 1]


def test_the_atlas_stays_within_its_largest_side(backend):
    """Four point lights (24 tiles, 5 x 5) at 2048-texel tiles would make a
    10240² atlas: the tiles shrink to fit ATLAS_MAX."""
    from sge_optimizer.engine.shadows import ATLAS_MAX

    mesh = synthetic.ground_and_plate(cells=2)
    points = tuple(Light(**{**POINT.__dict__, "position": (x, 0.3, 1.5)}) for x in (-0.6, -0.2, 0.2, 0.6))
    maps = ShadowMaps(backend, Lighting(points), mesh, 2048)
    assert len(maps.slots) == 24 and maps.tile == ATLAS_MAX // 5
    assert max(maps.packed[0, 1, 1:3]) <= ATLAS_MAX
    assert backend.read(maps.atlas).shape[:2] == (5 * maps.tile, 5 * maps.tile)


def shadow_reference_packed(lights, mesh):
    return pack_lights_with_shadows(Lighting(lights), shadow_slots(Lighting(lights), mesh.positions, TILE), TILE)


def _lit_plate(backend, lights, views=1, res=64):
    mesh = synthetic.ground_and_plate()
    eye = np.array([0.3, -0.4, 4.0])
    proj = synthetic.perspective(0.9, 1.0)
    view_projection = (proj @ synthetic.look_at(eye, up=(0.0, 1.0, 0.0))).astype(np.float32)
    material = LitMaterial(roughness=ScalarChannel(constant=0.8))
    lit = LitScene.from_material(material, Lighting(tuple(lights), ambient=(0.05, 0.05, 0.05)),
                                 synthetic.flat_frames(mesh), [eye])
    scene = SceneArrays(mesh, synthetic.flat_texture(8, 0.7), [View("top", view_projection,
                                                                       np.zeros((res, res, 4), np.float32))], lit=lit)
    settings = Settings(lit=True, optimize_positions=True, optimize_texture=False)
    params = build_parameters(backend, scene, settings, sart=False)
    return scene, params, Rasterizer(backend, scene, params, seed=1, with_pair=False)


def _ground_shadow(render, ground_triangles):
    """The in-shadow ground pixels (darker than half the lit ground) and their mean column."""
    on_ground = (render["id"] >= 1) & (render["id"] <= ground_triangles)
    lum = render["color"][..., :3].mean(-1)
    dark = on_ground & (lum < 0.5 * np.median(lum[on_ground]))
    return dark, np.nonzero(dark)[1].mean()


def test_a_vertex_moved_in_theta_plus_moves_its_shadow(backend):
    """R+ draws the shadow maps from theta+: the plate moved along +x in
    theta+ casts its shadow further along +x in R+, while R (theta) keeps it."""
    scene, params, raster = _lit_plate(backend, [SUN])
    pos = params.positions
    moved = scene.mesh.positions.copy()
    plate = np.arange(len(moved)) >= 4 * 8 * 8
    moved[plate, 0] += 0.3
    rows = pack_rows(moved, PARAM_WIDTH)
    pos.plus = backend.texture(rows.shape[1], rows.shape[0], "RGBA32F", rows)
    ground_triangles = 2 * 8 * 8
    before = raster.render(0)
    map_before = backend.read(raster.shadows.atlas)
    sub = SubStep(index=0, slot=0, view=0, groups=("positions",), strata={})
    raster.draw(raster.plus, 0, sign=+1, sub=sub)
    # The map itself was drawn from theta+: the plate's depth moved in it.
    moved_in_map = np.abs(backend.read(raster.shadows.atlas) - map_before).max(-1) > 1e-3
    assert moved_in_map.mean() > 0.01
    tex = backend.target_textures(raster.plus)
    after = {"color": backend.read(tex["color"]), "id": np.rint(backend.read(tex["id"])[..., 0]).astype(int)}
    dark0, x0 = _ground_shadow(before, ground_triangles)
    dark1, x1 = _ground_shadow(after, ground_triangles)
    assert dark0.sum() > 30 and dark1.sum() > 30
    # 0.3 world units is ~ 5 pixels at this camera: the shadow follows (the plate too, on screen).
    assert x1 - x0 > 3.0
    # And theta again: the shadow is back where it was.
    again = raster.render(0)
    np.testing.assert_array_equal(_ground_shadow(again, ground_triangles)[0], dark0)


def test_a_light_without_cast_shadow_casts_none(backend):
    off = Light(**{**SUN.__dict__, "cast_shadow": False})
    _, _, lit = _lit_plate(backend, [SUN])
    _, _, unlit = _lit_plate(backend, [off])
    ground_triangles = 2 * 8 * 8
    shadowed, plain = lit.render(0), unlit.render(0)
    assert _ground_shadow(shadowed, ground_triangles)[0].sum() > 30
    on_ground = (plain["id"] >= 1) & (plain["id"] <= ground_triangles)
    lum = plain["color"][..., :3].mean(-1)[on_ground]
    assert lum.min() > 0.8 * np.median(lum)  # no shadow on the ground
    # Where the sun reaches in both, the two renders agree.
    lit_both = shadowed["color"][..., :3].mean(-1) > (1 - 1e-5) * plain["color"][..., :3].mean(-1)
    assert lit_both.mean() > 0.15
    np.testing.assert_allclose(shadowed["color"][lit_both], plain["color"][lit_both], atol=1e-6)


@pytest.mark.parametrize("kind", ["SUN", "SPOT", "POINT"])
def test_a_curved_surface_has_no_acne_where_it_faces_the_light(backend, kind):
    """A coarse smooth sphere (its faces are what the map holds): every point
    whose face turns to the light by more than 10 degrees is fully lit."""
    light = SUN if kind == "SUN" else Light(**{**LIGHTS[kind].__dict__, "position": (-1.5, 1.0, 2.5)})
    mesh = synthetic.uv_sphere(24, 12)
    mesh.positions[:, 2] += 1.0
    _, maps, atlas = _maps(backend, [light], mesh, tile=256)
    rng = np.random.default_rng(2)
    corners = mesh.positions[mesh.triangles].astype(np.float64)
    bary = rng.dirichlet((1.0, 1.0, 1.0), len(corners))
    p = np.einsum("tc,tcx->tx", bary, corners)
    n = np.einsum("tc,tcx->tx", bary, corners - [0.0, 0.0, 1.0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    to_light = (-np.asarray(light.direction) if kind == "SUN" else np.asarray(light.position) - p)
    to_light = to_light / np.linalg.norm(to_light, axis=-1, keepdims=True)
    facing = np.sum(face * to_light, -1) > math.sin(math.radians(10))
    keep = len(p) // 16 * 16
    got = _eval(backend, maps, maps.atlas, p[:keep], n[:keep])
    assert facing[:keep].mean() > 0.15
    np.testing.assert_array_equal(got[facing[:keep]], 1.0)
    assert np.mean(got[np.sum(face * to_light, -1)[:keep] < -0.2] < 0.5) > 0.9  # the far side: shadowed
