"""SART visits: one view at a time with its whole pixel filter. The
visit's first steps render the view's filtered mean of the current texels
(two filter points a step, into its running mean); the rest charge the
mean's exact residual, a drawn filter point a step; its last step updates
the texels once. Each step is at most two renders, so a UI tick never
waits on a whole filter."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import gpu_kernels as K


def mean_steps(points: int) -> int:
    """Steps of a SART visit's mean over `points` filter points: two a step."""
    return (points + 1) // 2


@dataclass
class Visit:
    view: int
    offsets: tuple  # the mean's filter points
    weights: tuple
    points: list  # the points it charges, drawn by weight
    first: int  # its first step


class Visits:
    """The open visit and how a visit's steps run (`step`)."""

    def __init__(self, settings, samples, views, raster, gradient, update, timer, by_weights: bool):
        self.settings, self.samples, self.views = settings, samples, views
        self.raster, self.gradient, self.update, self.timer = raster, gradient, update, timer
        self.by_weights = by_weights  # charge by bilinear weights from one plain render
        self.current = None  # the open Visit

    def filter(self) -> tuple:
        """(offsets, weights) of a visit's mean (without antialias: the pixel
        centre), and how many of its points the visit charges."""
        offsets, weights = self.samples.points(self.settings.antialias, self.samples.visit)
        return offsets, weights, min(self.settings.visit_points or len(offsets), len(offsets))

    @property
    def length(self) -> int:
        """Steps a visit takes: one per two filter points of its mean, then one per charged point."""
        offsets, _, charges = self.filter()
        return mean_steps(len(offsets)) + charges

    def begin(self, step: int) -> Visit:
        """Choose a view and draw the points its charges use, by weight."""
        view = self.views.next()
        offsets, weights, charges = self.filter()
        return Visit(view, offsets, weights, self.samples.draw_points(offsets, weights, charges), step)

    def _mean_step(self, visit: Visit, k: int) -> None:
        """Filter points 2k and 2k + 1 of the mean: two renders, one pass
        mixing both into the view's running mean."""
        offsets, weights, i = visit.offsets, visit.weights, 2 * k
        rates = [weights[j] / float(np.sum(weights[:j + 1])) for j in range(i, min(i + 2, len(offsets)))]
        colors = []
        for j, target in zip(range(i, i + len(rates)), (self.raster.plus, self.raster.minus)):
            self.timer("R", self.raster.draw, target, visit.view, 0, None, offsets[j])
            colors.append({"color": self.raster.backend.target_textures(target)["color"]})
        # mix(mix(m, c1, r1), c2, r2) = mix(m, mix(c1, c2, share), rate)
        rate = 1.0 - float(np.prod([1.0 - r for r in rates]))
        share = rates[1] / rate if len(rates) == 2 else 0.0
        self.gradient.residual_target(visit.view, colors[0], colors[-1], rate=rate, flags=K.FLAG_MEAN_ONLY,
                                      share=share)

    def step(self, step: int, last_step: int, substep, charge_sub) -> bool:
        """Step `step` of the open visit (opening one if none): a mean step
        or a charge (`substep(sub)` runs a perturbed one; `charge_sub(index,
        slot, view, offset, stratum)` makes its SubStep record). Returns True
        when the visit closed (its update ran, if it charged anything)."""
        if self.current is None:
            self.current = self.begin(step)
        visit = self.current
        k = step - visit.first
        means = mean_steps(len(visit.offsets))
        if k < means:
            self._mean_step(visit, k)
        else:
            j = k - means
            sub = charge_sub(step, j, visit.view, visit.points[j], -1 if self.by_weights else None)
            if self.by_weights:  # one plain render (lit: its gain too, into the pair target)
                lit = self.raster.lit is not None
                target = self.raster.pair if lit else self.raster.plus
                self.timer("R", self.raster.draw, target, visit.view, 0, None, sub.offset, gain=lit)
                plus = self.raster.backend.target_textures(target)
                self.timer("G", self.gradient.accumulate, sub, plus, plus, 1.0, True, lit)
            else:
                substep(sub)
        if k + 1 == means + len(visit.points) or step + 1 >= last_step:
            if k >= means:
                self.timer("Adam", self.update.adam_step, ("texture",), visit.first + means, k + 1 - means, 1.0,
                           True)
            self.current = None
            return True
        return False
