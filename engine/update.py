"""The update: Adam (or SART's relaxation in a visit) on each group's
accumulated gradient, the smoothness term that keeps vertices apart, and
Large Steps' preconditioned vertex update (an option)."""
from __future__ import annotations

import math

import numpy as np

from .. import gpu_kernels as K
from .params import PARAM_WIDTH, ParamGroup, pack_rows

# A SART visit's update divides by the texel's summed weights plus this: a
# texel its pixels barely see no longer takes their whole residual (docs/decisions/sart-damping.md).
SART_DAMPING = 0.1


def vertex_adjacency(triangles: np.ndarray, vertex_count: int):
    """CSR adjacency of the vertex graph: (start, degree) per vertex, neighbours."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    edges = np.unique(edges, axis=0)
    edges = edges[edges[:, 0] != edges[:, 1]]
    degree = np.bincount(edges[:, 0], minlength=vertex_count)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    return start.astype(np.int64), degree.astype(np.int64), edges[:, 1].astype(np.int64)


def adjacency_textures(backend, group: ParamGroup, triangles: np.ndarray) -> tuple:
    """The vertex graph's CSR adjacency as the kernels read it: (start,
    degree) per vertex (RGBA32F, laid out as the group), the neighbours
    (R32F), and the degrees (an array)."""
    start, degree, neighbours = vertex_adjacency(triangles, group.count)
    ranges = np.stack([start, degree], axis=1).astype(np.float32)
    adjacency_range = backend.texture(group.width, group.rows, "RGBA32F", pack_rows(ranges, PARAM_WIDTH))
    adj = pack_rows(neighbours.astype(np.float32)[:, None], PARAM_WIDTH, channels=1)
    adjacency = backend.texture(PARAM_WIDTH, adj.shape[0], "R32F", adj)
    return adjacency_range, adjacency, degree


class Smoothness:
    """The uniform-Laplacian term on positions: loss w / (V diag^2) sum_v
    |L x - L x0|_v^2 (x0: the start, which it keeps: no shrinking), whose
    gradient 2 w / (V diag^2) L^T (L x - L x0) goes into `grad`."""

    def __init__(self, backend, group: ParamGroup, mesh, weight: float):
        b, g = backend, group
        self.backend, self.group = backend, group
        self.adjacency_range, self.adjacency, _ = adjacency_textures(b, g, mesh.triangles)
        self.delta = b.texture(g.width, g.rows, "RGBA32F")
        self.grad = b.texture(g.width, g.rows, "RGBA32F")
        self.zero = b.texture(g.width, g.rows, "RGBA32F")
        self.rest = b.texture(g.width, g.rows, "RGBA32F")
        self._pass(g.theta, self.rest, 0, self.zero)  # the start's own L x0
        diag = mesh.bounding_diagonal
        self.weight = 2.0 * weight / (g.count * diag * diag)

    def _pass(self, source, result, transpose: int, rest) -> None:
        g = self.group
        self.backend.dispatch(K.LAPLACIAN, K.LAPLACIAN.groups(g.width, g.rows),
                              images={"result": result},
                              samplers={"values": source, "adjacency_range": self.adjacency_range,
                                        "adjacency": self.adjacency, "rest": rest},
                              constants={"count_total": g.count, "transpose": transpose})

    def gradient(self) -> None:
        """The smoothness gradient L^T (L x - L x0) into `grad`."""
        self._pass(self.group.theta, self.delta, 0, self.rest)
        self._pass(self.delta, self.grad, 1, self.zero)


# A Large Steps solve (two a vertex update) takes the Chebyshev iterations
# whose error bound 2 q^k (q = (sqrt(kappa) - 1) / (sqrt(kappa) + 1)) reaches
# this, and at most LARGE_STEPS_MAX_ITERATIONS (each is a dispatch).
LARGE_STEPS_TOLERANCE = 0.05
LARGE_STEPS_MAX_ITERATIONS = 64
# Uniform Adam in u (the paper's: every coordinate over the largest
# sqrt(v_hat)); False: Adam's per-coordinate division.
LARGE_STEPS_UNIFORM = True
# Uniform Adam moves only the coordinate with the largest sqrt(v_hat) by the
# full rate, the rest by less: its rate is lr_positions times this
# (docs/decisions/large-steps.md).
LARGE_STEPS_RATE = 3.0


def chebyshev_coefficients(low: float, high: float, iterations: int) -> tuple:
    """Chebyshev iteration on a (preconditioned) matrix with eigenvalues in
    [low, high] (Saad, Iterative Methods, alg. 12.1): 1 / centre (the first
    direction is the preconditioned residual over the centre), then
    (keep, gain) per iteration for d' = keep d + gain z' (z: the
    preconditioned residual)."""
    centre, half = 0.5 * (high + low), 0.5 * (high - low)
    sigma = centre / half
    rho = 1.0 / sigma
    steps = []
    for _ in range(iterations):
        rho_next = 1.0 / (2.0 * sigma - rho)
        steps.append((rho_next * rho, 2.0 * rho_next / half))
        rho = rho_next
    return 1.0 / centre, tuple(steps)


def large_steps_bounds(weight: float, degree: np.ndarray) -> tuple:
    """Bounds of the spectrum of D^-1 (I + weight L) (D: its diagonal
    1 + weight degree), which the Jacobi-preconditioned Chebyshev solve
    needs. High: 2 (Gershgorin: each row's off-diagonal sum is below its
    diagonal). Low: 1 / (1 + weight mean degree), the Rayleigh quotient of
    D^1/2 1, about the smallest eigenvalue (within 0.1 % on a UV sphere
    48 x 24, whose poles have degree 48). An eigenvalue below it is safe:
    Chebyshev's residual polynomial stays within [eps, 1] between 0 and the
    low bound, so such a mode converges more slowly, never diverges."""
    return 1.0 / (1.0 + weight * float(np.mean(degree))), 2.0


def chebyshev_iterations(low: float, high: float, tolerance: float = LARGE_STEPS_TOLERANCE) -> int:
    """Iterations for Chebyshev's error bound 2 q^k to reach `tolerance`
    on a spectrum in [low, high] (1 .. LARGE_STEPS_MAX_ITERATIONS)."""
    root = math.sqrt(high / low)
    q = (root - 1.0) / (root + 1.0)
    if q <= 0.0:
        return 1
    return max(1, min(LARGE_STEPS_MAX_ITERATIONS, math.ceil(math.log(tolerance / 2.0) / math.log(q))))


class LargeSteps:
    """The vertex update of Large Steps (Nicolet et al. 2021,
    Settings.large_steps): positions parameterised as u = (I + lambda L) x
    (L = D - A, the combinatorial Laplacian). The gradient in u is
    (I + lambda L)^-1 g, which keeps g's smooth part and damps its
    high-frequency part; uniform Adam steps u (every coordinate divided by
    the largest sqrt(v_hat)); the step in x is (I + lambda L)^-1 du. Each
    solve is Jacobi-preconditioned Chebyshev iterations (large_steps_bounds,
    chebyshev_iterations: about 15 for lambda 5 on a 6-regular mesh; no dot
    products, so nothing leaves the GPU). The moments are u's, in the
    group's moment textures."""

    def __init__(self, backend, group: ParamGroup, mesh, weight: float, iterations: int | None = None):
        b, g = backend, group
        self.backend, self.group, self.weight = backend, group, float(weight)
        self.adjacency_range, self.adjacency, degree = adjacency_textures(b, g, mesh.triangles)
        self.bounds = large_steps_bounds(self.weight, degree)
        self.iterations = iterations or chebyshev_iterations(*self.bounds)
        self.inv_centre, self.steps = chebyshev_coefficients(*self.bounds, self.iterations)
        self.preconditioned = b.texture(g.width, g.rows, "RGBA32F")  # s = (I + lambda L)^-1 g
        self.residual = b.texture(g.width, g.rows, "RGBA32F")
        self.directions = [b.texture(g.width, g.rows, "RGBA32F"), b.texture(g.width, g.rows, "RGBA32F")]
        self.v_max = b.texture(1, 1, "R32I")

    def solve(self, solution) -> None:
        """The Chebyshev iterations from the residual and first direction in
        place: adds (I + lambda L)^-1 r to `solution`."""
        g = self.group
        groups = K.LARGE_STEPS_SOLVE.groups(g.width, g.rows)
        d, d_next = self.directions
        for keep, gain in self.steps:
            self.backend.dispatch(K.LARGE_STEPS_SOLVE, groups,
                                  images={"solution": solution, "residual": self.residual, "direction_next": d_next},
                                  samplers={"direction": d, "adjacency_range": self.adjacency_range,
                                            "adjacency": self.adjacency},
                                  constants={"count_total": g.count, "laplacian_weight": self.weight,
                                             "keep": keep, "gain": gain})
            d, d_next = d_next, d

    def precondition(self, grad_scale: float, regularizer=None, reg_weight: float = 0.0) -> None:
        """`preconditioned` = (I + lambda L)^-1 (G's sums x grad_scale +
        reg_weight x regularizer), clearing the sums."""
        g = self.group
        self.backend.dispatch(K.LARGE_STEPS_GATHER, K.LARGE_STEPS_GATHER.groups(g.width, g.rows),
                              images={"grad": g.grad, "count": g.counts, "solution": self.preconditioned,
                                      "residual": self.residual, "direction": self.directions[0]},
                              samplers={"regularizer_grad": g.theta if regularizer is None else regularizer,
                                        "adjacency_range": self.adjacency_range},
                              constants={"count_total": g.count, "grad_scale": grad_scale,
                                         "reg_weight": reg_weight if regularizer is not None else 0.0,
                                         "inv_centre": self.inv_centre, "laplacian_weight": self.weight})
        self.solve(self.preconditioned)

    def step(self, settings, rate: float, bias1: float, bias2: float, grad_scale: float,
             regularizer=None, reg_weight: float = 0.0) -> None:
        """One vertex update: precondition, uniform Adam in u, solve the step back into theta."""
        g, s = self.group, settings
        if LARGE_STEPS_UNIFORM:
            rate *= LARGE_STEPS_RATE
        self.precondition(grad_scale, regularizer, reg_weight)
        self.backend.clear(self.v_max, 0)
        groups = K.LARGE_STEPS_ADAM.groups(g.width, g.rows)
        for stage in (0, 1):
            self.backend.dispatch(K.LARGE_STEPS_ADAM, groups,
                                  images={"moment1": g.moment1, "moment2": g.moment2, "v_max": self.v_max,
                                          "residual": self.residual, "direction": self.directions[0]},
                                  samplers={"preconditioned": self.preconditioned,
                                            "adjacency_range": self.adjacency_range},
                                  constants={"count_total": g.count, "stage": stage, "beta1": s.beta1,
                                             "beta2": s.beta2, "bias1": bias1, "bias2": bias2, "lr": rate,
                                             "inv_centre": self.inv_centre, "laplacian_weight": self.weight,
                                             "uniform_step": int(LARGE_STEPS_UNIFORM)})
        self.solve(g.theta)


