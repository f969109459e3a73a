"""The two stories, asserted with numbers: oscillations, stalls, overshoot, arrival, bursts."""

from __future__ import annotations

import numpy as np
import pytest

from lrlab.surfaces import SCENARIOS, ScenarioResult, run_scenario, run_trajectory
from lrlab.surfaces.scenarios import along_overshoot, late_max_across_step, settled_step, sideways_bursts


@pytest.fixture(scope="module")
def ravine() -> ScenarioResult:
    return run_scenario("ravine-story")


@pytest.fixture(scope="module")
def valley() -> ScenarioResult:
    return run_scenario("valley-story")


def test_every_claim_of_both_stories_holds(ravine: ScenarioResult, valley: ScenarioResult) -> None:
    for result in (ravine, valley):
        failed = [f"{f.claim}: {f.evidence}" for f in result.findings if not f.holds]
        assert not failed


# ---------------------------------------------------------------- the ravine


def test_gd_oscillates_across_the_ravine_at_every_step(ravine: ScenarioResult) -> None:
    gd = ravine.by_label("GD lr=0.25")
    assert gd.oscillations == gd.steps - 1
    assert np.all(np.abs(gd.points[1:, 1]) == 1.0)  # wall to wall, never lower


def test_gd_stalls_while_its_gradient_stays_large(ravine: ScenarioResult) -> None:
    gd = ravine.by_label("GD lr=0.25")
    last_half = slice(gd.steps // 2, None)
    assert gd.losses[gd.steps // 2] / gd.losses[-1] < 1.001  # no progress in the second half
    assert gd.final_loss > 3.9  # ... far above the minimum (0)
    assert gd.grad_norms[last_half].min() > 7.9  # ... while |grad| stays ~ its start value 8.06
    assert gd.steps_to_tol is None


def test_momentum_overshoots_but_arrives_sooner(ravine: ScenarioResult) -> None:
    gd, mom = ravine.by_label("GD lr=0.25"), ravine.by_label("momentum 0.9 lr=0.05")
    assert along_overshoot(gd) == 0.0
    assert along_overshoot(mom) > 0.3  # passes x = 0 by a third of a unit
    assert mom.steps_to_tol is not None and mom.steps_to_tol < 100
    assert mom.oscillations > 10


def test_nesterov_corrects_the_overshoot(ravine: ScenarioResult) -> None:
    mom, nag = ravine.by_label("momentum 0.9 lr=0.05"), ravine.by_label("Nesterov 0.9 lr=0.05")
    assert along_overshoot(nag) < 0.75 * along_overshoot(mom)
    assert nag.oscillations <= 3 < mom.oscillations
    assert nag.steps_to_tol < 0.6 * mom.steps_to_tol


def test_adaptive_methods_take_the_direct_line(ravine: ScenarioResult) -> None:
    gd, mom = ravine.by_label("GD lr=0.25"), ravine.by_label("momentum 0.9 lr=0.05")
    for label in ("RMSprop lr=0.1", "Adagrad lr=1", "Adam lr=0.1"):
        traj = ravine.by_label(label)
        assert traj.oscillations <= 3
        assert traj.straightness > 0.95 > mom.straightness > gd.straightness
        # The start is 1 across: a direct path travels ~1, momentum's zigzag ~8, GD's 600.
        assert traj.across_travel < 2.0 < 0.25 * mom.across_travel
        assert traj.steps_to_tol is not None


# ---------------------------------------------------------------- the valley


@pytest.mark.parametrize(("label", "quiet"), [("RMSprop lr=0.2", 100), ("AdaGrad (lecture) lr=0.5", 40)])
def test_rmsprop_and_adagrad_burst_sideways_after_settling_on_the_floor(
    valley: ScenarioResult, label: str, quiet: int
) -> None:
    plain = valley.by_label(label)
    settled = settled_step(plain)
    bursts = sideways_bursts(plain)
    assert settled is not None and settled < 20
    assert len(bursts) >= 5 and bursts[0] > settled + quiet  # long after settling, suddenly
    assert late_max_across_step(plain) > 1.0  # a jump of more than a quarter of the box
    # Sudden: the step before the first burst was tiny compared with the burst.
    assert plain.across_steps[bursts[0] - 5] < 0.01 * late_max_across_step(plain)


def test_the_bursts_follow_the_shrinking_squared_gradient_average(valley: ScenarioResult) -> None:
    plain = valley.by_label("RMSprop lr=0.2")
    first = sideways_bursts(plain)[0]
    v_across = plain.second_moment[: first - 1, 1]
    assert v_across[-1] < 0.25 * v_across.max()
    assert 0.2 / np.sqrt(v_across.max()) < 2 / 10 < 0.2 / np.sqrt(v_across[-1])  # crosses 2/curvature


def test_the_lecture_adagrad_bursts_as_its_mean_square_shrinks(valley: ScenarioResult) -> None:
    lecture = valley.by_label("AdaGrad (lecture) lr=0.5")
    first = sideways_bursts(lecture)[0]
    mean_square = lecture.second_moment[:first, 1] / np.arange(1, first + 1)  # it keeps the sum
    assert mean_square[-1] < 0.05 * mean_square[0]
    assert 0.5 / np.sqrt(mean_square[0]) < 2 / 10 < 0.5 / np.sqrt(mean_square[-1])


@pytest.mark.parametrize(
    ("label", "constant"),
    [("RMSprop + cosine decay", "RMSprop lr=0.2"), ("RMSprop + exponential decay", "RMSprop lr=0.2"),
     ("AdaGrad (lecture) + exponential decay", "AdaGrad (lecture) lr=0.5")],
)  # fmt: skip
def test_a_decay_schedule_removes_the_bursts(valley: ScenarioResult, label: str, constant: str) -> None:
    plain, decayed = valley.by_label(constant), valley.by_label(label)
    assert sideways_bursts(decayed) == []
    assert late_max_across_step(decayed) < 0.05 * late_max_across_step(plain)
    assert decayed.steps_to_tol is not None and decayed.steps_to_tol < 60  # and still arrives
    assert decayed.lrs[-1] < 0.2 * decayed.lrs[0]


def test_torch_adagrad_does_not_burst_because_its_sum_only_grows(valley: ScenarioResult) -> None:
    adagrad = valley.by_label("Adagrad lr=2 (torch)")
    assert np.all(np.diff(adagrad.second_moment[:, 1]) >= 0)
    assert sideways_bursts(adagrad) == []


def test_without_a_long_floor_there_is_no_burst() -> None:
    # The same optimizer stopped before the squared-gradient average has shrunk: no burst yet.
    early = run_trajectory("valley", "rmsprop(lr=0.2)", steps=120)
    assert sideways_bursts(early) == []


def test_unknown_scenario_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid scenarios: ravine-story, valley-story"):
        run_scenario("plateau")
    assert set(SCENARIOS) == {"ravine-story", "valley-story"}
