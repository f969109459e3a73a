"""bench_transfer's precision bound: the chances it reports equal the normal's, and an exact
law's spread, its misses and its gaps against a target's U-curve agree with sampling."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from benchmarks._transfer_bounds import Z80, gap_chance, mean_miss, seeds_for, spread, within_chance
from hypothesis import given
from hypothesis import strategies as st


def row(centre: float, below: float, above: float, optimum: float | None = None) -> dict:
    """A cached row whose law's 80 % interval spreads ``below``/``above`` octaves (one sd)."""
    low, high = centre * 2 ** (-below * Z80), centre * 2 ** (above * Z80)
    return {"predicted": centre, "law_interval": [low, high], "grid": {"lr": optimum or centre}}


def test_the_spread_is_read_back_from_the_interval():
    below, above = spread(row(0.01, 0.7, 1.3))
    assert below == pytest.approx(0.7) and above == pytest.approx(1.3)


@given(st.floats(0.05, 3.0), st.floats(1.01, 8.0))
def test_a_symmetric_spread_gives_the_normal_two_sided_chance(sd, factor):
    expected = 2 * NormalDist().cdf(math.log2(factor) / sd) - 1
    assert within_chance(sd, sd, factor) == pytest.approx(expected, abs=1e-12)


@given(st.floats(0.05, 3.0), st.floats(0.05, 3.0), st.floats(1.01, 4.0), st.floats(1.01, 4.0))
def test_the_chance_grows_with_the_factor(below, above, f1, f2):
    small, large = sorted((f1, f2))
    assert 0.0 <= within_chance(below, above, small) <= within_chance(below, above, large) <= 1.0


@pytest.mark.parametrize(("below", "above"), [(1.0, 1.0), (0.6, 1.5), (1.55, 1.56)])
def test_seeds_for_narrows_the_spread_to_the_asked_chance(below, above):
    r = row(0.03, below, above)
    needed = seeds_for(r, 2)
    shrink = math.sqrt(2 / needed)
    assert needed > 2
    assert within_chance(below * shrink, above * shrink) == pytest.approx(0.9, abs=1e-6)


def test_seeds_for_keeps_the_seeds_when_the_chance_is_already_reached():
    assert seeds_for(row(0.03, 0.1, 0.1), 2) == 2.0


def test_mean_miss_agrees_with_sampling():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400_000)
    sampled = np.mean(np.abs(np.where(z > 0, 1.4 * z, 0.6 * z)))
    assert mean_miss(row(0.03, 0.6, 1.4)) == pytest.approx(sampled, rel=0.01)


def test_gap_chance_on_a_fine_parabola_equals_the_chance_within_its_bar():
    # gap = 2 x^2 acc. points at x octaves from the optimum: within 1 point is within 2^(1/sqrt 2)
    centre = 0.02
    lrs = [centre * 2 ** (k / 50) for k in range(-400, 401)]
    gaps = {lr: 2 * math.log2(lr / centre) ** 2 for lr in lrs}
    r = row(0.05, 0.9, 1.2, optimum=centre)  # the law's own value does not move the bound: its spread does
    expected = within_chance(0.9, 1.2, 2 ** math.sqrt(0.5))
    assert gap_chance(r, gaps, 1.0) == pytest.approx(expected, abs=2e-3)


def test_gap_chance_counts_a_diverged_lr_as_a_miss_and_flatters_beyond_the_lrs_tried():
    centre = 0.02
    gaps = {centre / 2: 0.5, centre: 0.0, centre * 2: math.inf}
    r = row(centre, 1.0, 1.0)
    chance = gap_chance(r, gaps, 1.0)
    # below: every LR counts as within the bar (0.5 at the last LR tried, held beyond it); above:
    # within the bar only up to half an octave, where the diverged LR becomes the nearer one
    expected = 0.5 + (NormalDist().cdf(0.5) - 0.5)
    assert chance == pytest.approx(expected, abs=2e-3)
