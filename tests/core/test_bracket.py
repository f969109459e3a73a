"""lrlab.core.bracket: which LR to try next, the fitted optimum and its interval, the power law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.bracket import bracket, fit_optimum, fit_power_law, grid_factor, mean_losses, next_lrs

NAN = float("nan")


def parabola(lr: float, optimum: float, depth: float = 1.0) -> float:
    return depth * math.log(lr / optimum) ** 2


def test_next_lrs_extends_the_open_edge_by_the_grids_factor():
    lrs = [0.01, 0.03, 0.09]
    assert next_lrs(lrs, [[3.0], [2.0], [1.0]]) == pytest.approx([0.27])
    assert next_lrs(lrs, [[1.0], [2.0], [3.0]]) == pytest.approx([0.01 / 3])
    assert next_lrs(lrs, [[2.0], [1.0], [3.0]]) == []
    # a diverged neighbour above the best closes the bracket: nothing more to try there
    assert next_lrs(lrs, [[2.0], [1.0], [NAN]]) == []
    assert next_lrs(lrs, [[2.0, 2.0], [1.0, math.inf], [NAN, 0.1]]) == pytest.approx([0.01 / 3])
    # every LR diverged: try below the smallest
    assert next_lrs(lrs, [[NAN], [NAN], [NAN]]) == pytest.approx([0.01 / 3])
    # one LR: both sides, the default factor
    assert next_lrs([0.1], [[1.0]]) == pytest.approx([0.1 / 3, 0.3])


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="differ in length"):
        next_lrs([0.1, 0.2], [[1.0]])
    with pytest.raises(ValueError, match="positive"):
        fit_optimum([0.0, 0.1], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="twice"):
        fit_optimum([0.1, 0.1], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="factor must be larger than 1"):
        next_lrs([0.1, 0.2], [[1.0], [2.0]], factor=1.0)
    with pytest.raises(ValueError, match="no losses"):
        fit_optimum([0.1, 0.2], [[1.0], []])


def test_mean_losses_is_infinite_where_a_seed_diverged():
    assert mean_losses([[1.0, 2.0], [1.0, NAN], [math.inf]]).tolist() == [1.5, math.inf, math.inf]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    optimum=st.floats(1e-4, 1.0),
    start=st.floats(1e-5, 10.0),
    factor=st.sampled_from([2.0, math.sqrt(2), 3.0]),
)
def test_bracket_finds_a_parabolas_vertex_from_any_start(optimum, start, factor):
    calls = []

    def evaluate(lrs):
        calls.append(list(lrs))
        return {lr: [parabola(lr, optimum)] for lr in lrs}

    result = bracket(evaluate, [start / factor, start, start * factor], max_extra=40)
    assert result.bracketed and result.edge is None
    # a quadratic in log LR is exact for a parabola in log LR
    assert result.lr == pytest.approx(optimum, rel=1e-3)
    assert result.low <= result.lr <= result.high
    # extensions go one LR at a time and continue the grid
    grid = np.log(sorted(lr for call in calls for lr in call))
    assert np.allclose(np.diff(grid), math.log(factor))


def test_bracket_stops_at_its_budget_and_says_so():
    result = bracket(lambda lrs: {lr: [-math.log(lr)] for lr in lrs}, [0.01, 0.03, 0.09], max_extra=2)
    assert not result.bracketed and result.edge == "high"
    assert result.lrs[-1] == pytest.approx(0.81)
    assert result.lr == result.best_lr == pytest.approx(0.81)
    assert result.low == pytest.approx(0.81) and result.high == math.inf
    assert "may lie higher" in result.reason and "the most allowed (2)" in result.reason


def test_bracket_stops_when_the_next_lr_diverges():
    def evaluate(lrs):
        return {lr: [NAN if lr > 0.2 else -math.log(lr)] for lr in lrs}

    result = bracket(evaluate, [0.01, 0.03, 0.09], max_extra=5)
    assert result.bracketed and result.best_lr == pytest.approx(0.09)
    assert result.lrs == pytest.approx((0.01, 0.03, 0.09, 0.27))
    # the bracket's upper side is the diverged LR: the optimum lies between 0.03 and 0.27
    assert 0.03 <= result.low <= result.lr <= result.high <= 0.27


def test_a_steeper_side_above_does_not_pull_the_optimum_down():
    # four times steeper above the optimum (towards divergence) than below, as LR curves are
    lrs = [0.01 * 2 ** (k / 2) for k in range(9)]
    true = 0.04 * 2**0.2

    def loss(lr):
        return math.log(lr / true) ** 2 * (4.0 if lr > true else 1.0)

    result = fit_optimum(lrs, [[loss(lr)] for lr in lrs])
    assert result.lr == pytest.approx(true, rel=0.01)
    assert "two half-parabolas" in result.reason


def test_the_optimum_never_lies_toward_a_diverged_neighbour():
    # the LR above the best diverged: the estimate stays within the LRs that have a loss
    nan = float("nan")
    for rows in ([[3.0], [2.0], [1.0], [nan]], [[2.0], [1.0], [nan]]):
        lrs = [0.001, 0.01, 0.1, 1.0][: len(rows)]
        result = fit_optimum(lrs, rows)
        assert result.bracketed
        assert result.lr == pytest.approx(result.best_lr)
    assert "the better of the 2 LRs with a loss" in result.reason


def test_over_three_lrs_the_interval_reaches_the_best_tried():
    # steep above, gentle below: the parabola's vertex lands below the best LR, the interval reaches it
    rows = [[0.0167, 0.0195, 0.0167], [0.0111, 0.0111, 0.0139], [0.0195, 0.0223, 0.0362]]
    result = fit_optimum([0.00955, 0.0286, 0.0859], rows)
    assert result.lr < result.best_lr == 0.0286
    assert result.low <= result.best_lr <= result.high


def test_a_negative_loss_is_not_divergence():
    result = fit_optimum([0.01, 0.03, 0.09], [[-5.0], [-9.0], [-6.0]])
    assert result.bracketed and result.best_lr == 0.03


def test_one_seed_interval_is_the_grids_resolution():
    lrs = [0.01, 0.02, 0.04, 0.08]
    result = fit_optimum(lrs, [[parabola(lr, 0.025)] for lr in lrs])
    half_step = math.log(2) / 2
    assert result.lr == pytest.approx(0.025, rel=1e-3)
    assert math.log(result.high / result.lr) == pytest.approx(half_step)
    assert math.log(result.lr / result.low) == pytest.approx(half_step)
    assert "one seed" in result.reason


def test_seed_noise_widens_the_interval_and_is_reproducible():
    rng = np.random.default_rng(3)
    lrs = [0.01 * 2 ** (k / 2) for k in range(9)]
    quiet = [[parabola(lr, 0.04) + 0.001 * rng.standard_normal() for _ in range(4)] for lr in lrs]
    noisy = [[parabola(lr, 0.04) + 0.5 * rng.standard_normal() for _ in range(4)] for lr in lrs]
    a, b = fit_optimum(lrs, quiet), fit_optimum(lrs, noisy)
    assert a.bracketed and b.bracketed
    assert a.width < b.width
    assert a.low <= 0.04 <= a.high
    assert fit_optimum(lrs, noisy) == b  # the bootstrap is seeded


def test_the_80_percent_interval_covers_about_80_percent():
    # 120 noisy parabolas with three seeds each: the interval is neither a point nor the whole grid
    rng = np.random.default_rng(0)
    lrs = [0.01 * 2 ** (k / 2) for k in range(9)]
    covered, widths = 0, []
    for _ in range(120):
        true = 0.04 * 2 ** rng.uniform(-0.5, 0.5)
        rows = [[parabola(lr, true) + 0.3 * rng.standard_normal() for _ in range(3)] for lr in lrs]
        result = fit_optimum(lrs, rows, n_boot=300)
        covered += result.low <= true <= result.high
        widths.append(result.width)
    assert 0.72 <= covered / 120 <= 0.95
    assert 1.2 < float(np.median(widths)) < 3.0


def test_edges_and_all_diverged():
    low = fit_optimum([0.01, 0.1, 1.0], [[1.0], [2.0], [3.0]])
    assert (low.edge, low.low, low.high) == ("low", 0.0, 0.01) and "may lie lower" in low.reason
    gone = fit_optimum([0.1, 1.0], [[NAN], [math.inf]])
    assert math.isnan(gone.lr) and not gone.bracketed and "every LR diverged" in gone.reason


def _optimum_at(lr_star: float, seeds: int = 3, noise: float = 0.02, seed: int = 0):
    rng = np.random.default_rng(seed)
    lrs = [lr_star * 2 ** (k / 2) for k in range(-4, 5)]
    return fit_optimum(
        lrs, [[parabola(lr, lr_star) + noise * rng.standard_normal() for _ in range(seeds)] for lr in lrs]
    )


def test_power_law_recovers_a_known_slope_and_covers_the_target():
    scales = [32, 64, 128]
    law = lambda w: 0.1 * (w / 32) ** -0.6  # noqa: E731
    optima = [_optimum_at(law(w), seed=i) for i, w in enumerate(scales)]
    fit = fit_power_law(scales, optima, 1024)
    assert fit.slope == pytest.approx(-0.6, abs=0.1)
    assert fit.slope_low < -0.6 < fit.slope_high or fit.slope == pytest.approx(-0.6, abs=0.05)
    assert fit.low <= law(1024) <= fit.high
    assert not fit.transfers_unchanged
    assert fit.predict(32) == pytest.approx(math.exp(fit.intercept + fit.slope * math.log(32)))


def test_power_law_says_unchanged_when_the_optimum_does_not_move():
    optima = [_optimum_at(0.01, seed=i, noise=0.1) for i in range(3)]
    fit = fit_power_law([1, 2, 4], optima, 16)
    assert fit.transfers_unchanged
    assert fit.low <= 0.01 <= fit.high


def test_power_law_refuses_too_few_or_unbracketed_proxies():
    good = _optimum_at(0.01)
    open_edge = fit_optimum([0.01, 0.03], [[2.0], [1.0]])
    with pytest.raises(ValueError, match="three or more proxies"):
        fit_power_law([1, 2], [good, good], 8)
    with pytest.raises(ValueError, match="at 4 is not bracketed"):
        fit_power_law([1, 2, 4], [good, good, open_edge], 8)
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([1, 1, 4], [good, good, good], 8)


def test_grid_factor():
    assert grid_factor([0.1]) == 3.0
    assert grid_factor([0.3, 0.1, 0.9]) == pytest.approx(3.0)