def worklist_groups(entries: int) -> tuple:
    """Work groups for adam_step over a worklist of at most `entries`."""
    lx, ly, _ = K.ADAM_STEP.local_size
    invocations = math.ceil(entries / K.WORKLIST_PER_INVOCATION)
    groups = math.ceil(invocations / (lx * ly))
    columns = min(groups, 1024)
    return (columns, math.ceil(groups / columns), 1)


class Update:
    """Adam on each updated group (one invocation a parameter, or a texel of
    the worklist G left); in a SART visit, SART's relaxed exact step."""

    def __init__(self, backend, settings, params, gradient, pixels: int, smoothness: Smoothness | None,
                 worklist_groups: tuple | None, visit_worklist_groups: tuple | None, visits_by_weights: bool,
                 lit: bool = False, large_steps: LargeSteps | None = None):
        self.backend, self.settings, self.params, self.gradient = backend, settings, params, gradient
        self.pixels = float(pixels)
        self.smoothness = smoothness
        self.large_steps = large_steps  # the vertex update's, where Settings.large_steps asks for it
        self.worklist_groups, self.visit_worklist_groups = worklist_groups, visit_worklist_groups
        self.visits_by_weights = visits_by_weights
        # A weight's sensitivity serves the three channels, but not a lit gain's (FLAG_TEXEL_GAIN).
        self.shared_sensitivity = visits_by_weights and not lit

    def visit_damping(self, group: ParamGroup) -> float:
        """SART_DAMPING in the units of the visit's sensitivity sums: a
        bilinear weight (charged by weights) or |c+ - c-|, 2 eps times it."""
        return SART_DAMPING * (1.0 if self.visits_by_weights else 2.0 * group.eps)

    def adam_step(self, groups: tuple, substep0: int, substeps: int, lr_scale: float, visit: bool = False) -> None:
        """Update the groups named in `groups` from the sums of sub-steps
        substep0 .. substep0 + substeps - 1; `lr_scale`: the schedule's decay."""
        s, p, G = self.settings, self.params, self.gradient
        for name in groups:
            g = p.by_name[name]
            g.updates += 1  # Adam's step count, for the bias corrections
            t = g.updates
            # Warm-up: Adam's first updates move every touched parameter by
            # about the full rate whatever its gradient, which wrecks a fit that was already right.
            warmup = min(1.0, t / s.warmup_steps) if s.warmup_steps > 0 else 1.0
            rate = g.lr * lr_scale * warmup
            if visit:  # the exact residual asks nothing of a finished fit, and has no noise to average away
                rate = s.texture_rate(True, visit=True)
            flags = K.ADAM_CLAMP01 if g.clamp01 else 0
            if name == "normal":
                flags |= K.ADAM_UNIT_NORMAL
            if g.sensitivity:
                flags |= K.FLAG_SENSITIVITY
                if visit and self.shared_sensitivity:
                    flags |= K.ADAM_SHARED_SENSITIVITY
            scale = 1.0 / (2.0 * g.eps * substeps * self.pixels)
            if g.stratified():
                scale *= s.texture_strata  # a texel is perturbed in 1 sub-step of `strata`
            if s.estimator == "full_image":
                flags |= K.FLAG_FULL_IMAGE
            regularized = name == "positions" and self.smoothness is not None
            if name == "positions" and self.large_steps is not None:
                self.large_steps.step(s, rate, 1.0 / (1.0 - s.beta1 ** t), 1.0 / (1.0 - s.beta2 ** t), scale,
                                      self.smoothness.grad if regularized else None,
                                      self.smoothness.weight if regularized else 0.0)
                continue
            if regularized:
                flags |= K.ADAM_REGULARIZER
            worklist = name == "texture" and self.worklist_groups is not None
            if worklist:
                flags |= K.ADAM_WORKLIST
            dispatch = ((self.visit_worklist_groups if visit else self.worklist_groups) if worklist
                        else K.ADAM_STEP.groups(g.width, g.rows))
            self.backend.dispatch(
                K.ADAM_STEP, dispatch,
                images={"theta": g.theta, "moment1": g.moment1, "moment2": g.moment2,
                        "grad": g.grad, "count": g.counts, "global_acc": G.global_acc,
                        "worklist": G.worklist, "worklist_length": G.worklist_length},
                samplers={"regularizer_grad": self.smoothness.grad if regularized else g.theta},
                constants={"seed": s.seed, "substep0": substep0, "substeps": substeps,
                           "salt": g.salt, "count_total": g.count, "flags": flags,
                           "bias1": 1.0 / (1.0 - s.beta1 ** t), "bias2": 1.0 / (1.0 - s.beta2 ** t),
                           "lr": rate, "grad_scale": scale,
                           # A visit's residual is exact: its update is its own, not a running mean.
                           "beta1": 0.0 if visit else s.beta1, "beta2": s.beta2,
                           "reg_weight": self.smoothness.weight if regularized else 0.0,
                           "damping": self.visit_damping(g) if visit else 0.0})
            if worklist:
                self.backend.clear(G.worklist_length, 0)
        if s.estimator == "full_image":
            self.backend.clear(G.global_acc, 0)
