"""The run's schedule (engine/schedule.py) is pure: tested without a GPU."""
from __future__ import annotations

import numpy as np
import pytest

from sge_optimizer.engine.schedule import Schedule, ViewOrder, validation_views
from sge_optimizer.engine.scene import Settings

BOTH = ("positions", "texture")


def test_a_joint_fit_has_a_silhouette_phase_turns_and_a_texture_phase():
    schedule = Schedule(Settings(steps=100, silhouette_fraction=0.4, shape_fraction=0.8), joint=True)
    assert schedule.shape_end() == 80 and schedule.early_shape_check() == 40
    assert [schedule.groups(i, BOTH) for i in (0, 39)] == [("positions",)] * 2  # coverage first
    assert [schedule.groups(i, BOTH) for i in (40, 41)] == [("positions",), ("texture",)]  # then turns
    assert schedule.groups(80, BOTH) == schedule.groups(99, BOTH) == ("texture",)
    assert schedule.silhouette_only(39, ("positions",)) and not schedule.silhouette_only(40, ("positions",))
    assert schedule.visiting(80, visits=True, visit_open=False) and not schedule.visiting(79, True, False)
    assert schedule.visiting(79, visits=True, visit_open=True)  # a visit begun goes on
    schedule.early_shape_end = 52  # the early check kept the start's shape
    assert schedule.shape_end() == 52 and schedule.early_shape_check() is None
    assert schedule.groups(52, BOTH) == ("texture",)


def test_without_alternation_or_phases_every_group_steps():
    schedule = Schedule(Settings(steps=10, alternate_groups=False, shape_fraction=1.0), joint=True)
    assert schedule.shape_end() is None and schedule.early_shape_check() is None
    assert schedule.groups(3, BOTH) == BOTH
    single = Schedule(Settings(steps=10, optimize_positions=False), joint=False)
    assert single.groups(3, ("texture",)) == ("texture",) and single.shape_end() is None
    assert not single.silhouette_only(0, ("texture",))


def test_the_rate_decays_over_each_phase():
    s = Settings(steps=100, lr_decay=0.05, shape_fraction=0.8)
    joint = Schedule(s, joint=True)
    assert joint.lr_scale(0) == 1.0 and joint.lr_scale(80) == pytest.approx(0.05)
    assert joint.lr_scale(81) == pytest.approx(0.05 ** (1 / 20))  # the texture phase starts again
    assert joint.lr_scale(100) == pytest.approx(0.05)
    single = Schedule(s, joint=False)
    assert single.lr_scale(50) == pytest.approx(0.05 ** 0.5)


def test_strata_cycle_over_a_groups_own_updates():
    schedule = Schedule(Settings(views_per_step=2, texture_strata=4), joint=False)
    assert [schedule.stratum(u, slot) for u in range(3) for slot in range(2)] == [0, 1, 2, 3, 0, 1]
    assert schedule.stratum(5, 1, stratified=False) == -1  # a 1 x 1 map of constants: every texel
    assert Schedule(Settings(texture_strata=1), joint=False).stratum(5, 1) == -1


def test_checkpoints_come_about_ten_a_run_or_five_in_visits():
    assert Schedule(Settings(steps=1200), joint=True).checkpoint_interval(visits_only=False) == 120
    assert Schedule(Settings(steps=1260), joint=False).checkpoint_interval(visits_only=True) == 252
    assert Schedule(Settings(steps=1200, check_every=7), joint=True).checkpoint_interval(False) == 7


def test_views_come_in_shuffled_rounds():
    order = ViewOrder(range(5), np.random.default_rng(0))
    rounds = [sorted(order.next() for _ in range(5)) for _ in range(4)]
    assert rounds == [list(range(5))] * 4  # each view once a round
    again = ViewOrder(range(5), np.random.default_rng(0))
    first = [again.next() for _ in range(10)]
    assert first != sorted(first)  # shuffled


def test_a_view_order_goes_round_the_views_it_is_given():
    order = ViewOrder([0, 2, 3], np.random.default_rng(1))
    assert sorted(order.next() for _ in range(3)) == [0, 2, 3]


def test_validation_views_are_set_aside_only_with_enough_targets():
    assert validation_views(5, -1, 0) == ()  # too few to spare one
    assert len(validation_views(6, -1, 0)) == 1 and len(validation_views(11, -1, 0)) == 1
    twelve = validation_views(12, -1, 0)
    assert len(twelve) == 2 and abs(twelve[1] - twelve[0]) == 6  # spread over the views
    assert validation_views(12, -1, 0) == twelve  # fixed by the seed
    assert validation_views(12, 0, 0) == () and len(validation_views(4, 3, 0)) == 3
    with pytest.raises(ValueError, match="no target view"):
        validation_views(3, 3, 0)
