"""The sub-pixel samples renders take: the per-step jitter, antialiased
renders, checkpoints and SART visits, all drawn from the targets' pixel
filter (a Gaussian, or Workbench's TAA points: engine/pixel_filter.py)."""
from __future__ import annotations

import numpy as np

from .pixel_filter import workbench_points

FILTER_RADIUS = 1.5  # Gaussian jitter offsets are clipped to it (pixels)
ANTIALIAS_COUNT = 8  # Gaussian points of an antialiased render (evaluation, capture, overlay)
CHECKPOINT_COUNT = 4  # ... and of a checkpoint's, which scores while a run goes on
# Filtered renders leave out the faintest filter points weighing this share in all.
FAINT_WEIGHT = 1e-3
# A SART visit's mean leaves out more: 7 % of Workbench's weight, 9 renders not 22 (docs/decisions/visit-faint-weight.md).
VISIT_FAINT_WEIGHT = 7e-2


def gaussian_offsets(count: int, sigma: float) -> tuple:
    """`count` sub-pixel offsets spread as the pixel filter: equal-probability
    rings of a 2D Gaussian, turned by the golden angle."""
    k = np.arange(count) + 0.5
    radius = sigma * np.sqrt(-2.0 * np.log(1.0 - k / count))
    angle = k * np.pi * (3.0 - np.sqrt(5.0))
    return tuple((float(x), float(y)) for x, y in zip(radius * np.cos(angle), radius * np.sin(angle)))


def without_faint_points(points: np.ndarray, weights: np.ndarray, share: float = FAINT_WEIGHT) -> tuple:
    """A pixel filter's (points, weights) less its faintest points, which
    together weigh at most `share` of it: Workbench's 8 samples have 6 of 28
    points at 1e-4 of the weight in all, so a filtered render costs 22 renders
    and errs by less than that share."""
    order = np.argsort(weights, kind="stable")
    faint = set(order[np.cumsum(weights[order]) <= share * weights.sum()].tolist())
    kept = [i for i in range(len(weights)) if i not in faint]
    return points[kept], weights[kept] / weights[kept].sum()


def jittered(view_projection: np.ndarray, dx: float, dy: float, width: int, height: int) -> np.ndarray:
    """`view_projection` moved by (dx, dy) pixels on screen: clip x += w * 2 dx / width."""
    m = np.array(view_projection, np.float32)
    m[0] += np.float32(2.0 * dx / width) * m[3]
    m[1] += np.float32(2.0 * dy / height) * m[3]
    return m


PIXEL_CENTRE = (((0.0, 0.0),), (1.0,))


class FilterSamples:
    """(offsets, weights) of each kind of filtered render, and the jitter.

    For Workbench the pixel reads c(p + d) at its points d, so a render moved
    by -d shows it there."""

    def __init__(self, settings, seed_rng: np.random.Generator):
        self.antialias_enabled = settings.antialias
        self.sigma = settings.filter_sigma
        self.workbench = settings.pixel_filter == "workbench"
        self._rng = seed_rng
        if self.workbench:
            filter_points = workbench_points(settings.workbench_samples)
            points, weights = without_faint_points(*filter_points)
            self._jitter_points, self._jitter_weights = -points, weights
            strongest = np.argsort(-weights, kind="stable")[:CHECKPOINT_COUNT]
            self.antialias = (tuple(map(tuple, -points)), tuple(weights))
            self.checkpoint = (tuple(tuple(-points[i]) for i in strongest), tuple(weights[strongest]))
            points, weights = without_faint_points(*filter_points, VISIT_FAINT_WEIGHT)
            self.visit = (tuple(map(tuple, -points)), tuple(weights))
        else:
            self.antialias = (gaussian_offsets(ANTIALIAS_COUNT, self.sigma), (1.0,) * ANTIALIAS_COUNT)
            self.checkpoint = (gaussian_offsets(CHECKPOINT_COUNT, self.sigma), (1.0,) * CHECKPOINT_COUNT)
            self.visit = self.antialias

    def points(self, antialias: bool, samples: tuple | None = None) -> tuple:
        """(offsets, weights) of a render's samples: `samples` (by default the
        antialiasing ones), or the pixel centre alone without `antialias`."""
        if not antialias:
            return PIXEL_CENTRE
        return samples or self.antialias

    def jitter(self) -> tuple:
        """A step's random sub-pixel offset, drawn from the pixel filter
        (Workbench's points by weight, or the Gaussian); none without antialias."""
        if not self.antialias_enabled:
            return (0.0, 0.0)
        if self.workbench:
            point = self._jitter_points[self._rng.choice(len(self._jitter_weights), p=self._jitter_weights)]
            return (float(point[0]), float(point[1]))
        jitter = np.clip(self._rng.normal(0.0, self.sigma, 2), -FILTER_RADIUS, FILTER_RADIUS)
        return (float(jitter[0]), float(jitter[1]))

    def draw_points(self, offsets: tuple, weights: tuple, count: int) -> list:
        """`count` of `offsets` drawn by weight (a SART visit's charged points)."""
        p = np.asarray(weights, np.float64) / float(np.sum(weights))
        order = self._rng.choice(len(p), size=count, p=p)
        return [offsets[i] for i in order]
