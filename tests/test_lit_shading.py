"""lit_shading.glsl (through the lit_eval kernel) against engine/lit_reference.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sge_optimizer import gpu_kernels as K
from sge_optimizer.engine import lit_reference as lit
from sge_optimizer.engine.lighting import Light, Lighting

W, H = 16, 8  # 128 random shading points

_LIGHTS = {
    "SUN": Light("SUN", (1.0, 0.9, 0.8), 3.0, (0, 0, 0), (-0.3, 0.2, -0.93), radius=math.radians(5)),
    "POINT": Light("POINT", (0.8, 1.0, 0.9), 400.0, (2.0, -1.5, 2.5), (0, 0, -1), radius=0.1),
    "SPOT": Light("SPOT", (1.0, 0.8, 1.0), 600.0, (-1.0, -2.5, 2.0), (0.3, 0.7, -0.65),
                  radius=0.05, spot_size=math.radians(50), spot_blend=0.3),
    "AREA": Light("AREA", (0.9, 0.9, 1.0), 300.0, (0.5, 2.0, 2.0), (-0.1, -0.6, -0.8),
                  area_size=(1.0, 0.5), axis_x=(1.0, 0.0, -0.125)),
}


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    n = W * H
    normal = rng.normal(size=(n, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    position = rng.uniform(-0.7, 0.7, size=(n, 3))
    camera = np.array([0.3, -4.0, 1.5])
    # Face the camera mostly (as visible points do), a few grazing.
    view = camera - position
    flip = np.sum(normal * view, 1) < 0
    normal[flip] *= -1
    tangent = rng.normal(size=(n, 3))
    tangent -= normal * np.sum(tangent * normal, 1, keepdims=True)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    sign = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)
    return dict(base=rng.uniform(0.02, 1.0, (n, 3)), roughness=rng.uniform(0.05, 1.0, n),
                metallic=np.where(rng.uniform(size=n) < 0.3, rng.uniform(size=n), rng.integers(0, 2, n)),
                specular=rng.uniform(0.0, 1.0, n), normal=normal, position=position, camera=camera,
                tangent=np.concatenate([tangent, sign[:, None]], 1),
                map=rng.uniform(0.0, 1.0, (n, 3)), strength=rng.uniform(0.0, 2.0, n))


def _run(backend, lighting, x):
    def tex(*columns):
        data = np.concatenate([np.asarray(c, np.float32).reshape(W * H, -1) for c in columns], 1)
        return backend.texture(W, H, "RGBA32F", data.reshape(H, W, 4))

    packed = lit.pack_lights(lighting)
    lights = backend.texture(4, packed.shape[0], "RGBA32F", packed)
    color = backend.texture(W, H, "RGBA32F")
    normal = backend.texture(W, H, "RGBA32F")
    backend.dispatch(K.LIT_EVAL, K.LIT_EVAL.groups(W, H), images={"out_color": color, "out_normal": normal},
                     samplers={"lights": lights, "in_material": tex(x["base"], x["roughness"]),
                               "in_normal": tex(x["normal"], x["metallic"]),
                               "in_position": tex(x["position"], x["specular"]),
                               "in_tangent": tex(x["tangent"]), "in_map": tex(x["map"], x["strength"])},
                     constants={"camera_position": [float(v) for v in x["camera"]]})
    backend.finish()
    return backend.read(color).reshape(-1, 4)[:, :3], backend.read(normal).reshape(-1, 4)[:, :3], packed


@pytest.mark.parametrize("kinds", [("SUN",), ("POINT",), ("SPOT",), ("AREA",), ("SUN", "POINT", "SPOT", "AREA")])
def test_shade_lit_matches_reference(backend, kinds):
    x = _inputs(len(kinds))
    lighting = Lighting(tuple(_LIGHTS[k] for k in kinds), ambient=(0.05, 0.06, 0.08))
    got, _, packed = _run(backend, lighting, x)
    want = lit.shade_lit(x["base"], x["roughness"], x["metallic"], x["specular"], x["normal"],
                         x["position"], x["camera"], packed)
    assert np.all(np.isfinite(got))
    ambient_only = lit.shade_lit(x["base"], x["roughness"], x["metallic"], x["specular"], x["normal"],
                                 x["position"], x["camera"], lit.pack_lights(Lighting((), (0.05, 0.06, 0.08))))
    assert np.mean(want.max(1) > ambient_only.max(1) * 1.5) > 0.2, "the light must light the points"
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * want.max())


def test_perturbed_normal_matches_reference(backend):
    x = _inputs(7)
    x["tangent"][:5] = (0.0, 0.0, 0.0, 1.0)  # no UV map: the normal is kept
    _, got, _ = _run(backend, Lighting(), x)
    want = lit.perturbed_normal(x["normal"], x["tangent"], x["map"], x["strength"])
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(want[:5], x["normal"][:5])
    flat = lit.perturbed_normal(x["normal"], x["tangent"], np.tile([0.5, 0.5, 1.0], (W * H, 1)), 1.0)
    np.testing.assert_allclose(flat, x["normal"], atol=1e-7)  # the neutral colour is the normal


def test_light_units():
    """Blender's conventions: a sun of strength S gives irradiance S; a point
    light of P watts an intensity P / (4 pi); an area light of P watts a
    radiance P / (pi A), so a small one at distance d gives P / (pi d^2)."""
    n = np.array([[0.0, 0.0, 1.0]])
    p = np.zeros((1, 3))
    cam = np.array([0.0, 0.0, 5.0])
    args = (np.ones((1, 3)), np.array([1.0]), np.array([0.0]), np.array([0.0]), n, p, cam)
    sun = Lighting((Light("SUN", (1, 1, 1), 2.0, (0, 0, 0), (0, 0, -1)),))
    assert lit.shade_lit(*args, lit.pack_lights(sun))[0, 0] == pytest.approx(2.0 / math.pi)
    point = Lighting((Light("POINT", (1, 1, 1), 100.0, (0, 0, 2.0), (0, 0, -1)),))
    assert lit.shade_lit(*args, lit.pack_lights(point))[0, 0] == pytest.approx(100 / (4 * math.pi) / 4 / math.pi)
    area = Lighting((Light("AREA", (1, 1, 1), 100.0, (0, 0, 10.0), (0, 0, -1), area_size=(0.1, 0.1)),))
    assert lit.shade_lit(*args, lit.pack_lights(area))[0, 0] == pytest.approx(100 / math.pi / 100 / math.pi, rel=1e-3)
    spot = Light("SPOT", (1, 1, 1), 100.0, (0, 0, 2.0), (0, 0, -1), spot_size=math.radians(60), spot_blend=0.5)
    edge = lit.pack_lights(Lighting((spot,)))
    assert edge[1, 2, 3] == pytest.approx(math.cos(math.radians(30)))
    # Outside the cone: dark; the ambient reaches diffuse and specular.
    away = np.array([[0.0, 3.0, 0.0]])
    assert lit.shade_lit(*args[:5], away, cam, edge)[0, 0] == 0.0
    grey = lit.pack_lights(Lighting((), (0.5, 0.5, 0.5)))
    assert lit.shade_lit(*args, grey)[0, 0] == pytest.approx(0.5)  # specular level 0: no reflection
    level = (np.full((1, 3), 0.2), np.array([1.0]), np.array([0.0]), np.array([0.5]), n, p, cam)
    assert 0.1 < lit.shade_lit(*level, grey)[0, 0] < 0.12  # diffuse 0.1 (1 - F) plus specular 0.5 F


def test_rasterize_lit_compiles(backend):
    """The lit raster pass (lab/lit_ceiling.py drives it) compiles on this Blender."""
    assert backend.shader(K.RASTERIZE_LIT) is not None
