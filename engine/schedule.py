"""The run's schedule, pure (no GPU): which phase step i is in, which
groups it perturbs, its learning-rate scale, each sub-step's texel stratum,
and the order the views come in.

A joint fit (positions and texture) has phases: the silhouette phase moves
the vertices alone, charged coverage differences only; then vertices and
texture take turns; from the shape's end the texture settles alone, in SART
visits. The early shape check may end the shape phase at the silhouette
phase's end (see `Schedule.early_shape_check`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SubStep:
    """One (view, perturbation) pair of a step, handed to P, R and G.

    index: the global sub-step number (the perturbation keys' counter);
    slot: its place in the step (G's per-view sums); groups: the names of
    the groups it perturbs and charges; strata: each map group's texel
    parity class (-1: every texel); offset: the renders' sub-pixel shift;
    silhouette_only: vertices are charged coverage differences alone;
    visit: a SART visit's charge (the residual of the view's filtered mean)."""
    index: int
    slot: int
    view: int
    groups: tuple
    strata: dict
    offset: tuple = (0.0, 0.0)
    silhouette_only: bool = False
    visit: bool = False

    def stratum(self, name: str) -> int:
        return self.strata.get(name, -1)


class Schedule:
    """Phases, groups, rates and strata of a run of `settings.steps` steps.

    `joint`: positions and texture are both fitted (a joint fit has phases)."""

    def __init__(self, settings, joint: bool):
        self.settings = settings
        self.joint = joint
        self.early_shape_end = None  # set when the early shape check keeps the start's shape

    def shape_end(self) -> int | None:
        """The step where a joint fit's shape phase ends and the texture
        settles alone (earlier if the early shape check kept the start's);
        None if there is no such phase."""
        s = self.settings
        if self.joint and s.shape_fraction < 1:
            return self.early_shape_end if self.early_shape_end is not None else int(round(s.shape_fraction * s.steps))
        return None

    def early_shape_check(self) -> int | None:
        """The step of a joint fit's early shape check, where the silhouette
        phase ends: if the fitted vertices do not cover the targets better
        than the start's, the start's come back and the shape phase ends
        there (a shape that was right leaves the texture the rest of the
        steps), while a coarse start goes on to `shape_fraction`."""
        s, end = self.settings, self.shape_end()
        step = int(round(s.silhouette_fraction * s.steps))
        return step if end is not None and self.early_shape_end is None and 0 < step < end else None

    def in_silhouette_phase(self, step: int) -> bool:
        """Whether step `step` lies in the first `silhouette_fraction` of the steps."""
        return step < self.settings.silhouette_fraction * self.settings.steps

    def silhouette_only(self, step: int, groups: tuple) -> bool:
        """Whether vertices are charged coverage differences only at `step`
        (a joint fit's silhouette phase) when it perturbs `groups`."""
        return self.joint and "positions" in groups and self.in_silhouette_phase(step)

    def groups(self, step: int, enabled: tuple) -> tuple:
        """The names of the groups that step `step` perturbs and updates, of
        the `enabled` ones (in order): all, or with `alternate_groups` one a
        step, taking turns (a vertex's 1-pixel nudge would drown a texel's
        signal in the same step); a joint fit's silhouette phase moves the
        positions alone (coverage does not depend on the texels); after the
        shape phase the texture goes alone."""
        end = self.shape_end()
        if end is not None and step >= end:
            return ("texture",)
        if len(enabled) > 1 and self.settings.alternate_groups:
            if end is not None and self.in_silhouette_phase(step):
                return ("positions",)
            return (enabled[step % len(enabled)],)
        return tuple(enabled)

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

    def stratum(self, updates: int, slot: int, stratified: bool = True) -> int:
        """The texel parity class sub-step `slot` perturbs and charges of a
        map group that has taken `updates` Adam steps (-1: every texel),
        counted over the group's own steps so that alternating groups still
        visit all four; -1 for a group that is not `stratified`."""
        strata = self.settings.texture_strata
        if strata == 1 or not stratified:
            return -1
        return (updates * self.settings.views_per_step + slot) % strata

    def visiting(self, step: int, visits: bool, visit_open: bool) -> bool:
        """Whether step `step` belongs to a SART visit: every step of a
        texture-only fit in visits, a joint fit's from its shape phase's end
        (and the rest of a visit already open)."""
        end = self.shape_end()
        return visits and (end is None or step >= end or visit_open)

    def checkpoint_interval(self, visits_only: bool) -> int:
        """Steps between checkpoints: `check_every`, or about 10 a run; 5 for
        a fit in SART visits throughout (docs/decisions/checkpoint-interval.md)."""
        return self.settings.checkpoint_interval(5 if visits_only else 10)


class ViewOrder:
    """Steps and SART visits go round the `views` (indices) in shuffled
    rounds, each view once a round (docs/decisions/view-rounds.md)."""

    def __init__(self, views: list, rng: np.random.Generator):
        self.views = list(views)
        self._rng = rng
        self._round = []  # the views still to come this round

    def next(self) -> int:
        if not self._round:
            self._round = [self.views[int(i)] for i in self._rng.permutation(len(self.views))]
        return self._round.pop()


def validation_views(count: int, asked: int, seed: int) -> tuple:
    """The target views set aside to judge checkpoints (never charged):
    `asked` of the `count`, or with -1 one for 6 to 11 targets, two for 12
    or more, none below 6 (too few to spare). Spread over the views and
    fixed by the seed."""
    n = asked if asked >= 0 else (0 if count < 6 else 1 if count < 12 else 2)
    if n == 0:
        return ()
    if n >= count:
        raise ValueError(f"{n} validation views leave no target view of {count} to fit")
    offset = int(np.random.default_rng([seed, 2]).integers(count))
    return tuple(sorted((offset + (i * count) // n) % count for i in range(n)))


def validation_rule(names: list, validation: tuple, asked: int) -> str:
    """What judges the checkpoints, in words: the `validation` views of the
    targets `names`, or why none are set aside (`asked`: the setting)."""
    if validation:
        held = ", ".join(names[i] for i in validation)
        return f"{len(validation)} of {len(names)} target views set aside, never fitted, judge the checkpoints ({held})"
    why = "validation views 0" if asked == 0 else f"{len(names)} targets, fewer than 6"
    return f"no view set aside ({why}): the checkpoints are judged on the targets"
