"""A joint fit's shape choice: at the shape phase's end (and at the early
shape check) the fitted vertices are scored against the start's on
coverage, and the start's come back unless the fitted ones clearly cover
the targets better: a shape that was right stays exactly right."""
from __future__ import annotations

from .params import copy_texture

# A joint fit keeps its fitted shape only if its coverage error is below the
# start's divided by this (docs/decisions/shape-margin.md).
SHAPE_MARGIN = 1.25
# The early shape check ends the shape phase only if the fitted vertices do
# not cover the targets better than the start's at all.
EARLY_SHAPE_MARGIN = 1.0


class ShapeChoice:
    """Coverage, not colour: with the texture still settling, colour would
    favour vertices that hide its errors. `clock()` gives the current step."""

    def __init__(self, backend, params, schedule, queue, clock):
        self.backend, self.params, self.schedule, self.queue, self.clock = backend, params, schedule, queue, clock
        g = params.positions
        self.start = backend.texture(g.width, g.rows, "RGBA32F")
        copy_texture(backend, g, g.theta, self.start)
        self.scores = []  # each choice's coverage errors (start, fitted)
        self.kept = None  # "fitted" or "start", once chosen
        self.pending = None  # the snapshot of the choice being scored

    def begin(self, step: int, early: bool = False) -> None:
        """Queue the fitted vertices' coverage scoring, then the start's (same
        texture copy); `early`: a fitted shape that wins goes on moving, a
        start that wins ends the shape phase now. The shape's end supersedes
        an early check still being scored."""
        self.cancel()
        g = self.params.positions
        snapshot = self.pending = self.params.snapshot()

        def chosen(start: float, fitted: float) -> None:
            self.cancel()
            keep_start = start <= (EARLY_SHAPE_MARGIN if early else SHAPE_MARGIN) * fitted
            now = self.clock()
            self.scores.append({"step": now, "start": start, "fitted": fitted, "early": early})
            if early and not keep_start:
                return  # the shape phase goes on; the usual choice comes at its end
            if early:
                self.schedule.early_shape_end = now  # texture alone from this step
            if keep_start:  # positions no longer move, so the swap loses nothing
                copy_texture(self.backend, g, self.start, g.theta)
            self.kept = "start" if keep_start else "fitted"

        def fitted_scored(fitted: float, at: int) -> None:
            copy_texture(self.backend, g, self.start, snapshot.textures[g.name])
            self.queue.submit(snapshot, at, lambda start, _step: chosen(start, fitted), coverage=True, owner=self)

        self.queue.submit(snapshot, step, fitted_scored, coverage=True, owner=self)

    def cancel(self) -> None:
        """Drop the choice being scored, if any (superseded, or the run ended before it was made)."""
        if self.pending is not None:
            self.queue.cancel(self)
            self.params.release(self.pending)
            self.pending = None
