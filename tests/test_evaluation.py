"""A small version of lab/evaluate.py: targets and scoring views rendered
by Blender's Workbench, targets attached as camera backgrounds, the fit
scored on views that were not targets. The full table is in the README."""
from __future__ import annotations

import scenes
import numpy as np
import pytest

from sge_optimizer.engine import Settings


@pytest.fixture
def workbench(empty_scene):
    yield  # each case builds its own scene; the fixture resets after


def test_texture_fit_holds_on_views_that_were_not_targets(workbench):
    case = scenes.Case("small-texture", "torus", "noise", 64, 6, held_out=3, resolution=96)
    result = scenes.run_case(case, Settings(steps=200), snapshots=0)
    assert result.held_after > result.held_before + 4.0, result
    # No overfitting to the target views: held-out views score about as well
    # (here 43.8 against 46.2 dB; the failure this guards against was 28
    # against 48).
    assert result.held_after > 40.0, result
    assert result.target_after - result.held_after < 3.0, result
    assert result.iou_after == 1.0  # texture-only: the shape is untouched


def test_joint_fit_from_the_true_shape_keeps_it(workbench):
    case = scenes.Case("small-joint", "torus", "noise", 64, 6, held_out=3, resolution=96,
                           optimize="both")
    result = scenes.run_case(case, Settings(steps=160), snapshots=0)
    assert result.shape_kept == "start"
    assert result.iou_after >= 0.995, result
    assert result.held_after > result.held_before + 2.0, result


def test_a_rerun_on_a_finished_fit_keeps_it(workbench):
    """Starting from the answer, a run hands back the start or something as good."""
    case = scenes.Case("small-rerun", "torus", "noise", 64, 6, held_out=3, resolution=96,
                           optimize="both", start="answer")
    result = scenes.run_case(case, Settings(steps=60), snapshots=0)
    # The answer renders as the Workbench does (held_before is inf here): a keep is
    # exact, and the bar (0.05 dB) leaves no room for a step that loses.
    assert result.held_after >= result.held_before - 0.05, result
    assert result.tool_psnr[1] >= result.tool_psnr[0] - 0.05, result


def test_lit_fit_holds_on_views_eevee_renders(workbench):
    """Lit targets and held-out views rendered by EEVEE (a sun, a point light,
    a grey world; shadows off); a lit fit of the albedo from flat grey must
    improve the held-out views and come closer to the true albedo."""
    case = scenes.Case("small-lit", "torus", "noise", 32, 4, held_out=2, resolution=64,
                           render="eevee", lit=True, eevee_samples=4)
    result = scenes.run_case(case, Settings(steps=80), snapshots=0, score_targets=False)
    assert np.isfinite(result.tool_psnr).all(), result
    assert result.held_after > result.held_before + 3.0, result
    before, after = result.albedo_rmse
    assert np.isfinite(after) and after < 0.8 * before, result
    assert result.iou_after == 1.0
