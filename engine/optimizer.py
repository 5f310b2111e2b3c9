"""The per-pixel SGE optimizer: P, R+, R-, G, Adam on a GPU backend.

Parameters, gradients and Adam moments live in GPU textures for the whole
run; only `positions()`, `texture()`, `render()` and the loss read back.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import gpu_kernels as K
from .color import psnr
from .lit_reference import pack_lights
from .pixel_filter import workbench_points
from .reference import as_int32, loss_space, perturbation_key
from .scene import SceneArrays, Settings

SALT_POSITIONS = 1
SALT_TEXTURE = 2
SALT_MATERIAL = 3
SALT_NORMAL = 4
PARAM_WIDTH = 1024  # texels per row of vertex-indexed textures
# The pixel filter our renders model: a Gaussian with the standard deviation
# of Blender's default pixel filter (Blackman-Harris, 1.5 px wide: 0.21 px).
# Measured on tools/evaluate.py's texture fits, held-out PSNR rose as sigma
# fell from 0.45 (a closer match to Workbench's mip-blurred renders, but
# each pixel's charge spread over more texels) to 0.2: 34.3, 35.2 (0.3),
# 35.4 dB; pixel centres (no jitter) overfit the targets at 28 dB.
FILTER_SIGMA = Settings.filter_sigma  # the default: Cycles' and Workbench's pixel filter
FILTER_RADIUS = 1.5  # jitter offsets are clipped to it


def gaussian_offsets(count: int, sigma: float = FILTER_SIGMA) -> tuple:
    """`count` sub-pixel offsets spread as the pixel filter: equal-probability
    rings of a 2D Gaussian, turned by the golden angle."""
    k = np.arange(count) + 0.5
    radius = sigma * np.sqrt(-2.0 * np.log(1.0 - k / count))
    angle = k * np.pi * (3.0 - np.sqrt(5.0))
    return tuple((float(x), float(y)) for x, y in zip(radius * np.cos(angle), radius * np.sin(angle)))


# Sub-pixel offsets of an antialiased render (evaluation, capture, overlay),
# and the fewer that score the checkpoints while a run goes on.
ANTIALIAS_OFFSETS = gaussian_offsets(8)
CHECKPOINT_OFFSETS = gaussian_offsets(4)
# Filtered renders leave out the faintest filter points weighing this share in all (without_faint_points).
FAINT_WEIGHT = 1e-3
# A SART visit's mean leaves out more: the faintest 19 of Workbench's 28
# points, 7 % of the weight (9 renders, not 22). At the same time the
# visits are more: on blob-stripes-1k 140 visits of 9 points gave 34.9 dB
# held-out in 69 s, 130 of 14 34.9 in 73 s, 90 of 22 34.3 in 80 s; 6
# points (9.5 % left out) gave 34.2 in 140 visits.
VISIT_FAINT_WEIGHT = 7e-2
# A SART visit's update divides by the texel's summed weights plus this: a
# texel its pixels barely see took their whole residual each visit, and the
# fit slipped late (torus-4-views kept its step 252 of 1260, 41.7 dB
# held-out). 0.05 / 0.1 / 0.2: blob-stripes-1k 35.3 / 35.2 / 34.4,
# torus-4-views 42.8 / 43.1 / 43.4, suzanne-24-views 48.4 / 48.7 / 49.1 dB
# (none: 35.2, 41.7, 47.8).
SART_DAMPING = 0.1
# A joint fit keeps its fitted shape only if its coverage error is below the
# start's divided by this: 4 filter samples score coverage to within a few
# percent, and a coarse start's error falls several times over.
SHAPE_MARGIN = 1.25
# The early shape check ends the shape phase only if the fitted vertices do
# not cover the targets better than the start's at all: a short run's
# vertices have not had time to be clearly better.
EARLY_SHAPE_MARGIN = 1.0
# A start scoring this PSNR on its targets counts as finished: a run must beat
# it by `Settings.start_margin_db` to replace it.
FINISHED_PSNR = 30.0


def without_faint_points(points: np.ndarray, weights: np.ndarray, share: float = FAINT_WEIGHT) -> tuple:
    """A pixel filter's (points, weights) less its faintest points, which
    together weigh at most `share` of it: Workbench's 8 samples have 6 of 28
    points at 1e-4 of the weight in all, so a filtered render costs 22 renders
    and errs by less than that share."""
    order = np.argsort(weights, kind="stable")
    faint = set(order[np.cumsum(weights[order]) <= share * weights.sum()].tolist())
    kept = [i for i in range(len(weights)) if i not in faint]
    return points[kept], weights[kept] / weights[kept].sum()


def mean_steps(points: int) -> int:
    """Steps of a SART visit's mean over `points` filter points: two a step."""
    return (points + 1) // 2


def jittered(view_projection: np.ndarray, dx: float, dy: float, width: int, height: int) -> np.ndarray:
    """`view_projection` moved by (dx, dy) pixels on screen: clip x += w * 2 dx / width."""
    m = np.array(view_projection, np.float32)
    m[0] += np.float32(2.0 * dx / width) * m[3]
    m[1] += np.float32(2.0 * dy / height) * m[3]
    return m


def pack_rows(values: np.ndarray, width: int, channels: int = 4) -> np.ndarray:
    """(N, c) -> (rows, width, channels) float32, zero padded."""
    n = len(values)
    rows = max(1, math.ceil(n / width))
    out = np.zeros((rows * width, channels), np.float32)
    out[:n, : values.shape[1]] = values
    return out.reshape(rows, width, channels)


def vertex_adjacency(triangles: np.ndarray, vertex_count: int):
    """CSR adjacency of the vertex graph: (start, degree) per vertex, neighbours."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    edges = np.unique(edges, axis=0)
    edges = edges[edges[:, 0] != edges[:, 1]]
    degree = np.bincount(edges[:, 0], minlength=vertex_count)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    return start.astype(np.int64), degree.astype(np.int64), edges[:, 1].astype(np.int64)


def stored_unit_normals(normal_map: np.ndarray) -> np.ndarray:
    """A tangent-space normal map as stored ((h, w, 3), (x, y, z) / 2 + 1/2) ->
    (h, w, 4) with each texel a unit normal with z >= NORMAL_Z_MIN, as a
    fitted map is kept (x, y are its parameters, z follows). Normalising
    keeps each texel's direction, which is all the Normal Map node uses;
    a texel tilted past the limit (or pointing into the surface) is
    pulled back to it."""
    m = 2.0 * np.asarray(normal_map, np.float64)[..., :3] - 1.0
    length = np.linalg.norm(m, axis=-1, keepdims=True)
    m = np.where(length > 1e-12, m / np.maximum(length, 1e-12), (0.0, 0.0, 1.0))
    xy = m[..., :2]
    tilted = m[..., 2:] < K.NORMAL_Z_MIN
    r = np.linalg.norm(xy, axis=-1, keepdims=True)
    xy = np.where(tilted, xy * (K.NORMAL_XY_MAX / np.maximum(r, 1e-12)), xy)
    xy = np.where(tilted & (r <= 1e-12), 0.0, xy)
    z = np.sqrt(np.maximum(1.0 - np.sum(xy * xy, -1, keepdims=True), 0.0))
    stored = 0.5 * np.concatenate([xy, z], -1) + 0.5
    return np.concatenate([stored, np.ones(stored.shape[:2] + (1,))], -1).astype(np.float32)


def pixel_world_size(scene: SceneArrays) -> float:
    """World size of one pixel at the mesh's centre, median over the views."""
    centre = np.append(scene.mesh.positions.mean(axis=0), 1.0)
    width, height = scene.resolution
    sizes = []
    for view in scene.views:
        clip = view.view_projection @ centre
        scale = np.linalg.norm(view.view_projection[0, :3])
        if scale > 0 and clip[3] > 0:
            sizes.append(2.0 * clip[3] / (scale * width))
    return float(np.median(sizes)) if sizes else scene.mesh.bounding_diagonal / width


