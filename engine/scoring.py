"""Scoring renders against the targets on the GPU (score.glsl), and the
queue that scores snapshots a view per step for keep-best and the shape
choice, first in first out, so that no request is dropped."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import gpu_kernels as K
from .color import psnr


class Scorer:
    """MSE of a (filtered) render of the parameters, or of a snapshot,
    against a view's target, in the loss's space; only the total is read back."""

    def __init__(self, backend, scene, raster, samples, loss, targets: list):
        self.backend, self.scene, self.raster, self.samples, self.loss = backend, scene, raster, samples, loss
        self.targets = targets
        self.width, self.height = scene.resolution
        self.sum = backend.texture(self.width, self.height, "RGBA32F")  # the running sum of a view's samples
        self.acc = backend.texture(1, 2, "R32I")  # its total error

    def score_view(self, view: int, antialias: bool = False, samples: tuple | None = None,
                   snapshot=None, coverage: bool = False) -> float:
        """The MSE over RGBA (or alpha alone with `coverage`) of the weighted
        mean of renders at `samples` (antialias: by default the antialiasing
        ones; else the pixel centre), as Blender's engines filter pixels; for
        Workbench a mean of log2(c + 1), as its TAA accumulates. The mean
        stays in `sum` (render_color reads it)."""
        offsets, weights = self.samples.points(antialias, samples)
        base = self.loss.flag() | (K.SCORE_LOG_MEAN if antialias and self.loss.workbench else 0)
        base |= K.SCORE_COVERAGE if coverage else 0
        total = float(sum(weights))
        color = self.backend.target_textures(self.raster.plus)["color"]
        last = len(offsets) - 1
        for k, (offset, weight) in enumerate(zip(offsets, weights)):
            self.raster.draw(self.raster.plus, view, offset=offset, snapshot=snapshot)
            flags = base | (K.SCORE_FIRST if k == 0 else 0) | (K.SCORE_FINISH if k == last else 0)
            self.backend.dispatch(K.SCORE, K.SCORE.groups(self.width, self.height),
                                  images={"running_sum": self.sum, "score_acc": self.acc},
                                  samplers={"color": color, "target": self.targets[view]},
                                  constants={"image_size": (self.width, self.height), "flags": flags,
                                             "weight": float(weight) / total})
        error = float(self.backend.read_fixed(self.acc, 1)[0, 0, 0])
        self.backend.clear(self.acc, 0)
        return max(error, 0.0) / (self.width * self.height * (1 if coverage else 4))

    def checkpoint_mse(self, view: int, snapshot=None, coverage: bool = False) -> float:
        """One target view's MSE as checkpoints score it (the checkpoint samples)."""
        return self.score_view(view, self.samples.antialias_enabled, self.samples.checkpoint, snapshot, coverage)

    def evaluate(self, keep_color: bool = False) -> list:
        """Per-view MSE and PSNR of the current parameters, antialiased when
        the settings say so (a visit's filter points); with `keep_color`
        each view's render too ("color")."""
        results = []
        for i, view in enumerate(self.scene.views):
            mse = self.score_view(i, self.samples.antialias_enabled, self.samples.visit)
            results.append({"view": view.name, "mse": mse, "psnr": psnr(mse)})
            if keep_color:
                results[-1]["color"] = self.backend.read(self.sum)  # the render score_view left
        return results


@dataclass
class ScoringJob:
    """A snapshot scored a view at a time; `done(loss, step)` runs when every view is."""
    snapshot: object
    step: int
    done: object
    coverage: bool = False
    owner: object = None  # who queued it (ScoringQueue.cancel)
    mse: list = field(default_factory=list)


class ScoringQueue:
    """Snapshots waiting to be scored, first in first out: `advance` scores
    the next view of the oldest one, so a UI tick never stalls on a whole
    scoring. Keep-best's checkpoints and the shape choice share it."""

    def __init__(self, scorer: Scorer, views: tuple):
        self.scorer, self.views = scorer, tuple(views)  # the views that judge: validation, or every target
        self.jobs = deque()

    def __len__(self) -> int:
        return len(self.jobs)

    def submit(self, snapshot, step: int, done, coverage: bool = False, owner=None) -> ScoringJob:
        job = ScoringJob(snapshot, step, done, coverage, owner)
        self.jobs.append(job)
        return job

    def cancel(self, owner) -> None:
        """Take `owner`'s jobs out unscored (a choice made moot; not keep-best's)."""
        self.jobs = deque(job for job in self.jobs if job.owner is not owner)

    def advance(self, views: int = 1) -> float | None:
        """Score `views` more views of the oldest job; when its last is
        scored, run its `done` and return its loss (None before)."""
        if not self.jobs:
            return None
        job = self.jobs[0]
        for _ in range(views):
            if len(job.mse) >= len(self.views):
                break
            view = self.views[len(job.mse)]
            job.mse.append(self.scorer.checkpoint_mse(view, job.snapshot, job.coverage))
        if len(job.mse) < len(self.views):
            return None
        self.jobs.popleft()
        loss = float(np.mean(job.mse))
        job.done(loss, job.step)
        return loss

    def drain(self) -> None:
        """Score every queued job to its end."""
        while self.jobs:
            self.advance(len(self.views))


# A start scoring this PSNR on its targets counts as finished: a run must beat
# it by `Settings.start_margin_db` to replace it (docs/decisions/finished-psnr.md).
FINISHED_PSNR = 30.0


class KeepBest:
    """The best snapshot seen at the checkpoints (the first is the start's).

    A start that already fits (FINISHED_PSNR) is replaced only by a clear
    gain, `start_margin_db`: a finished asset rerun must come back as it was,
    not nudged towards where our renders and the targets' engine differ."""

    def __init__(self, params, start_margin_db: float):
        self.params, self.start_margin_db = params, start_margin_db
        self.best = None  # the Snapshot kept
        self.loss = float("inf")
        self.step = None
        self.start_step = None
        self.history = []  # (step, loss) of every snapshot offered, in order

    def beats(self, loss: float) -> bool:
        if self.step is None:
            return True
        if self.step == self.start_step and psnr(self.loss) >= FINISHED_PSNR:
            return loss < 10.0 ** (-self.start_margin_db / 10.0) * self.loss
        return loss < self.loss

    def since_best(self) -> int:
        """Checkpoints scored since the best one (0: the last one is the best)."""
        return sum(1 for step, _ in self.history if self.step is not None and step > self.step)

    def offer(self, snapshot, loss: float, step: int) -> bool:
        """Keep `snapshot` if it beats the best (it is then owned here; else released)."""
        self.history.append((step, loss))
        if self.step is None:
            self.start_step = step
        if not self.beats(loss):
            self.params.release(snapshot)
            return False
        self.params.release(self.best)
        self.best, self.loss, self.step = snapshot, loss, step
        return True
