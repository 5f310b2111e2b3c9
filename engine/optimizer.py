"""The per-pixel SGE fit: P, R+, R-, G and the update on a GPU backend,
wired from parts with one job each (params, schedule, raster, gradient,
update, visits, scoring, shape). Parameters, gradients and Adam moments live
in GPU textures for the whole run; only the read-backs leave it."""
from __future__ import annotations

import numpy as np

from .. import gpu_kernels as K
from .frames import ShadingFrames
from .gradient import Gradient, LossSpace
from .params import (PARAM_WIDTH, SALT_MATERIAL, SALT_NORMAL, SALT_POSITIONS, SALT_TEXTURE, ParamGroup, Parameters,
                     pack_rows, perturb, stored_unit_normals)
from .raster import Rasterizer
from .samples import FilterSamples
from .schedule import Schedule, SubStep, ViewOrder, validation_rule, validation_views
from .scene import SceneArrays, Settings
from .scoring import KeepBest, Scorer, ScoringQueue
from .shape import ShapeChoice
from .timing import PassTimer
from .update import LargeSteps, Smoothness, Update, worklist_groups
from .visits import Visits


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


def build_parameters(backend, scene: SceneArrays, settings: Settings, sart: bool) -> Parameters:
    """The fit's groups: positions and texture, and a lit fit's material and normal maps."""
    s, mesh, lit = settings, scene.mesh, scene.lit
    eps_pos = s.eps_positions or pixel_world_size(scene)
    lr_pos = s.lr_positions or 0.002 * mesh.bounding_diagonal
    groups = [ParamGroup(backend, "positions", pack_rows(mesh.positions, PARAM_WIDTH), len(mesh.positions),
                         SALT_POSITIONS, eps_pos, lr_pos, clamp01=False, enabled=s.optimize_positions,
                         perturbed_copies=True)]
    tex = np.clip(np.asarray(scene.texture, np.float32), 0.0, 1.0)
    groups.append(ParamGroup(backend, "texture", tex, tex.shape[0] * tex.shape[1], SALT_TEXTURE, s.eps_texture,
                             s.texture_rate(sart), clamp01=True, enabled=s.optimize_texture, perturbed_copies=False,
                             sensitivity=sart))
    channels = 0
    if lit is not None:
        # Roughness and metallic: one group (a 1 x 1 map for constants), charged
        # the whole pixel difference (FLAG_COUPLED), its channels masked.
        material = np.ascontiguousarray(lit.material, np.float32)
        channels = (1 if s.optimize_roughness else 0) | (2 if s.optimize_metallic else 0)
        groups.append(ParamGroup(backend, "material", material, material.shape[0] * material.shape[1], SALT_MATERIAL,
                                 s.eps_material, s.lr_material, clamp01=True, enabled=channels != 0,
                                 perturbed_copies=False))
        # The normal map: x, y per texel (z follows), perturbed where R reads it.
        normal = np.full((1, 1, 4), (0.5, 0.5, 1.0, 1.0), np.float32)  # flat
        if s.optimize_normal:
            normal = stored_unit_normals(lit.normal_map)
        elif lit.normal_map is not None:
            normal = np.concatenate([lit.normal_map[..., :3], np.ones(lit.normal_map.shape[:2] + (1,))], -1)
        normal = np.ascontiguousarray(normal, np.float32)
        groups.append(ParamGroup(backend, "normal", normal, normal.shape[0] * normal.shape[1], SALT_NORMAL,
                                 s.eps_normal, s.lr_normal, clamp01=False, enabled=s.optimize_normal,
                                 perturbed_copies=False))
    return Parameters(backend, groups, channels)


def check_inputs(scene: SceneArrays, settings: Settings) -> None:
    settings.validate()
    lit = scene.lit
    if settings.lit != (lit is not None):
        raise ValueError("Settings.lit asks for a lit fit but the scene has no lights and material (SceneArrays.lit)"
                         if settings.lit else "the scene is lit (SceneArrays.lit): set Settings.lit")
    if lit is None:
        return
    if settings.optimize_normal and lit.normal_map is None:
        raise ValueError("fitting the normal map needs one: the material has no normal-map image "
                         "(SceneArrays.lit.normal_map)")
    if len(lit.camera_positions) != len(scene.views):
        raise ValueError(f"a lit fit needs one camera position per view: {len(lit.camera_positions)} "
                         f"for {len(scene.views)} views")


