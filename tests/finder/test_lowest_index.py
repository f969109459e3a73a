"""The range test's minimum: the plain lowest loss, except a lowest loss at the curve's very
first point (the smoothing's memory of lucky first batches) when the curve dips later."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lrlab.finder.suggest import lowest_index, read_curve, suggest_all

finite = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=80))
def test_it_is_the_plain_minimum_unless_that_is_the_first_point(losses):
    i, plain = lowest_index(losses), int(np.argmin(losses))
    if plain != 0:
        assert i == plain
    else:  # the first point, or a dip in the second half below the median
        assert i == 0 or (i >= len(losses) // 2 and losses[i] < np.median(losses))


@given(st.lists(finite, min_size=4, max_size=80))
def test_a_curve_that_only_rises_keeps_its_start(losses):
    rising = np.sort(np.asarray(losses))
    rising[1:] += np.arange(1, len(rising)) * 1e-3  # strictly increasing
    assert lowest_index(rising) == 0


def test_a_lucky_start_is_read_past_to_the_dip():
    # The shape of a measured range test (MLP regression, batch 16, SGD + momentum): the
    # smoothed loss starts at 0.8 on lucky first batches (and forgets them slowly), settles near 1.0, dips to 0.89 at
    # LR 0.03 and diverges.
    lrs = np.logspace(-7, 0, 70)
    settle = 1.0 - 0.2 * np.exp(-np.arange(70) / 20.0)
    dip = -0.10 * np.exp(-((np.log10(lrs) + 1.5) ** 2) / 0.1)
    loss = settle + dip + np.where(lrs > 0.2, 20 * (lrs - 0.2), 0.0)
    assert np.argmin(loss) == 0
    i = lowest_index(loss)
    assert 0.01 < lrs[i] < 0.1
    verdict = read_curve(lrs, loss, diverged=True, sgd=True)
    assert verdict.problem is None
    assert verdict.note is not None and "start of the test" in verdict.note
    # The window the rules see starts after the first tenth: the rules read the dip too.
    assert 0.01 / 7 < suggest_all(lrs, loss)["minimum/7"] < 0.1 / 7