class ParamGroup:
    """One group of parameters (3 per texel: xyz or rgb) and its optimizer state.

    `perturbed_copies`: P writes theta+ and theta- into textures of their own
    (vertex positions); otherwise R perturbs texels as it fetches them.
    """

    def __init__(self, backend, values: np.ndarray, count: int, salt: int, eps: float,
                 lr: float, clamp01: bool, enabled: bool, perturbed_copies: bool, sensitivity: bool = False):
        self.rows, self.width = values.shape[:2]
        self.count, self.salt, self.eps, self.lr = count, salt, eps, lr
        self.clamp01, self.enabled = clamp01, enabled
        self.updates = 0  # Adam steps taken
        self._key = (None, 0)  # ((seed, substep), key): P, R+, R- and G ask for the same one
        b = backend
        self.theta = b.texture(self.width, self.rows, "RGBA32F", values)
        self.plus = self.minus = self.theta
        if enabled and perturbed_copies:
            self.plus = b.texture(self.width, self.rows, "RGBA32F")
            self.minus = b.texture(self.width, self.rows, "RGBA32F")
        self.best = None  # a copy of theta at the best checkpoint (Engine.checkpoint)
        self.candidate = None  # a copy of theta a pending checkpoint is scoring
        if enabled:
            self.moment1 = b.texture(self.width, self.rows, "RGBA32F")
            self.moment2 = b.texture(self.width, self.rows, "RGBA32F")
            # Fixed-point sums (lo rows, then hi rows) of dL * s per channel,
            # then with `sensitivity` of |c+ - c-| (FLAG_SENSITIVITY).
            self.grad = b.texture(3 * self.width, (4 if sensitivity else 2) * self.rows, "R32I")
            self.counts = b.texture(self.width, self.rows, "R32I")
        self.sensitivity = enabled and sensitivity

    def key(self, seed: int, substep: int) -> int:
        """The perturbation key of this group at `substep`, as the kernels take it."""
        if self._key[0] != (seed, substep):
            self._key = ((seed, substep), as_int32(perturbation_key(seed, substep, self.salt)))
        return self._key[1]

    def parameter_count(self) -> int:
        return 3 * self.count if self.enabled else 0