class Engine:
    """A fit: `step()` until `settings.steps`, scoring checkpoints on the way."""

    def __init__(self, backend, scene: SceneArrays, settings: Settings):
        check_inputs(scene, settings)
        s = settings
        self.backend, self.scene, self.settings = backend, scene, settings
        self.step_index = 0
        # SART texels need each pixel's difference to be one texel's: per-pixel
        # charging, one perturbed texel a footprint, and an unlit fit or, with
        # lit_visits, no other lit map moving (a lit pixel is then affine in the
        # base colour: FLAG_TEXEL_GAIN).
        maps = s.optimize_roughness or s.optimize_metallic or s.optimize_normal
        lit_ok = scene.lit is None or (s.lit_visits and not maps)
        sart = s.texture_update == "sart" and lit_ok and s.estimator == "per_pixel" and s.texture_strata == 4
        self.params = p = build_parameters(backend, scene, settings, sart)
        self.schedule = Schedule(settings, joint=p.positions.enabled and p.texture.enabled)
        # Validation views judge the checkpoints and are never charged; the rest are fitted.
        self.validation = validation_views(len(scene.views), s.validation_views, s.seed)
        self.training = [i for i in range(len(scene.views)) if i not in self.validation]
        self.views = ViewOrder(self.training, np.random.default_rng(s.seed))
        self.samples = FilterSamples(settings, np.random.default_rng([s.seed, 1]))
        self.timer = PassTimer(backend)
        self.loss = LossSpace(scene.texture_srgb and not self.samples.workbench, self.samples.workbench)
        self.loss_targets = [self.loss.encoded(np.clip(v.target, 0, 1)) for v in scene.views]  # as scored, once
        w, h = scene.resolution
        self.targets = [backend.texture(w, h, "RGBA32F", t) for t in self.loss_targets]
        # SART visits: a texture-only fit's steps from the first, a joint fit's from its shape's end.
        self.visits_enabled = (p.texture.sensitivity and s.sart_visits and s.optimize_texture
                               and (not s.optimize_positions or self.schedule.shape_end() is not None))
        by_weights = self.visits_enabled and s.visit_charge == "weights"
        # Texels touched since the last update: at most 8 per pixel and sub-step (a visit's: every texel).
        per_pixel_texture = s.optimize_texture and s.estimator == "per_pixel"
        step_capacity = min(p.texture.count, 8 * w * h * s.views_per_step) if per_pixel_texture else 1
        capacity = p.texture.count if self.visits_enabled else step_capacity
        # A lit fit's shading frames: Blender's, or recomputed from each draw's positions when they move.
        frames = (ShadingFrames(backend, scene.mesh, scene.lit.frames, moving=p.positions.enabled)
                  if scene.lit is not None else None)
        self.gradient = Gradient(backend, scene, settings, p, self.loss, self.targets, capacity,
                                 running_means=s.running_residual > 0 or self.visits_enabled, frames=frames)
        self.raster = Rasterizer(backend, scene, p, s.seed, with_pair=scene.lit is not None or s.optimize_texture,
                                 material_channels=p.material_channels, frames=frames)
        smoothness = (Smoothness(backend, p.positions, scene.mesh, s.smoothness)
                      if s.optimize_positions and s.smoothness > 0 else None)
        large_steps = (LargeSteps(backend, p.positions, scene.mesh, s.large_steps)
                       if s.optimize_positions and s.large_steps > 0 else None)
        self.update = Update(backend, settings, p, self.gradient, w * h, smoothness,
                             worklist_groups(step_capacity) if per_pixel_texture else None,
                             worklist_groups(capacity) if self.visits_enabled else None, by_weights,
                             lit=scene.lit is not None, large_steps=large_steps)
        self.visits = Visits(settings, self.samples, self.views, self.raster, self.gradient, self.update,
                             self.timer, by_weights)
        self.scorer = Scorer(backend, scene, self.raster, self.samples, self.loss, self.targets)
        self.queue = ScoringQueue(self.scorer, self.validation or tuple(range(len(scene.views))))
        self.keep_best = KeepBest(p, s.start_margin_db)
        self.shape = (ShapeChoice(backend, p, self.schedule, self.queue, lambda: self.step_index)
                      if self.schedule.shape_end() is not None else None)
        # Snapshots at once: the best, a checkpoint's and a shape choice's (none allocated mid-run).
        p.reserve_snapshots((3 if self.shape is not None else 2) if s.keep_best else 1 if self.shape else 0)

    @property
    def parameter_count(self) -> int:
        return self.params.parameter_count

    def validation_rule(self) -> str:
        """What judges the checkpoints, in words (the summary and the panel say it)."""
        return validation_rule([v.name for v in self.scene.views], self.validation, self.settings.validation_views)

    @property
    def shape_kept(self) -> str | None:
        """A joint fit's shape choice: "fitted", "start", or None (none made)."""
        return self.shape.kept if self.shape is not None else None

    @property
    def shape_checks(self) -> list:
        """Each shape choice's step and coverage errors (start's, fitted's; early check or end)."""
        return list(self.shape.scores) if self.shape is not None else []

    # One step -----------------------------------------------------------------
    def make_substep(self, index: int, slot: int, view: int, offset: tuple | None = None, groups: tuple | None = None,
                     visit: bool = False, stratum: int | None = None) -> SubStep:
        """The record of sub-step `index` (slot `slot` of the current step):
        the groups the schedule perturbs now (or `groups`), each map's texel
        stratum (or `stratum` for every map), and a jitter offset drawn from
        the pixel filter unless given."""
        if groups is None:
            groups = self.schedule.groups(self.step_index, tuple(g.name for g in self.params.enabled()))
        if offset is None:
            offset = self.samples.jitter()
        strata = {g.name: self.schedule.stratum(g.updates, slot, g.stratified()) if stratum is None else stratum
                  for g in self.params.all if g.name != "positions"}
        return SubStep(index, slot, view, tuple(groups), strata, tuple(offset),
                       self.schedule.silhouette_only(self.step_index, groups), visit)

    def substep(self, sub: SubStep) -> None:
        """P, R+, R-, G for one (view, perturbation) pair."""
        r = self.raster
        self.timer("P", perturb, self.backend, self.params.positions, self.settings.seed, sub)
        pair = r.pair_applies(sub)
        if pair:
            self.timer("R±", r.draw, r.pair, sub.view, 1, sub, sub.offset, None, True)
        else:
            self.timer("R+", r.draw, r.plus, sub.view, 1, sub, sub.offset)
            self.timer("R-", r.draw, r.minus, sub.view, -1, sub, sub.offset)
        plus, minus = r.textures(pair)
        self.timer("G", self.gradient.accumulate, sub, plus, minus, self.schedule.lr_scale(self.step_index))

    def step(self) -> None:
        """One update over `views_per_step` (view, perturbation) pairs, or one
        step of a SART visit; the scoring queue advances a view first."""
        i, sched = self.step_index, self.schedule
        if i == sched.shape_end():
            self.shape.begin(i)
        elif i == sched.early_shape_check():
            self.shape.begin(i, early=True)
        elif len(self.queue):
            self.queue.advance()
        if sched.visiting(i, self.visits_enabled, self.visits.current is not None):
            self.visits.step(i, self.settings.steps, self.substep, self._visit_substep)
            self.step_index += 1
            self._queue_checkpoint()
            return
        k = self.settings.views_per_step
        groups = sched.groups(i, tuple(g.name for g in self.params.enabled()))
        for j in range(k):
            self.substep(self.make_substep(i * k + j, j, self.views.next(), groups=groups))
        self.step_index += 1
        if self.update.smoothness is not None and "positions" in groups:
            self.timer("Laplacian", self.update.smoothness.gradient)
        self.timer("Adam", self.update.adam_step, groups, i * k, k, sched.lr_scale(self.step_index))
        self._queue_checkpoint()

    def _queue_checkpoint(self) -> None:
        """Keep-best: a checkpoint every `checkpoint_interval` steps (none at
        the last: `finish` scores it), unless one is still being scored."""
        i = self.step_index
        if (self.settings.keep_best and i % self.checkpoint_interval() == 0 and i < self.settings.steps
                and not len(self.queue)):
            self.begin_checkpoint()

    def _visit_substep(self, index: int, slot: int, view: int, offset: tuple, stratum: int | None) -> SubStep:
        return self.make_substep(index, slot, view, offset, ("texture",), visit=True, stratum=stratum)

    def warm_up(self) -> None:
        """Have the driver compile, before the first step, the G variants and
        the pair draw this fit will use (llvmpipe compiles a kernel at its
        first use: mid-run, a hitch in the panel). G runs one work group
        with no group's flag: it charges nothing."""
        r = self.raster
        if r.pair is not None:
            r.draw(r.pair, 0, 0, None, (0.0, 0.0), None, True)
            if r.lit is not None and self.visits.by_weights:
                r.draw(r.pair, 0, gain=True)
        plus, minus = r.textures(r.pair is not None)
        sub = SubStep(0, 0, 0, (), {})
        for kind in sorted(self.gradient.charges(self.scene.lit is not None, self.visits.by_weights)):
            self.gradient.dispatch(self.gradient.kernel(kind), (1, 1, 1), K.FLAG_EFFECTIVE_TARGET | self.loss.flag(),
                                   plus, minus, self.targets[0], sub)

    # Checkpoints ----------------------------------------------------------------
    def checkpoint_interval(self) -> int:
        """Steps between checkpoints (fewer for a fit in SART visits throughout)."""
        return self.schedule.checkpoint_interval(self.visits_enabled and self.schedule.shape_end() is None)

    def begin_checkpoint(self, on_done=None):
        """Queue a snapshot of the current parameters for scoring a view per
        step while the steps go on (returns its ScoringJob). When scored,
        `on_done(loss, step)` runs; by default the snapshot becomes the best
        if it beats it."""
        snapshot = self.params.snapshot()
        if on_done is None:
            done = lambda loss, step: self.keep_best.offer(snapshot, loss, step)  # noqa: E731
        else:
            def done(loss, step):
                self.params.release(snapshot)
                on_done(loss, step)
        return self.queue.submit(snapshot, self.step_index, done)

    def checkpoint(self) -> float:
        """Score the current parameters on every target view now (after what
        the queue holds); if they beat the best so far they are kept. Returns their loss."""
        job = self.begin_checkpoint()
        self.queue.drain()
        return float(np.mean(job.mse))

    def start(self) -> None:
        """Before the first step: compile what the fit will use and, with
        keep-best, score the start (the first candidate: never hand back worse)."""
        self.warm_up()
        if self.settings.keep_best:
            self.checkpoint()

    def finish(self) -> int:
        """After the last step (or a cancel): with keep-best, score the end
        and put the best checkpoint back. Returns the step kept."""
        if self.shape is not None:
            self.shape.cancel()  # a shape choice the run ended before is not made: the checkpoints decide
        if not self.settings.keep_best:
            return self.step_index
        self.checkpoint()
        self.restore_best()
        return self.best_step

    def restore_best(self) -> bool:
        """Put the best checkpoint's parameters back; True if they differ from the current ones."""
        kb = self.keep_best
        if kb.step is None or kb.step == self.step_index:
            return False
        self.params.restore(kb.best)
        return True

    def converged(self) -> bool:
        """Whether `settings.patience` checkpoints in a row have not beaten
        keep-best's best: the run may end early (it keeps the best anyway)."""
        s = self.settings
        return s.keep_best and s.patience > 0 and self.keep_best.since_best() >= s.patience

    @property
    def best_step(self) -> int | None:
        return self.keep_best.step

    def checkpoint_loss(self) -> float:
        """Mean MSE of the current parameters over the judging views, as a checkpoint scores it."""
        return float(np.mean([self.scorer.checkpoint_mse(i) for i in self.queue.views]))

    # Read-back ------------------------------------------------------------------
    def evaluate(self, keep_color: bool = False) -> list:
        return self.scorer.evaluate(keep_color)

    def render(self, view: int) -> dict:
        return self.raster.render(view)

    def render_color(self, view: int, antialias: bool = False, samples: tuple | None = None) -> np.ndarray:
        """The colour (H, W, 4) of the current parameters, filtered as `Scorer.score_view` says."""
        self.scorer.score_view(view, antialias, samples)
        return self.backend.read(self.scorer.sum)

    def take_loss_estimate(self) -> float | None:
        return self.gradient.take_loss_estimate()

    def clear_gradients(self) -> None:
        self.gradient.clear()

    def read_gradients(self) -> dict:
        """The raw accumulators (sum of dL * s per parameter, counts, sensitivities); for tests."""
        return self.gradient.read_sums()

    def positions(self) -> np.ndarray:
        return self.params.positions.read(self.backend)

    def texture(self) -> np.ndarray:
        return self.params.texture.read(self.backend)

    def material(self) -> np.ndarray | None:
        """A lit fit's material map (h, w, 4): roughness, metallic, specular level."""
        return None if self.params.material is None else self.params.material.read(self.backend)

    def normal_map(self) -> np.ndarray | None:
        """A lit fit's normal map (h, w, 4) as stored: (x, y, z) / 2 + 1/2, alpha 1."""
        return None if self.params.normal is None else self.params.normal.read(self.backend)
