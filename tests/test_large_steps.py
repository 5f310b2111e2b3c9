"""Large Steps (Settings.large_steps, engine/update.py's LargeSteps): the
preconditioned vertex update's kernels (large_steps_*.glsl) against their
numpy reference, and what the preconditioner is for: it smooths."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import H, W, small_engine

from sge_optimizer.engine import Settings, synthetic
from sge_optimizer.engine import reference as ref
from sge_optimizer.engine import update
from sge_optimizer.engine.update import (LARGE_STEPS_RATE, LARGE_STEPS_TOLERANCE, chebyshev_iterations,
                                         large_steps_bounds, vertex_adjacency)

WEIGHT = 5.0


def _pack(values, group):
    out = np.zeros((group.rows * group.width, 4), np.float32)
    out[: len(values), : values.shape[1]] = values
    return out.reshape(group.rows, group.width, 4)


def _unpack(texture, group):
    return texture.reshape(-1, 4)[: group.count, :3].astype(np.float64)


def _adjacency(engine):
    mesh = engine.scene.mesh
    return vertex_adjacency(mesh.triangles, len(mesh.positions))


def _roughness(values, adjacency):
    """|L x|^2 / |x|^2 (L: the combinatorial Laplacian): how much of x is high-frequency."""
    lx = ref.combinatorial_laplacian_apply(values, *adjacency, 1.0) - values
    return float(np.sum(lx * lx) / np.sum(values * values))


def _precondition(engine, gradient):
    """The GPU's (I + lambda L)^-1 gradient ((V, 3)): the gradient goes in
    as the regularizer's, with G's sums cleared."""
    backend, ls = engine.backend, engine.update.large_steps
    g = engine.params.positions
    engine.clear_gradients()
    ls.precondition(1.0, backend.texture(g.width, g.rows, "RGBA32F", _pack(gradient, g)), 1.0)
    return _unpack(backend.read(ls.preconditioned), g)


def test_the_solve_matches_the_reference_and_a_dense_solve(backend):
    engine = small_engine(backend, large_steps=WEIGHT)
    adjacency = _adjacency(engine)
    rng = np.random.default_rng(3)
    gradient = rng.normal(0.0, 1.0, (engine.params.positions.count, 3))
    got = _precondition(engine, gradient)
    want = ref.large_steps_solve(gradient, *adjacency, WEIGHT, engine.update.large_steps.iterations)
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    # The truncated Chebyshev solve is close to the exact one (to its tolerance).
    start, degree, neighbours = adjacency
    n = len(degree)
    matrix = np.eye(n) + WEIGHT * np.diag(degree.astype(np.float64))
    for i in range(n):
        matrix[i, neighbours[start[i]: start[i] + degree[i]]] -= WEIGHT
    exact = np.linalg.solve(matrix, gradient)
    assert np.linalg.norm(got - exact) < LARGE_STEPS_TOLERANCE * np.linalg.norm(exact)


@pytest.mark.parametrize("weight", [2.0, 10.0, 50.0])
def test_the_iterations_reach_the_tolerance_where_a_vertex_has_many_neighbours(weight):
    """The blob's UV sphere (48 x 24): its poles have 48 neighbours, the rest
    4 to 6. The Jacobi-preconditioned bounds hold there, and the iterations
    counted for them reach LARGE_STEPS_TOLERANCE against a dense solve (the
    plain bounds [1, 1 + 2 lambda max degree] gave 0.32 at lambda 5 in 16)."""
    mesh = synthetic.uv_sphere(48, 24)
    n = len(mesh.positions)
    start, degree, neighbours = vertex_adjacency(mesh.triangles, n)
    assert degree.max() == 48
    iterations = chebyshev_iterations(*large_steps_bounds(weight, degree))
    assert iterations < 64
    rhs = np.random.default_rng(0).normal(0.0, 1.0, (n, 3))
    matrix = np.eye(n) + weight * np.diag(degree.astype(np.float64))
    for i in range(n):
        matrix[i, neighbours[start[i]: start[i] + degree[i]]] -= weight
    exact = np.linalg.solve(matrix, rhs)
    got = ref.large_steps_solve(rhs, start, degree, neighbours, weight, iterations)
    assert np.linalg.norm(got - exact) < LARGE_STEPS_TOLERANCE * np.linalg.norm(exact)


def test_the_preconditioner_smooths_a_noisy_gradient(backend):
    """A smooth field (the vertices' own coordinates: the sphere's lowest
    modes) plus noise: the preconditioned gradient keeps the smooth part and
    loses most of the noise."""
    engine = small_engine(backend, large_steps=WEIGHT)
    adjacency = _adjacency(engine)
    smooth = engine.scene.mesh.positions.astype(np.float64)
    smooth = smooth - smooth.mean(0)
    noisy = smooth + np.random.default_rng(5).normal(0.0, 0.5, smooth.shape)
    got = _precondition(engine, noisy)
    rough_before, rough_after = _roughness(noisy, adjacency), _roughness(got, adjacency)
    assert rough_after < 0.2 * rough_before, (rough_before, rough_after)

    def cosine(a, b):
        return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    before, after = cosine(noisy, smooth), cosine(got, smooth)
    assert after > before + 0.1, (before, after)


@pytest.mark.parametrize("uniform", [True, False])
def test_a_large_steps_update_matches_the_reference(backend, monkeypatch, uniform):
    """One vertex update (with the smoothness term) on the GPU and in numpy:
    positions, the moments in u, and the preconditioned gradient; G's sums
    are cleared. Uniform Adam (the option's), and Adam's per-coordinate
    division (LARGE_STEPS_UNIFORM, an experiment's switch)."""
    monkeypatch.setattr(update, "LARGE_STEPS_UNIFORM", uniform)
    engine = small_engine(backend, large_steps=WEIGHT, smoothness=50.0, lr_positions=0.05, warmup_steps=0)
    ls, g = engine.update.large_steps, engine.params.positions
    engine.clear_gradients()
    engine.substep(engine.make_substep(0, 0, 1, groups=("positions",)))
    grads = engine.read_gradients()
    assert np.abs(grads["positions"]).max() > 0
    smoothness = engine.update.smoothness
    g.theta = backend.texture(g.width, g.rows, "RGBA32F",  # moved off the start: the smoothness term pulls
                              _pack(engine.positions() * np.float32(1.05), g))
    smoothness.gradient()
    regularizer = _unpack(backend.read(smoothness.grad), g)
    assert np.abs(regularizer).max() > 0
    before = [_unpack(backend.read(t), g) for t in (g.theta, g.moment1, g.moment2)]
    lr_scale = engine.schedule.lr_scale(1)
    engine.update.adam_step(("positions",), substep0=0, substeps=1, lr_scale=lr_scale)
    s = engine.settings
    theta, m, v, pre = ref.large_steps_step(
        *before, grads["positions"], t=1, lr=(LARGE_STEPS_RATE if uniform else 1.0) * g.lr * lr_scale,
        grad_scale=1 / (2 * g.eps * W * H),
        beta1=s.beta1, beta2=s.beta2, adjacency=_adjacency(engine), weight=WEIGHT,
        iterations=ls.iterations, regularizer=regularizer, reg_weight=smoothness.weight, uniform=uniform)
    np.testing.assert_allclose(_unpack(backend.read(ls.preconditioned), g), pre, rtol=1e-3,
                               atol=1e-4 * np.abs(pre).max())
    np.testing.assert_allclose(_unpack(backend.read(g.moment1), g), m, rtol=1e-3, atol=1e-4 * np.abs(m).max())
    np.testing.assert_allclose(_unpack(backend.read(g.moment2), g), v, rtol=1e-3, atol=1e-4 * np.abs(v).max())
    moved = np.abs(theta - before[0]).max()
    assert moved > 0.1 * g.lr
    np.testing.assert_allclose(_unpack(backend.read(g.theta), g), theta, atol=1e-3 * moved)
    after = engine.read_gradients()
    assert np.all(after["positions"] == 0) and np.all(after["positions_count"] == 0)


def test_large_steps_needs_the_per_pixel_estimator():
    with pytest.raises(ValueError, match="per_pixel"):
        Settings(large_steps=10.0, estimator="full_image").validate()
    Settings(large_steps=10.0).validate()
