"""The suggestion rules, on plain arrays: no training here."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lrlab.finder.suggest import (
    RULES,
    cyclic_bounds,
    decreases_steadily,
    halving_pick,
    minimum_tenth,
    smooth_losses,
    steepest,
    suggest_all,
    trim,
    valley,
)

LRS = np.logspace(-6, 1, 71)  # 10 points per decade
LOG = np.log10(LRS)


def textbook_curve() -> np.ndarray:
    """Flat, then a tanh descent centred at 1e-3, then an exponential blow-up near 1."""
    return 2.0 - np.tanh(1.5 * (LOG + 3.0)) + np.exp(4.0 * (LOG + 0.3))


def fastai_valley_index(losses):
    """fastai 2.7's ``valley`` copied as the reference (loops and all); returns its index."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def fastai_valley(lrs, losses):
    return float(lrs[fastai_valley_index(losses)])


def test_steepest_finds_the_inflection_of_the_descent():
    # d/dlog10(lr) of -tanh(1.5 (x + 3)) is most negative at x = -3.
    assert steepest(LRS, textbook_curve()) == pytest.approx(1e-3, rel=0.01)


def test_steepest_is_per_log_lr_also_on_a_linear_grid():
    lrs = np.linspace(0.01, 1.0, 100)
    losses = 2.0 - np.tanh(3.0 * (np.log10(lrs) + 1.0))
    assert steepest(lrs, losses) == pytest.approx(0.1, rel=0.05)


def test_minimum_tenth_is_a_tenth_of_the_argmin():
    losses = textbook_curve()
    assert minimum_tenth(LRS, losses) == pytest.approx(LRS[np.argmin(losses)] / 10)


def test_valley_lies_on_the_descent_between_its_ends():
    losses = textbook_curve()
    lr = valley(LRS, losses)
    flat_end = 10**-4.0  # where the tanh has barely started to fall
    assert flat_end < lr < LRS[np.argmin(losses)]
    assert np.interp(np.log(lr), np.log(LRS), np.gradient(losses, LOG)) < -0.2


@pytest.mark.parametrize(
    "losses",
    [
        pytest.param(textbook_curve(), id="textbook"),
        pytest.param(np.r_[np.linspace(3, 1, 40), np.linspace(1, 5, 31)], id="v-shape"),
        pytest.param(
            np.r_[np.linspace(3, 2, 20), np.full(20, 2.5), np.linspace(2.5, 0.5, 31)], id="two-drops"
        ),
    ],
)
def test_valley_matches_fastai(losses):
    assert valley(LRS, losses) == fastai_valley(LRS, losses)


DYADIC = st.integers(-80, 80).map(lambda k: k / 16)  # exact under the shifts and scalings below


@given(
    arrays(np.float64, st.integers(2, 40), elements=DYADIC),
    st.sampled_from([0.125, 0.5, 2.0, 64.0]),
    st.integers(-100, 100),
)
@settings(max_examples=150, deadline=None)
def test_rules_pick_a_tried_lr_and_ignore_loss_units(losses, scale, shift):
    lrs = np.logspace(-5, 0, len(losses))
    for name, rule in RULES.items():
        lr = rule(lrs, losses)
        tried = {"minimum/10": lrs / 10, "minimum/3": lrs / 3, "minimum/30": lrs / 30, "minimum/7": lrs / 7}.get(name, lrs)
        assert np.any(np.isclose(tried, lr, rtol=1e-12)), name
        # Other loss units (a power-of-two scale, exact in floating point) change nothing.
        assert rule(lrs, scale * losses) == lr, name
        if name != "steepest":  # comparisons only: an offset changes nothing either
            assert rule(lrs, losses + shift) == lr, name


@given(arrays(np.float64, st.integers(3, 40), elements=st.floats(-5, 5, allow_nan=False)))
@settings(max_examples=100, deadline=None)
def test_valley_agrees_with_fastai_on_any_curve(losses):
    lrs = np.logspace(-5, 0, len(losses))
    index = fastai_valley_index(losses)
    # At -1 fastai picks the *last* LR (its bug: the longest stretch starts at index 0);
    # lrlab clamps to the first.
    assert valley(lrs, losses) == lrs[max(index, 0)]


def test_rules_skip_non_finite_losses():
    losses = textbook_curve()
    holed = losses.copy()
    holed[[5, 30, 60]] = [np.nan, np.inf, np.nan]
    keep = np.isfinite(holed)
    for rule in RULES.values():
        assert rule(LRS, holed) == rule(LRS[keep], losses[keep])