class Engine:
    def __init__(self, backend, scene: SceneArrays, settings: Settings):
        settings.validate()
        if settings.optimize_normal and scene.lit is not None and scene.lit.normal_map is None:
            raise ValueError("fitting the normal map needs one: the material has no normal-map image "
                             "(SceneArrays.lit.normal_map)")
        self.backend, self.scene, self.settings = backend, scene, settings
        self._early_shape_end = None  # set when the early shape check keeps the start's shape
        self.shape_scores = []  # joint fits: each shape choice's coverage errors (start, fitted)
        b, mesh = backend, scene.mesh
        self.width, self.height = scene.resolution
        self.vertex_count = len(mesh.positions)
        self.pixel_size = pixel_world_size(scene)
        eps_pos = settings.eps_positions or self.pixel_size
        lr_pos = settings.lr_positions or 0.002 * mesh.bounding_diagonal
        self.positions_group = ParamGroup(
            b, pack_rows(mesh.positions, PARAM_WIDTH), self.vertex_count, SALT_POSITIONS,
            eps_pos, lr_pos, clamp01=False, enabled=settings.optimize_positions, perturbed_copies=True)
        tex = np.clip(np.asarray(scene.texture, np.float32), 0.0, 1.0)
        th, tw = tex.shape[:2]
        self.texture_size = (tw, th)
        # The SART-style texel update needs each pixel's difference to be one
        # texel's: per-pixel charging, one perturbed texel a footprint, and no
        # lighting between the texel and the pixel (an unlit fit).
        sart = (settings.texture_update == "sart" and scene.lit is None and settings.estimator == "per_pixel"
                and settings.texture_strata == 4)
        self.texture_group = ParamGroup(
            b, tex, tw * th, SALT_TEXTURE, settings.eps_texture, settings.texture_rate(sart),
            clamp01=True, enabled=settings.optimize_texture, perturbed_copies=False, sensitivity=sart)
        self.triangles = b.texture(PARAM_WIDTH, max(1, math.ceil(len(mesh.triangles) / PARAM_WIDTH)),
                                   "RGBA32F", pack_rows(mesh.triangles.astype(np.float32), PARAM_WIDTH))
        self.groups = [self.positions_group, self.texture_group]
        self.material_group = None  # a lit fit's roughness / metallic map (_init_lit)
        self.normal_group = None  # a lit fit's tangent-space normal map (_init_lit)
        self.material_stratum = self.normal_stratum = -1
        self.lit = scene.lit
        if settings.lit != (scene.lit is not None):
            raise ValueError("Settings.lit asks for a lit fit but the scene has no lights and material (SceneArrays.lit)"
                             if settings.lit else "the scene is lit (SceneArrays.lit): set Settings.lit")
        if self.lit is not None:
            self._init_lit(scene)
        else:
            self.raster = K.RASTERIZE
            self.batch = b.mesh_batch(mesh.triangles.reshape(-1), mesh.corner_uvs.reshape(-1, 2))
        # The loss compares in the texture's own encoding: sRGB for an sRGB
        # texture (renders blend in linear light, then G encodes them).
        # A Workbench-filtered fit compares log2(linear + 1), where Workbench averages.
        self.workbench = settings.pixel_filter == "workbench"
        self.loss_srgb = scene.texture_srgb and not self.workbench
        self.loss_targets = [self.loss_encoded(np.clip(v.target, 0, 1)) for v in scene.views]  # as scored, once
        self.targets = [b.texture(self.width, self.height, "RGBA32F", t) for t in self.loss_targets]
        # SART texture steps visit one view at a time with its whole pixel
        # filter: the view's exact filtered render gives the residual
        # (_begin_visit), then a sub-step per filter point charges it. A
        # texture-only fit visits from its first step; a joint fit once its
        # shape phase ends (`visiting`), when positions no longer move. Its
        # inexact silhouette's pixels ask nothing of the texels (COVERAGE_TOLERANCE).
        self.visits = (self.texture_group.sensitivity and settings.sart_visits and settings.optimize_texture
                       and (not settings.optimize_positions or self.shape_end() is not None))
        # A visit charges its texels their bilinear weights from one plain render
        # (FLAG_TEXEL_WEIGHTS), or the ± renders' differences (perturbation).
        self.visits_by_weights = self.visits and settings.visit_charge == "weights"
        self._visit = None  # (view, its mean's filter, the points it charges, its first step)
        self._view_round = []  # the views still to come this round (choose_view)
        if settings.running_residual > 0 or self.visits:  # a mean per view (residual_target.glsl)
            self.running_means = [b.texture(self.width, self.height, "RGBA32F") for _ in scene.views]
            for mean in self.running_means:
                b.clear(mean, 0.0)  # mix(garbage, s, 1) could still be NaN
            self.view_visits = [0] * len(scene.views)
            self.effective_target = b.texture(self.width, self.height, "RGBA32F")
        # Scoring on the GPU (score.glsl): the running sum of a view's sample renders, and its total error.
        self.score_sum = b.texture(self.width, self.height, "RGBA32F")
        self.score_acc = b.texture(1, 2, "R32I")
        self.render_plus = b.render_target(self.width, self.height)
        self.render_minus = b.render_target(self.width, self.height)
        # A texture (or map) step's R+ and R- in one draw (RASTERIZE_PAIR): they share their geometry.
        self.render_pair = (b.render_target(self.width, self.height, pair=True)
                            if scene.lit is not None or settings.optimize_texture else None)
        self.global_acc = b.texture(K.MAX_VIEWS_PER_STEP, 2, "R32I")
        self.loss_acc = b.texture(1, 2, "R32I")
        # Texels touched since the last Adam step: at most 8 per pixel and sub-step.
        per_pixel_texture = settings.optimize_texture and settings.estimator == "per_pixel"
        self.worklist_capacity = (min(tw * th, 8 * self.width * self.height * settings.views_per_step)
                                  if per_pixel_texture else 1)
        self.worklist_groups = self._worklist_groups(self.worklist_capacity) if per_pixel_texture else None
        if self.visits:  # an update follows a visit's many sub-steps: up to every texel
            self.worklist_capacity = tw * th
        # A joint fit's per-step texture steps keep the smaller dispatch.
        self.visit_worklist_groups = self._worklist_groups(self.worklist_capacity) if self.visits else None
        self.worklist = b.texture(PARAM_WIDTH, math.ceil(self.worklist_capacity / PARAM_WIDTH), "R32I")
        self.worklist_length = b.texture(1, 1, "R32I")
        self.loss_substeps = 0
        self.use_regularizer = settings.optimize_positions and settings.smoothness > 0
        if self.use_regularizer:
            self._init_laplacian(mesh)
        self.step_index = 0
        self.active = self.perturbed_groups(0)  # the groups the current step perturbs
        self._rng = np.random.default_rng(settings.seed)
        self._jitter_rng = np.random.default_rng([settings.seed, 1])
        # Antialiased renders: (offsets, weights) of their sub-pixel samples.
        if self.workbench:
            # The pixel reads c(p + d) at Workbench's points d; a render moved by -d shows it there.
            filter_points = workbench_points(settings.workbench_samples)
            points, weights = without_faint_points(*filter_points)
            self.jitter_points, self.jitter_weights = -points, weights
            strongest = np.argsort(-weights, kind="stable")[:len(CHECKPOINT_OFFSETS)]
            self.antialias_offsets, self.antialias_weights = tuple(map(tuple, -points)), tuple(weights)
            self.checkpoint_samples = (tuple(tuple(-points[i]) for i in strongest), tuple(weights[strongest]))
            points, weights = without_faint_points(*filter_points, VISIT_FAINT_WEIGHT)
            self.visit_samples = (tuple(map(tuple, -points)), tuple(weights))
        else:
            self.antialias_offsets = gaussian_offsets(len(ANTIALIAS_OFFSETS), settings.filter_sigma)
            self.antialias_weights = (1.0,) * len(self.antialias_offsets)
            self.checkpoint_samples = (gaussian_offsets(len(CHECKPOINT_OFFSETS), settings.filter_sigma),
                                       (1.0,) * len(CHECKPOINT_OFFSETS))
            self.visit_samples = None  # the antialiasing ones
        self.timings = None  # set to a dict to collect per-pass times (synchronising)
        self.specialized_g = True  # G compiled per charge (False: the all-in kernel; tools/bench.py)
        self.stratum = -1  # the texel stratum of the current sub-step (texture_stratum)
        self.best_loss = math.inf  # of the parameters in each group's `best` copy
        self.best_step = None
        self._pending = None  # a checkpoint being scored a view at a time
        self._start_step = None  # the first checkpoint's step
        self.shape_kept = None  # joint fits: "fitted" or "start", chosen by begin_shape_choice()
        self.start_positions = None
        if self.shape_end() is not None:
            g = self.positions_group
            self.start_positions = b.texture(g.width, g.rows, "RGBA32F")
            self._copy(g, g.theta, self.start_positions)

    # Setup --------------------------------------------------------------------
    def _init_lit(self, scene: SceneArrays) -> None:
        """R renders the base colour lit (RASTERIZE_LIT_FIT): the lights, the
        fixed maps and the corners' shading frames go to the GPU once."""
        lit, mesh, b = scene.lit, scene.mesh, self.backend
        if self.settings.optimize_positions:
            raise ValueError("a lit fit keeps the corners' normals and tangents fixed: untick positions")
        if len(lit.camera_positions) != len(scene.views):
            raise ValueError(f"a lit fit needs one camera position per view: {len(lit.camera_positions)} "
                             f"for {len(scene.views)} views")
        corners = 3 * len(mesh.triangles)
        normals = np.asarray(lit.frames.normals, np.float32).reshape(corners, 3)
        tangents = np.asarray(lit.frames.tangents, np.float32).reshape(corners, 4)
        self.raster = K.RASTERIZE_LIT_FIT
        self.batch = b.mesh_batch(mesh.triangles.reshape(-1), mesh.corner_uvs.reshape(-1, 2), normals, tangents)
        lights = pack_lights(lit.lighting)
        self.lights = b.texture(lights.shape[1], lights.shape[0], "RGBA32F", lights)
        material = np.ascontiguousarray(lit.material, np.float32)
        s = self.settings
        self.material_channels = (1 if s.optimize_roughness else 0) | (2 if s.optimize_metallic else 0)
        # Roughness and metallic: one parameter group (a 1 x 1 map for constants),
        # charged the whole pixel difference (FLAG_COUPLED), its channels masked.
        self.material_group = ParamGroup(
            b, material, material.shape[0] * material.shape[1], SALT_MATERIAL, s.eps_material, s.lr_material,
            clamp01=True, enabled=self.material_channels != 0, perturbed_copies=False)
        self.groups.append(self.material_group)
        self.material_scratch = b.texture(1, 2, "R32I")  # its G pass's loss sum and worklist: unused
        normal = np.full((1, 1, 4), (0.5, 0.5, 1.0, 1.0), np.float32)  # flat
        if s.optimize_normal:
            normal = stored_unit_normals(lit.normal_map)
        elif lit.normal_map is not None:
            normal = np.concatenate([lit.normal_map[..., :3], np.ones(lit.normal_map.shape[:2] + (1,))], -1)
        normal = np.ascontiguousarray(normal, np.float32)
        # The normal map: its own group (x, y per texel; z follows), perturbed
        # where R reads it and charged the whole pixel difference, as the material.
        self.normal_group = ParamGroup(
            b, normal, normal.shape[0] * normal.shape[1], SALT_NORMAL, s.eps_normal, s.lr_normal,
            clamp01=False, enabled=s.optimize_normal, perturbed_copies=False)
        self.groups.append(self.normal_group)

    def _init_laplacian(self, mesh):
        b, g = self.backend, self.positions_group
        start, degree, neighbours = vertex_adjacency(mesh.triangles, self.vertex_count)
        ranges = np.stack([start, degree], axis=1).astype(np.float32)
        self.adjacency_range = b.texture(g.width, g.rows, "RGBA32F", pack_rows(ranges, PARAM_WIDTH))
        adj = pack_rows(neighbours.astype(np.float32)[:, None], PARAM_WIDTH, channels=1)
        self.adjacency = b.texture(PARAM_WIDTH, adj.shape[0], "R32F", adj)
        self.laplacian_delta = b.texture(g.width, g.rows, "RGBA32F")
        self.regularizer_grad = b.texture(g.width, g.rows, "RGBA32F")
        # The start's own L x0: the smoothness term keeps it (no shrinking).
        self.laplacian_zero = b.texture(g.width, g.rows, "RGBA32F")
        self.laplacian_rest = b.texture(g.width, g.rows, "RGBA32F")
        self._laplacian_pass(g.theta, self.laplacian_rest, 0, self.laplacian_zero)
        # Smoothness loss: w / (V diag^2) * sum_v |L x|_v^2, gradient 2 w / (V diag^2) L^T L x.
        diag = mesh.bounding_diagonal
        self.regularizer_weight = 2.0 * self.settings.smoothness / (self.vertex_count * diag * diag)

    def perturbed_groups(self, step_index: int) -> tuple:
        """The groups that step `step_index` perturbs and updates: every enabled
        one, or, with `alternate_groups`, positions on even steps and texture
        on odd ones (a vertex's 1-pixel nudge changes a pixel far more than a
        texel's, and would drown the texture's signal in the same step); then
        a joint fit's silhouette phase (`silhouette_only`) moves the positions
        alone: coverage does not depend on the texels. After its shape phase
        (`shape_end`) the texture goes alone, in SART visits."""
        groups = tuple(g for g in self.groups if g.enabled)
        end = self.shape_end()
        if end is not None and step_index >= end:
            return (self.texture_group,)
        if len(groups) > 1 and self.settings.alternate_groups:
            if end is not None and self.in_silhouette_phase(step_index):
                return (self.positions_group,)  # blob-joint-coarse: 30.5 -> 32.0 dB in 84 -> 71 s
            return (groups[step_index % len(groups)],)
        return groups

    @property
    def parameter_count(self) -> int:
        return sum(g.parameter_count() for g in self.groups)

    # Passes -------------------------------------------------------------------
    def _timed(self, name, fn, *args):
        if self.timings is None:
            return fn(*args)
        self.backend.finish()
        start = time.perf_counter()
        result = fn(*args)
        self.backend.finish()
        self.timings.setdefault(name, []).append(time.perf_counter() - start)
        return result

    def perturb(self, substep: int) -> None:
        """P for the groups with perturbed copies (positions)."""
        g = self.positions_group
        if g in self.active:
            self.backend.dispatch(
                K.PERTURB, K.PERTURB.groups(g.width, g.rows),
                images={"theta_plus": g.plus, "theta_minus": g.minus},
                samplers={"theta": g.theta},
                constants={"key": g.key(self.settings.seed, substep), "count": g.count, "eps": g.eps})

    def rasterize(self, target, view_index: int, sign: int = 0, substep: int = 0,
                  offset: tuple = (0.0, 0.0), candidate: bool = False, pair: bool = False) -> None:
        """R: render the parameters (sign 0), theta+ (sign +1) or theta- (-1),
        moved by `offset` pixels on screen; `candidate`: the copy a pending
        checkpoint is scoring instead; `pair` (sign +1, positions not
        perturbed): theta+ and theta- in one draw into `render_pair`."""
        pos, tex = self.positions_group, self.texture_group
        view_projection = self.scene.views[view_index].view_projection
        if offset != (0.0, 0.0):
            view_projection = jittered(view_projection, *offset, self.width, self.height)
        positions = {0: pos.theta, 1: pos.plus, -1: pos.minus}[sign if pos in self.active else 0]
        texture_eps = sign * tex.eps if tex in self.active else 0.0
        samplers = {"positions": pos.candidate if candidate and pos.enabled else positions,
                    "albedo": tex.candidate if candidate and tex.enabled else tex.theta}
        constants = {"view_projection": view_projection,
                     "texture_key": tex.key(self.settings.seed, substep), "texture_eps": texture_eps,
                     "texture_srgb": int(self.scene.texture_srgb), "texture_stratum": self.stratum}
        if self.lit is not None:
            mat, nrm = self.material_group, self.normal_group
            samplers.update(lights=self.lights,
                            normal_map=nrm.candidate if candidate and nrm.enabled else nrm.theta,
                            material=mat.candidate if candidate and mat.enabled else mat.theta)
            constants.update(camera_position=np.asarray(self.lit.camera_positions[view_index], np.float32),
                             normal_strength=float(self.lit.normal_strength),
                             material_key=mat.key(self.settings.seed, substep),
                             material_eps=sign * mat.eps if mat in self.active else 0.0,
                             material_stratum=self.material_stratum, material_channels=self.material_channels,
                             normal_key=nrm.key(self.settings.seed, substep),
                             normal_eps=sign * nrm.eps if nrm in self.active else 0.0,
                             normal_stratum=self.normal_stratum)
        spec = self.raster
        if pair:
            spec = K.RASTERIZE_PAIR if self.lit is None else K.RASTERIZE_LIT_FIT_PAIR
        self.backend.draw(spec, target, self.batch, samplers=samplers, constants=constants)

    def pair_render_applies(self) -> bool:
        """Whether this sub-step's R+ and R- can be one draw (RASTERIZE_PAIR,
        or RASTERIZE_LIT_FIT_PAIR): the positions are not perturbed, so both
        share their coverage."""
        return self.render_pair is not None and self.positions_group not in self.active

    def renders(self, pair: bool) -> tuple:
        """(plus, minus) textures of the sub-step's renders, for G."""
        if pair:
            both = self.backend.target_textures(self.render_pair)
            return both, {**both, "color": both["color_minus"]}
        return self.backend.target_textures(self.render_plus), self.backend.target_textures(self.render_minus)

    def accumulate_gradient(self, substep: int, slot: int, view_index: int, pair: bool = False,
                            visit: bool = False) -> None:
        """G for the sub-step's renders (`pair`: the one-draw pair's; `visit`:
        a SART visit's, charged the residual of the view's filtered render)."""
        pos, tex, s = self.positions_group, self.texture_group, self.settings
        flags = (K.FLAG_POSITIONS if pos in self.active else 0) | (K.FLAG_TEXTURE if tex in self.active else 0)
        if self.silhouette_only():
            flags |= K.FLAG_SILHOUETTE
        flags |= self.loss_flag()
        if s.estimator == "full_image":
            flags |= K.FLAG_FULL_IMAGE
        plus, minus = self.renders(pair)
        target = self.targets[view_index]
        if tex in self.active and tex.sensitivity:
            flags |= K.FLAG_SENSITIVITY
        if visit and self.visits_by_weights:  # one plain render (_visit_step)
            minus = plus
            flags |= K.FLAG_TEXEL_WEIGHTS
        if visit:
            texel = K.FLAG_TEXEL_RESIDUAL | (K.FLAG_TEXEL_SRGB if self.scene.texture_srgb else 0)
            target = self._residual_target(view_index, plus, minus, rate=0.0, flags=texel)
            flags |= K.FLAG_EFFECTIVE_TARGET
        elif s.running_residual > 0:
            target = self._residual_target(view_index, plus, minus)
            flags |= K.FLAG_EFFECTIVE_TARGET  # and the loss is accumulated already
        kernel = self._g_kernel(flags)
        self._dispatch_g(kernel, kernel.groups(self.width, self.height), flags, plus, minus, target, substep, slot)
        if self.lit is not None:
            for group, stratum, channels in ((self.material_group, self.material_stratum, self.material_channels),
                                             (self.normal_group, self.normal_stratum, 3)):  # normals: x, y
                if group in self.active:
                    self._coupled_gradient(group, stratum, channels, substep, slot, target, plus, minus)
        self.loss_substeps += 1

    def _g_kernel(self, flags: int):
        return K.accumulate_gradient_kernel(flags) if self.specialized_g else K.ACCUMULATE_GRADIENT

    def _dispatch_g(self, kernel, groups, flags, plus, minus, target, substep, slot) -> None:
        pos, tex, s = self.positions_group, self.texture_group, self.settings
        # A disabled group's accumulators are never written (its flag is off):
        # bind any integer image in their place.
        dummy = self.loss_acc
        self.backend.dispatch(
            kernel, groups,
            images={"grad_pos": pos.grad if pos.enabled else dummy,
                    "count_pos": pos.counts if pos.enabled else dummy,
                    "grad_tex": tex.grad if tex.enabled else dummy,
                    "count_tex": tex.counts if tex.enabled else dummy,
                    "global_acc": self.global_acc, "loss_acc": self.loss_acc,
                    "worklist": self.worklist, "worklist_length": self.worklist_length},
            samplers={"color_plus": plus["color"], "color_minus": minus["color"],
                      "id_plus": plus["id"], "id_minus": minus["id"],
                      "uv_plus": plus["uv"], "uv_minus": minus["uv"],
                      "target": target, "triangles": self.triangles},
            constants={"key_pos": pos.key(s.seed, substep), "key_tex": tex.key(s.seed, substep),
                       "slot": slot, "flags": flags, "image_size": (self.width, self.height),
                       "tex_size": self.texture_size, "pos_width": pos.width, "tex_stratum": self.stratum,
                       "tex_channels": 7})

    def warm_up(self) -> None:
        """Have the driver compile, before the first step, the G variants and
        the pair draw this fit will use. llvmpipe compiles a kernel at its
        first use, which mid-run is a hitch in the panel (a small joint fit's
        first vertex step took 971 ms with Mesa's shader cache off, 14 ms
        with it warm). G runs one work group with no group's flag: it charges nothing."""
        s = self.settings
        if s.estimator == "full_image":
            kinds = {K.FLAG_FULL_IMAGE}
        else:
            positions = self.positions_group.enabled
            texels = self.texture_group.enabled or self.lit is not None
            kinds = ({K.FLAG_POSITIONS} if positions else set()) | ({K.FLAG_TEXTURE} if texels else set())
            if positions and texels and not s.alternate_groups:
                kinds.add(K.FLAG_POSITIONS | K.FLAG_TEXTURE)
            if self.visits_by_weights:
                kinds.add(K.FLAG_TEXTURE | K.FLAG_TEXEL_WEIGHTS)
        if self.render_pair is not None:
            self.rasterize(self.render_pair, 0, 0, 0, (0.0, 0.0), False, True)
        plus, minus = self.renders(self.render_pair is not None)
        for kind in sorted(kinds):
            self._dispatch_g(self._g_kernel(kind), (1, 1, 1), K.FLAG_EFFECTIVE_TARGET | self.loss_flag(),
                             plus, minus, self.targets[0], 0, 0)

    def _residual_target(self, view_index: int, plus: dict, minus: dict, rate: float | None = None,
                         flags: int = 0, share: float = 0.5):
        """The target G compares with so that it charges the residual of the
        view's running mean (residual_target.glsl); the first visits average
        plainly, then each replaces `running_residual` of the mean. An
        explicit `rate` replaces that share (0: the mean stays)."""
        if rate is None:
            self.view_visits[view_index] += 1
            rate = max(1.0 / self.view_visits[view_index], self.settings.running_residual)
            if self.settings.residual_follows_lr:
                rate = max(rate, self.lr_scale(self.step_index))
        self.backend.dispatch(
            K.RESIDUAL_TARGET, K.RESIDUAL_TARGET.groups(self.width, self.height),
            images={"running_mean": self.running_means[view_index], "effective_target": self.effective_target,
                    "loss_acc": self.loss_acc},
            samplers={"color_plus": plus["color"], "color_minus": minus["color"],
                      "target": self.targets[view_index]},
            constants={"image_size": (self.width, self.height), "flags": self.loss_flag() | flags, "rate": rate,
                       "share": share})
        return self.effective_target

    def _coupled_gradient(self, group, stratum, channels, substep, slot, target, plus, minus) -> None:
        """G for a material or normal map: one pass per such group. G binds 8
        images, the most a shader gets on several backends, so the map takes
        the texture's slots in a pass of its own; each texel channel in
        `channels` is charged the whole pixel difference (FLAG_COUPLED)."""
        s, scratch = self.settings, self.material_scratch
        flags = K.FLAG_TEXTURE | K.FLAG_COUPLED | self.loss_flag()
        kernel = self._g_kernel(flags)
        self.backend.dispatch(
            kernel, kernel.groups(self.width, self.height),
            images={"grad_pos": scratch, "count_pos": scratch, "grad_tex": group.grad, "count_tex": group.counts,
                    "global_acc": scratch, "loss_acc": scratch, "worklist": scratch, "worklist_length": scratch},
            samplers={"color_plus": plus["color"], "color_minus": minus["color"],
                      "id_plus": plus["id"], "id_minus": minus["id"],
                      "uv_plus": plus["uv"], "uv_minus": minus["uv"],
                      "target": target, "triangles": self.triangles},
            constants={"key_pos": 0, "key_tex": group.key(s.seed, substep), "slot": slot,
                       "flags": flags, "image_size": (self.width, self.height), "tex_size": (group.width, group.rows),
                       "pos_width": self.positions_group.width, "tex_stratum": stratum,
                       "tex_channels": channels})

    def loss_flag(self) -> int:
        """G's flag for the space the loss compares in (as `loss_encoded`)."""
        return K.FLAG_LOG_LOSS if self.workbench else K.FLAG_SRGB_LOSS if self.loss_srgb else 0

    def shape_end(self) -> int | None:
        """The step where a joint fit's shape phase ends and the texture
        settles alone (earlier if the early shape check kept the start's);
        None if there is no such phase."""
        s = self.settings
        if self.positions_group.enabled and self.texture_group.enabled and s.shape_fraction < 1:
            return self._early_shape_end if self._early_shape_end is not None else int(round(s.shape_fraction * s.steps))
        return None

    def early_shape_check(self) -> int | None:
        """The step of a joint fit's early shape check, where the silhouette
        phase ends (`silhouette_fraction`): if the fitted vertices do not
        cover the targets better than the start's (EARLY_SHAPE_MARGIN), the
        start's come back and the shape phase ends there, so a shape that was right leaves
        the texture the rest of the steps (torus-joint-exact: 33.1 -> 36 dB),
        while a coarse start, whose coverage error has fallen several times
        by then, goes on to `shape_fraction`."""
        s, end = self.settings, self.shape_end()
        step = int(round(s.silhouette_fraction * s.steps))
        return step if end is not None and self._early_shape_end is None and 0 < step < end else None

    def lr_scale(self, step: int) -> float:
        """The learning-rate decay after `step` steps: exponential to lr_decay
        over the run, or over each phase of a joint fit (the texture-only phase
        starts again at the full rate: it fits the shape the first one chose)."""
        s = self.settings
        start, length = 0, s.steps
        end = self.shape_end()
        if end is not None:
            start, length = (0, end) if step <= end else (end, s.steps - end)
        return s.lr_decay ** (min(max(step - start, 0), length) / max(length, 1))

    def begin_shape_choice(self, early: bool = False) -> None:
        """End of a joint fit's shape phase: score the coverage (alpha) of the
        fitted vertices, then of the start's (a view per step, as checkpoints),
        and keep the start's unless the fitted ones cover the targets clearly
        better (SHAPE_MARGIN): a shape that was right stays exactly right. Coverage, not colour: with
        the texture still settling, colour would favour vertices that hide
        its errors. `early` (early_shape_check): a fitted shape that wins
        goes on moving; a start that wins ends the shape phase."""
        g = self.positions_group

        def chosen(start: float, fitted: float) -> None:
            keep_start = start <= (EARLY_SHAPE_MARGIN if early else SHAPE_MARGIN) * fitted
            self.shape_scores.append({"step": self.step_index, "start": start, "fitted": fitted, "early": early})
            if early and not keep_start:
                return  # the shape phase goes on; the usual choice comes at its end
            if early:
                self._early_shape_end = self.step_index  # texture alone from this step
            self._keep_shape(keep_start)

        def fitted_scored(fitted: float, step: int) -> None:
            self._copy(g, self.start_positions, g.candidate)  # the same texture copy, the start's vertices
            self._score_candidate(step, lambda start, _step: chosen(start, fitted), coverage=True)

        self.begin_checkpoint(on_done=fitted_scored, coverage=True)

    def _keep_shape(self, start: bool) -> None:
        if start:  # positions no longer move, so the swap loses nothing
            self._copy(self.positions_group, self.start_positions, self.positions_group.theta)
        self.shape_kept = "start" if start else "fitted"

    def texture_stratum(self, slot: int) -> int:
        """The texel parity class sub-step `slot` of this step perturbs and
        charges (-1: all), counted over the texture's own steps so that
        alternating groups still visit all four."""
        strata = self.settings.texture_strata
        if strata == 1:
            return -1
        return (self.texture_group.updates * self.settings.views_per_step + slot) % strata

    def map_stratum(self, g: ParamGroup | None, slot: int) -> int:
        """A material or normal map's stratum at sub-step `slot`, as
        texture_stratum (-1, every texel, for a 1 x 1 map of constants)."""
        strata = self.settings.texture_strata
        if g is None or strata == 1 or g.count == 1:
            return -1
        return (g.updates * self.settings.views_per_step + slot) % strata

    def in_silhouette_phase(self, step_index: int) -> bool:
        """Whether step `step_index` lies in the first `silhouette_fraction` of the steps."""
        return step_index < self.settings.silhouette_fraction * self.settings.steps

    def silhouette_only(self) -> bool:
        """Whether vertices are charged coverage differences only at this step:
        during a joint fit's silhouette phase."""
        return (self.texture_group.enabled and self.positions_group in self.active
                and self.in_silhouette_phase(self.step_index))

    def _laplacian_pass(self, source, result, transpose: int, rest) -> None:
        g = self.positions_group
        self.backend.dispatch(K.LAPLACIAN, K.LAPLACIAN.groups(g.width, g.rows),
                              images={"result": result},
                              samplers={"values": source, "adjacency_range": self.adjacency_range,
                                        "adjacency": self.adjacency, "rest": rest},
                              constants={"count_total": g.count, "transpose": transpose})

    def regularize(self) -> None:
        """The smoothness gradient L^T (L x - L x0) into `regularizer_grad`."""
        g = self.positions_group
        self._laplacian_pass(g.theta, self.laplacian_delta, 0, self.laplacian_rest)
        self._laplacian_pass(self.laplacian_delta, self.regularizer_grad, 1, self.laplacian_zero)

    def adam_step(self, substep0: int, substeps: int, visit: bool = False) -> None:
        s = self.settings
        pixels = float(self.width * self.height)
        decay = self.lr_scale(self.step_index)
        for g in self.active:
            g.updates += 1  # Adam's step count, for the bias corrections
            t = g.updates
            # Warm-up: Adam's first updates move every touched parameter by
            # about the full rate whatever its gradient (it is divided by its
            # own size), which wrecks a fit that was already right.
            warmup = min(1.0, t / s.warmup_steps) if s.warmup_steps > 0 else 1.0
            rate = g.lr * decay * warmup
            if visit:
                # The exact residual asks nothing of a finished fit, and has no
                # noise to average away: SART's relaxation stays whole.
                rate = s.texture_rate(True, visit=True)
            flags = K.ADAM_CLAMP01 if g.clamp01 else 0
            if g is self.normal_group:
                flags |= K.ADAM_UNIT_NORMAL
            if g.sensitivity:
                flags |= K.FLAG_SENSITIVITY
                if visit and self.visits_by_weights:
                    flags |= K.ADAM_SHARED_SENSITIVITY
            scale = 1.0 / (2.0 * g.eps * substeps * pixels)
            if g is self.texture_group or (g in (self.material_group, self.normal_group) and g.count > 1):
                scale *= s.texture_strata  # a texel is perturbed in 1 sub-step of `strata`
            if s.estimator == "full_image":
                flags |= K.FLAG_FULL_IMAGE
            elif s.normalize == "count":
                flags |= K.ADAM_PER_COUNT
                scale = 1.0 / (2.0 * g.eps)
            regularized = g is self.positions_group and self.use_regularizer
            if regularized:
                flags |= K.ADAM_REGULARIZER
            worklist = g is self.texture_group and self.worklist_groups is not None
            if worklist:
                flags |= K.ADAM_WORKLIST
            groups = ((self.visit_worklist_groups if visit else self.worklist_groups) if worklist
                      else K.ADAM_STEP.groups(g.width, g.rows))
            self.backend.dispatch(
                K.ADAM_STEP, groups,
                images={"theta": g.theta, "moment1": g.moment1, "moment2": g.moment2,
                        "grad": g.grad, "count": g.counts, "global_acc": self.global_acc,
                        "worklist": self.worklist, "worklist_length": self.worklist_length},
                samplers={"regularizer_grad": self.regularizer_grad if regularized else g.theta},
                constants={"seed": s.seed, "substep0": substep0, "substeps": substeps,
                           "salt": g.salt, "count_total": g.count, "flags": flags,
                           "bias1": 1.0 / (1.0 - s.beta1 ** t), "bias2": 1.0 / (1.0 - s.beta2 ** t),
                           "lr": rate, "grad_scale": scale,
                           # A visit's residual is exact: its update is its own, not a running mean.
                           "beta1": 0.0 if visit else s.beta1, "beta2": s.beta2,
                           "reg_weight": self.regularizer_weight if regularized else 0.0,
                           "damping": self.visit_damping(g) if visit else 0.0})
            if worklist:
                self.backend.clear(self.worklist_length, 0)
        if s.estimator == "full_image":
            self.backend.clear(self.global_acc, 0)

    def visit_damping(self, group) -> float:
        """SART_DAMPING in the units of the visit's sensitivity sums: a
        bilinear weight (charged by weights) or |c+ - c-|, 2 eps times it."""
        return SART_DAMPING * (1.0 if self.visits_by_weights else 2.0 * group.eps)

    @staticmethod
    def _worklist_groups(entries: int) -> tuple:
        """Work groups for adam_step over a worklist of at most `entries`."""
        lx, ly, _ = K.ADAM_STEP.local_size
        invocations = math.ceil(entries / K.WORKLIST_PER_INVOCATION)
        groups = math.ceil(invocations / (lx * ly))
        columns = min(groups, 1024)
        return (columns, math.ceil(groups / columns), 1)

    # One step -----------------------------------------------------------------
    def choose_view(self) -> int:
        """Steps and SART visits go round the views in shuffled rounds, each
        view once a round: drawn independently, a view could wait dozens of
        visits while others came twice (blob-stripes-1k: 33.8 -> 34.3 dB)."""
        if not self._view_round:
            self._view_round = [int(v) for v in self._rng.permutation(len(self.scene.views))]
        return self._view_round.pop()

    def substep(self, substep: int, slot: int, view_index: int, offset: tuple | None = None,
                visit: bool = False) -> None:
        """P, R+, R-, G for one (view, perturbation) pair. With `antialias`,
        both renders move by one random sub-pixel offset, so over the steps
        every texel in a pixel's footprint is read and charged (a pixel-centre
        sample skips most texels of a minified texture, which then overfit
        the target views). `offset`: this one instead; `visit`: a SART
        visit's sub-step (accumulate_gradient)."""
        if offset is None:
            offset = self._jitter_offset()
        self._timed("P", self.perturb, substep)
        self.stratum = self.texture_stratum(slot)
        self.material_stratum = self.map_stratum(self.material_group, slot)
        self.normal_stratum = self.map_stratum(self.normal_group, slot)
        pair = self.pair_render_applies()
        if pair:
            self._timed("R±", self.rasterize, self.render_pair, view_index, 1, substep, offset, False, True)
        else:
            self._timed("R+", self.rasterize, self.render_plus, view_index, 1, substep, offset)
            self._timed("R-", self.rasterize, self.render_minus, view_index, -1, substep, offset)
        self._timed("G", self.accumulate_gradient, substep, slot, view_index, pair, visit)

    def _jitter_offset(self) -> tuple:
        """A step's random sub-pixel offset, drawn from the pixel filter
        (Workbench's points by weight, or the Gaussian); none without antialias."""
        if not self.settings.antialias:
            return (0.0, 0.0)
        if self.workbench:
            point = self.jitter_points[self._jitter_rng.choice(len(self.jitter_weights), p=self.jitter_weights)]
            return (float(point[0]), float(point[1]))
        jitter = np.clip(self._jitter_rng.normal(0.0, self.settings.filter_sigma, 2), -FILTER_RADIUS, FILTER_RADIUS)
        return (float(jitter[0]), float(jitter[1]))

    def _begin_visit(self) -> tuple:
        """A SART visit: choose a view, and draw the points its charges use,
        by weight. Its first steps render the view's filtered render of the
        current texels into its running mean, a filter point a step (the
        weighted mean, in the loss's space, as its engine averages); the rest
        charge the mean's residual, a point a step."""
        view = self.choose_view()
        offsets, weights, charges = self._visit_filter()
        p = np.asarray(weights, np.float64) / float(np.sum(weights))
        order = self._jitter_rng.choice(len(p), size=charges, p=p)
        return view, (offsets, weights), [offsets[i] for i in order], self.step_index

    def _visit_filter(self) -> tuple:
        """(offsets, weights) of a visit's mean (without antialias: the
        pixel centre), and how many of its points the visit charges."""
        offsets, weights = self._sample_points(self.settings.antialias, self.visit_samples)
        return offsets, weights, min(self.settings.visit_points or len(offsets), len(offsets))

    def checkpoint_interval(self) -> int:
        """Steps between checkpoints: `check_every`, or about 10 a run; 5 for
        a fit in SART visits throughout, whose texels improve steadily and
        where a checkpoint (4 renders of each view) costs as much as 2-3
        visits: 10 took a sixth of a 16-view fit's time."""
        visits_only = self.visits and self.shape_end() is None
        return self.settings.checkpoint_interval(5 if visits_only else 10)

    def visiting(self) -> bool:
        """Whether this step belongs to a SART visit: every step of a
        texture-only fit in visits, a joint fit's from its shape phase's end."""
        end = self.shape_end()
        return self.visits and (end is None or self.step_index >= end or self._visit is not None)

    @property
    def visit_length(self) -> int:
        """Steps a SART visit takes: one per two filter points of its mean, then one per charged point."""
        offsets, _, charges = self._visit_filter()
        return mean_steps(len(offsets)) + charges

    def _mean_step(self, view: int, offsets, weights, k: int) -> None:
        """Filter points 2k and 2k + 1 of a visit's mean: two renders, one
        pass mixing both into the view's running mean (a pass per point cost
        ~5 ms more each at 256 x 256 on llvmpipe)."""
        i = 2 * k
        rates = [weights[j] / float(np.sum(weights[:j + 1])) for j in range(i, min(i + 2, len(offsets)))]
        colors = []
        for j, target in zip(range(i, i + len(rates)), (self.render_plus, self.render_minus)):
            self._timed("R", self.rasterize, target, view, 0, 0, offsets[j])
            colors.append({"color": self.backend.target_textures(target)["color"]})
        # mix(mix(m, c1, r1), c2, r2) = mix(m, mix(c1, c2, share), rate)
        rate = 1.0 - float(np.prod([1.0 - r for r in rates]))
        share = rates[1] / rate if len(rates) == 2 else 0.0
        self._residual_target(view, colors[0], colors[-1], rate=rate, flags=K.FLAG_MEAN_ONLY, share=share)

    def _visit_step(self) -> None:
        """One step of a SART visit: two filter points of the view's mean, or
        a charge of its residual; the visit's last step updates the texels.
        Each step is at most two renders, so a UI tick never waits on a whole filter."""
        if self._visit is None:
            self._visit = self._begin_visit()
        view, (offsets, weights), points, first = self._visit
        k = self.step_index - first
        means = mean_steps(len(offsets))
        self.active = (self.texture_group,)
        if k < means:
            self._mean_step(view, offsets, weights, k)
        else:
            j = k - means
            if self.visits_by_weights:
                self.stratum = -1
                self._timed("R", self.rasterize, self.render_plus, view, 0, 0, points[j])
                self._timed("G", self.accumulate_gradient, self.step_index, j, view, False, True)
            else:
                self.substep(self.step_index, j, view, offset=points[j], visit=True)
        self.step_index += 1
        if k + 1 == means + len(points) or self.step_index >= self.settings.steps:
            if k >= means:
                self._timed("Adam", self.adam_step, first + means, k + 1 - means, True)
            self._visit = None

    def step(self) -> None:
        """One Adam step over `views_per_step` (view, perturbation) pairs, or
        one sub-step of a SART visit (`visits`)."""
        if self.step_index == self.shape_end():
            self.begin_shape_choice()
        elif self.step_index == self.early_shape_check():
            self.begin_shape_choice(early=True)
        elif self._pending is not None:
            self.continue_checkpoint()
        if self.visiting():
            self._visit_step()
            return
        k = self.settings.views_per_step
        substep0 = self.step_index * k
        self.active = self.perturbed_groups(self.step_index)
        for j in range(k):
            self.substep(substep0 + j, j, self.choose_view())
        self.step_index += 1
        if self.use_regularizer and self.positions_group in self.active:
            self._timed("Laplacian", self.regularize)
        self._timed("Adam", self.adam_step, substep0, k)

    # Readback -----------------------------------------------------------------
    def take_loss_estimate(self) -> float | None:
        """Mean per-pixel loss (squared error summed over RGBA) of the perturbed
        renders since the last call; None if no step ran since."""
        if self.loss_substeps == 0:
            return None
        total = float(self.backend.read_fixed(self.loss_acc, 1)[0, 0, 0])
        self.backend.clear(self.loss_acc, 0)
        mean = total / (self.loss_substeps * self.width * self.height)
        self.loss_substeps = 0
        return mean

    def read_gradients(self) -> dict:
        """The raw accumulators (sum of dL * s per parameter, and counts); for tests."""
        out = {}
        for name, g in (("positions", self.positions_group), ("texture", self.texture_group),
                        ("material", self.material_group), ("normal", self.normal_group)):
            if g is None or not g.enabled:
                continue
            grad = self.backend.read_fixed(g.grad, g.rows)[..., 0].reshape(g.rows, g.width, 3)
            counts = self.backend.read(g.counts)[..., 0]
            if name == "positions":
                grad = grad.reshape(-1, 3)[: g.count]
                counts = counts.reshape(-1)[: g.count]
            out[name] = grad
            out[name + "_count"] = counts
            if g.sensitivity:
                sens = self.backend.read_fixed(g.grad, g.rows, row0=2 * g.rows)[..., 0]
                out[name + "_sensitivity"] = sens.reshape(g.rows, g.width, 3)
        out["global"] = self.backend.read_fixed(self.global_acc, 1)[0, :, 0]
        return out

    def clear_gradients(self) -> None:
        for g in self.groups:
            if g.enabled:
                self.backend.clear(g.grad, 0)
                self.backend.clear(g.counts, 0)
        self.backend.clear(self.global_acc, 0)
        self.backend.clear(self.loss_acc, 0)
        self.backend.clear(self.worklist_length, 0)
        self.loss_substeps = 0

    def positions(self) -> np.ndarray:
        g = self.positions_group
        return self.backend.read(g.theta).reshape(-1, 4)[: g.count, :3].copy()

    def material(self) -> np.ndarray | None:
        """A lit fit's material map (h, w, 4): roughness, metallic, specular level."""
        return None if self.material_group is None else self.backend.read(self.material_group.theta)

    def normal_map(self) -> np.ndarray | None:
        """A lit fit's normal map (h, w, 4) as stored: (x, y, z) / 2 + 1/2, alpha 1."""
        return None if self.normal_group is None else self.backend.read(self.normal_group.theta)

    def texture(self) -> np.ndarray:
        return self.backend.read(self.texture_group.theta)

    def render(self, view_index: int) -> dict:
        """Render the current parameters: colour (H, W, 4), id (H, W) int, uv (H, W, 2)."""
        self.rasterize(self.render_plus, view_index)
        tex = self.backend.target_textures(self.render_plus)
        return {"color": self.backend.read(tex["color"]),
                "id": np.rint(self.backend.read(tex["id"])[..., 0]).astype(np.int64),
                "uv": self.backend.read(tex["uv"])[..., :2]}

    def _sample_points(self, antialias: bool, samples: tuple | None) -> tuple:
        """(offsets, weights) of a render's sub-pixel samples: `samples`, by
        default the antialiasing ones, or the pixel centre alone."""
        if not antialias:
            return ((0.0, 0.0),), (1.0,)
        return samples or (self.antialias_offsets, self.antialias_weights)

    def render_color(self, view_index: int, antialias: bool = False, samples: tuple | None = None,
                     candidate: bool = False) -> np.ndarray:
        """The colour (H, W, 4) of the current parameters (or the checkpoint
        candidate's); `antialias`: the weighted mean of renders at the
        (offsets, weights) `samples` (by default the antialiasing ones), as
        Blender's engines filter pixels; for Workbench a mean of log2(c + 1),
        as its TAA accumulates. Averaged on the GPU (score_view): one read-back."""
        self.score_view(view_index, antialias, samples, candidate)
        return self.backend.read(self.score_sum)

    def evaluate(self, keep_color: bool = False) -> list:
        """Per-view MSE (mean over pixels and RGBA) and PSNR of the current
        parameters, antialiased when the settings say so (Workbench's filter:
        the 9 points a visit's mean renders; all 22 took 5 s of a 16-view
        fit's start and as much at its end); with `keep_color`, each view's
        render too ("color")."""
        results = []
        for i, view in enumerate(self.scene.views):
            mse = self.score_view(i, self.settings.antialias, self.visit_samples)
            results.append({"view": view.name, "mse": mse, "psnr": psnr(mse)})
            if keep_color:
                results[-1]["color"] = self.backend.read(self.score_sum)  # the render score_view left
        return results

    def score_view(self, view_index: int, antialias: bool = False, samples: tuple | None = None,
                   candidate: bool = False, coverage: bool = False) -> float:
        """The MSE of `render_color`'s image (same arguments) against the
        view's target in the loss's space (`loss_encoded`), over RGBA or, with
        `coverage`, alpha alone; computed on the GPU (score.glsl), so only the
        total is read back."""
        offsets, weights = self._sample_points(antialias, samples)
        base = self.loss_flag() | (K.SCORE_LOG_MEAN if antialias and self.workbench else 0)
        base |= K.SCORE_COVERAGE if coverage else 0
        total = float(sum(weights))
        color = self.backend.target_textures(self.render_plus)["color"]
        last = len(offsets) - 1
        for k, (offset, weight) in enumerate(zip(offsets, weights)):
            self.rasterize(self.render_plus, view_index, offset=offset, candidate=candidate)
            flags = base | (K.SCORE_FIRST if k == 0 else 0) | (K.SCORE_FINISH if k == last else 0)
            self.backend.dispatch(K.SCORE, K.SCORE.groups(self.width, self.height),
                                  images={"running_sum": self.score_sum, "score_acc": self.score_acc},
                                  samplers={"color": color, "target": self.targets[view_index]},
                                  constants={"image_size": (self.width, self.height), "flags": flags,
                                             "weight": float(weight) / total})
        error = float(self.backend.read_fixed(self.score_acc, 1)[0, 0, 0])
        self.backend.clear(self.score_acc, 0)
        return max(error, 0.0) / (self.width * self.height * (1 if coverage else 4))

    # Keeping the best -----------------------------------------------------------
    def checkpoint(self) -> float:
        """Score the current parameters on every target view now; if they beat
        the best so far, they become each group's `best` (on the GPU).
        Returns their loss."""
        self.begin_checkpoint()
        return self.continue_checkpoint(len(self.scene.views))

    def begin_checkpoint(self, on_done=None, coverage: bool = False) -> None:
        """Start scoring a copy of the current parameters a view per step
        (`continue_checkpoint`), while the steps go on: a full scoring at once
        would stall a UI tick for many renders. When scored, `on_done(loss,
        step)` runs; by default the copy becomes the best if it beats it.
        `coverage`: score the alpha channel only."""
        for g in self._optimized_groups():
            if g.candidate is None:
                g.candidate = self.backend.texture(g.width, g.rows, "RGBA32F")
            self._copy(g, g.theta, g.candidate)
        self._score_candidate(self.step_index, on_done or self._keep_if_best, coverage)

    def _score_candidate(self, step: int, on_done, coverage: bool = False) -> None:
        """Score the candidate textures as they are, a view per `continue_checkpoint`."""
        self._pending = {"step": step, "view": 0, "mse": [], "done": on_done, "coverage": coverage}

    @property
    def checkpoint_pending(self) -> bool:
        return self._pending is not None

    def continue_checkpoint(self, views: int = 1) -> float | None:
        """Score `views` more target views of the pending candidate; after the
        last, run its `on_done` and return its loss (None before)."""
        p = self._pending
        for _ in range(views):
            if p["view"] >= len(self.scene.views):
                break
            p["mse"].append(self._checkpoint_mse(p["view"], candidate=True, coverage=p["coverage"]))
            p["view"] += 1
        if p["view"] < len(self.scene.views):
            return None
        self._pending = None
        loss = float(np.mean(p["mse"]))
        p["done"](loss, p["step"])
        return loss

    def _checkpoint_mse(self, view_index: int, candidate: bool = False, coverage: bool = False) -> float:
        """One target view's MSE as checkpoints score it (CHECKPOINT_OFFSETS, the loss's encoding)."""
        return self.score_view(view_index, self.settings.antialias, self.checkpoint_samples, candidate=candidate,
                               coverage=coverage)

    def _keep_if_best(self, loss: float, step: int) -> None:
        # A start that already fits (FINISHED_PSNR) is replaced only by a
        # clear gain, `start_margin_db`: a finished asset rerun must come back as it was,
        # not nudged towards where our renders and the targets' engine differ
        # (from the true texture, 1.2 dB better by our renders, 34 dB from
        # the truth by Workbench's).
        if self.best_step is None:
            self._start_step, beats = step, True
        elif self.best_step == self._start_step and psnr(self.best_loss) >= FINISHED_PSNR:
            beats = loss < 10.0 ** (-self.settings.start_margin_db / 10.0) * self.best_loss
        else:
            beats = loss < self.best_loss
        if beats:
            self.best_loss, self.best_step = loss, step
            for g in self._optimized_groups():
                g.best, g.candidate = g.candidate, g.best

    def checkpoint_loss(self) -> float:
        """Mean MSE of the current parameters over the target views, as a checkpoint scores it."""
        return float(np.mean([self._checkpoint_mse(i) for i in range(len(self.scene.views))]))

    def loss_encoded(self, color: np.ndarray) -> np.ndarray:
        """A linear render or target as the loss compares it: clamped, then sRGB-encoded for an sRGB
        texture, or log2(c + 1) with Workbench's filter."""
        return loss_space(color, self.loss_srgb, self.workbench)  # as G compares (common.glsl)

    def restore_best(self) -> bool:
        """Put the best checkpoint's parameters back; True if they differ
        from the current ones."""
        if self.best_step is None or self.best_step == self.step_index:
            return False
        for g in self._optimized_groups():
            self._copy(g, g.best, g.theta)
        return True

    def _optimized_groups(self) -> list:
        return [g for g in self.groups if g.enabled]

    def _copy(self, group: ParamGroup, source, destination) -> None:
        """Copy one of `group`'s parameter textures into another."""
        self.backend.dispatch(K.COPY, K.COPY.groups(group.width, group.rows),
                              images={"source": source, "destination": destination},
                              samplers={}, constants={})

