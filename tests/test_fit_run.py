"""The one run loop (`fit_run.drive`), on a stand-in run: no Blender data, no GPU."""
from __future__ import annotations

import pytest

from sge_optimizer.addon.fit_run import drive, run_stages


class FakeRun:
    """Records the calls `drive` makes; `advance` runs at most `max_steps` of `steps`."""

    def __init__(self, steps: int):
        self.steps, self.step, self.calls = steps, 0, []

    def start(self):
        self.calls.append("start")

    def advance(self, max_steps=None, budget_s=None):
        self.step = min(self.steps, self.step + (max_steps or self.steps))
        self.calls.append(f"advance {self.step}")
        return self.step >= self.steps

    def write_back(self):
        self.calls.append("write_back")

    def sample_loss(self):
        self.calls.append("loss")

    def finish(self):
        self.calls.append("finish")
        return {"steps": self.step}


def test_drive_starts_advances_a_slice_at_a_time_and_finishes():
    run = FakeRun(steps=5)
    between = []
    stages = drive(run, max_steps=2, between=lambda: between.append(run.step))
    assert run_stages(stages) == {"steps": 5}
    assert run.calls == ["start", "advance 2", "loss", "advance 4", "loss", "advance 5", "loss", "finish"]
    assert between == [2, 4]  # after each slice but the last


def test_drive_yields_after_the_start_and_each_slice_but_the_last_and_can_write_back():
    run = FakeRun(steps=3)
    stages = drive(run, max_steps=2, write_back=True)
    next(stages)
    assert run.calls == ["start"]
    next(stages)
    assert run.calls[1:] == ["advance 2", "write_back", "loss"]
    with pytest.raises(StopIteration) as end:
        next(stages)
    assert end.value.value == {"steps": 3}
    assert run.calls[4:] == ["advance 3", "write_back", "loss", "finish"]


def test_closing_drive_between_slices_stops_the_run_where_it_stands():
    run = FakeRun(steps=10)
    stages = drive(run, max_steps=1)
    next(stages)
    next(stages)
    stages.close()
    assert run.calls == ["start", "advance 1", "loss"]