@pytest.mark.parametrize(
    ("lrs", "losses", "message"),
    [
        pytest.param([1e-3, 1e-2], [1.0], "equal length", id="length"),
        pytest.param([1e-2, 1e-3], [1.0, 2.0], "strictly increasing", id="decreasing"),
        pytest.param([0.0, 1e-3], [1.0, 2.0], "> 0", id="zero-lr"),
        pytest.param([1e-3, 1e-2], [np.nan, np.nan], "finite values", id="all-nan"),
    ],
)
def test_bad_curves_raise_a_clear_error(lrs, losses, message):
    for rule in RULES.values():
        with pytest.raises(ValueError, match=message):
            rule(lrs, losses)


def test_smoothing_is_a_debiased_ema_that_skips_nan():
    assert smooth_losses([3.0, 3.0, 3.0], 0.3).tolist() == pytest.approx([3.0, 3.0, 3.0])
    raw = [1.0, 5.0, 2.0]
    assert smooth_losses(raw, 0.0).tolist() == raw
    beta = 0.9
    expected_2 = ((1 - beta) * beta * 1.0 + (1 - beta) * 5.0) / (1 - beta**2)
    got = smooth_losses([1.0, np.nan, 5.0], 0.1)
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == pytest.approx(expected_2)
    assert math.isnan(smooth_losses([np.nan, 1.0], 0.1)[0])
    with pytest.raises(ValueError, match="smooth must be in"):
        smooth_losses([1.0], 1.0)


def _smooth_losses_as_it_was(losses, smooth):
    """The finder's loop before the EMA moved to lrlab.core.smoothing: the reference."""
    beta = 1.0 - smooth
    out = np.empty(len(losses), dtype=np.float64)
    average, count, last = 0.0, 0, np.nan
    for i, value in enumerate(np.asarray(losses, dtype=np.float64)):
        if np.isfinite(value):
            count += 1
            average = beta * average + (1.0 - beta) * value
            last = value if smooth == 0.0 else average / (1.0 - beta**count)
        out[i] = last
    return out


@pytest.mark.parametrize("smooth", [0.0, 0.05, 0.1, 0.5, 0.98])
def test_smoothing_is_bit_for_bit_the_finders_loop_on_curves_with_nan_and_inf(smooth):
    rng = np.random.default_rng(7)
    for n in (1, 3, 40, 300):
        losses = np.exp(rng.normal(0.0, 1.0, n))
        losses[rng.integers(0, n, max(1, n // 8))] = np.nan
        losses[rng.integers(0, n, max(1, n // 16))] = np.inf
        losses[rng.integers(0, n, 1)] = -np.inf
        got, expected = smooth_losses(losses, smooth), _smooth_losses_as_it_was(losses, smooth)
        assert got.tobytes() == expected.tobytes()


def test_trim_drops_warmup_and_tail_but_keeps_three_points():
    assert trim(100) == slice(10, 95)
    assert trim(20, skip_start=0, skip_end=0) == slice(0, 20)
    for n in range(3, 12):
        window = range(n)[trim(n)]
        assert len(window) >= 3


def test_suggest_all_trims_the_diverging_tail():
    losses = textbook_curve()
    losses[-5:] = 1e-9  # garbage after the divergence must not be the minimum
    out = suggest_all(LRS, losses)
    assert set(out) == set(RULES)
    assert out["minimum/10"] < 0.1


def test_cyclic_bounds_after_smith():
    base, top = cyclic_bounds(LRS, textbook_curve())
    assert top == LRS[np.argmin(textbook_curve())]
    assert base == pytest.approx(top / 4)


@pytest.mark.parametrize(
    ("passes", "expected"),
    [
        pytest.param([2.3, 1.9, 1.6, 1.4], True, id="steady"),
        pytest.param([2.3, 2.3, 2.3, 2.2], True, id="flat-then-drop-4pct"),
        pytest.param([2.3, 1.9, 2.0, 1.4], False, id="bounce"),
        pytest.param([2.3, 2.299, 2.298, 2.297], False, id="barely-moves"),
        pytest.param([2.3, 4.0, 9.0, 30.0], False, id="blows-up"),
        pytest.param([2.3, 1.5, np.nan, np.nan], False, id="nan"),
    ],
)
def test_decreases_steadily(passes, expected):
    assert decreases_steadily(passes) is expected


def test_halving_pick_takes_the_first_steady_trial_from_the_top():
    trials = [(8.0, [2.3, np.nan]), (4.0, [2.3, 3.0]), (2.0, [2.3, 1.5]), (1.0, [2.3, 1.9])]
    assert halving_pick(trials) == 2.0
    assert halving_pick(trials[:2]) is None
    assert halving_pick([(0.1, [1.0, 0.99])], min_drop=0.0) == 0.1
    with pytest.raises(ValueError, match="min_drop"):
        decreases_steadily([1.0, 0.5], min_drop=1.5)
