"""The transfer's own checks on synthetic optima (no training): the leave-one-out self-check
widens the target's interval by the rule its docstring states, and only when the law missed
beyond the intervals; the stability check flags a prediction where a proxy diverged."""

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.bracket import Optimum, fit_power_law
from lrlab.transfer import TransferResult
from lrlab.transfer.figure import band
from lrlab.transfer.selfcheck import self_check, stability_check

Z80 = 1.2815515655446004


def optimum(lr: float, spread: float = 1.1, lrs=None, losses=None) -> Optimum:
    """A bracketed optimum at ``lr`` whose 80 % interval is ``lr / spread`` to ``lr * spread``."""
    lrs = tuple(lrs or (lr / 2, lr, lr * 2))
    losses = tuple(losses or ((1.0, 1.0),) * len(lrs))
    return Optimum(lr, lr / spread, lr * spread, 0.8, True, None, lr, lrs, losses, "synthetic")


def result_of(scales, optima, target, n_boot: int = 2000) -> TransferResult:
    law = fit_power_law(scales, optima, target, n_boot=n_boot)
    return TransferResult(name="synthetic", axis="width", target=float(target), optimizer="adam",
                          schedule="cosine", seeds=2, parametrization="standard", law=law,
                          scales=tuple(float(s) for s in scales), proxies=tuple(optima), target_steps=100,
                          proxy_steps=(100,) * len(scales), store_path=Path("none.db"), sweeps=())  # fmt: skip


def test_a_straight_law_passes_and_leaves_the_interval_as_fitted():
    scales = (16, 32, 64)
    optima = [optimum(0.02 * (s / 16) ** -0.5) for s in scales]
    result = result_of(scales, optima, 512)
    check = result.self_check
    assert (check.left_out, check.fitted_on) == (64.0, (16.0, 32.0))
    assert check.predicted == pytest.approx(0.01) and check.measured == pytest.approx(0.01)
    assert check.miss == pytest.approx(0.0, abs=1e-9) and check.excess == 0.0 and check.passed
    assert result.checked_interval == result.law_interval == (result.law.low, result.law.high)
    assert "within the two 80% intervals, so the law's interval stands" in str(result)
    assert [c.passed for c in result.checks] == [True, True]


def test_a_law_that_bends_widens_the_interval_on_the_side_it_missed_by_the_stated_rule():
    # the two smaller proxies flat at 0.01, the largest at 0.04: two octaves above their line
    scales = (16, 32, 64)
    optima = [optimum(0.01, 1.05), optimum(0.01, 1.05), optimum(0.04, 1.05)]
    result = result_of(scales, optima, 512)
    check = result.self_check
    assert check.miss == pytest.approx(2.0) and check.ratio == pytest.approx(0.25)
    # the two intervals as independent normals: the 2-point line's sd at 64 is sqrt(4 + 1) sigma
    sigma = math.log(1.05**2) / (2 * Z80)
    half = Z80 * math.sqrt(5 * sigma**2 + (math.log(1.05) / Z80) ** 2) / math.log(2)
    assert check.allowed == pytest.approx(half) and check.excess == pytest.approx(2.0 - half)
    assert (check.span, check.distance) == (pytest.approx(1.0), pytest.approx(3.0))
    assert check.widening == pytest.approx(3 * check.excess) and check.side == "high" and not check.passed
    low, high = result.checked_interval
    assert low == pytest.approx(result.law.low)
    assert high == pytest.approx(max(result.law.high, result.lr * 2**check.widening))
    assert high > result.law.high  # the law's own interval did not reach that far
    words = str(result)
    assert "predicted 64's optimum at x0.25 of what 64 measured" in words
    assert f"widened upward by {check.widening:.2f} octaves" in words
    assert "# self-check:" in result.code()["PyTorch"]  # the pasted code carries it


def test_a_miss_whose_widening_the_law_s_interval_already_spans_leaves_it_and_says_so():
    # the same bend, but the target just past the largest proxy: 0.13 octaves of scale
    result = result_of((16, 32, 64), [optimum(0.01, 1.05), optimum(0.01, 1.05), optimum(0.04, 1.05)], 70)
    check = result.self_check
    assert not check.passed and check.distance == pytest.approx(math.log2(70 / 64))
    assert result.lr * 2**check.widening < result.law.high  # the law's own interval reaches further
    assert not check.widened and result.checked_interval == result.law_interval
    assert "the law bends" in str(result) and "which the law's own interval already spans" in str(result)


def test_a_target_below_the_proxies_leaves_out_the_smallest_and_widens_downward():
    scales = (64, 128, 256)
    optima = [optimum(0.005, 1.05), optimum(0.01, 1.05), optimum(0.02, 1.05)]  # slope +1 above 64
    optima[0] = optimum(0.02, 1.05)  # the smallest far above the line of the two larger ones
    result = result_of(scales, optima, 8)
    check = result.self_check
    assert (check.left_out, check.fitted_on) == (64.0, (128.0, 256.0))
    assert check.predicted == pytest.approx(0.005) and check.miss == pytest.approx(2.0)
    assert check.distance == pytest.approx(3.0) and check.side == "high"
    assert result.checked_interval[1] == pytest.approx(max(result.law.high, result.lr * 2**check.widening))


def test_the_band_is_the_law_s_up_to_the_left_out_proxy_and_widens_beyond_it():
    scales = (16, 32, 64)
    result = result_of(scales, [optimum(0.01, 1.05), optimum(0.01, 1.05), optimum(0.04, 1.05)], 512)
    xs, _, low, high = band(result)
    assert (low[-1], high[-1]) == pytest.approx(result.interval)
    inside = xs <= 64
    plain = [fit_power_law(result.scales, result.proxies, float(s)) for s in xs[inside]]
    assert list(high[inside]) == pytest.approx([p.high for p in plain])
    assert all(
        h >= p.high for h, p in zip(high, [fit_power_law(scales, result.proxies, float(s)) for s in xs])
    )


positive = st.floats(1e-4, 1.0)
spreads = st.floats(1.02, 4.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(positive, spreads), min_size=3, max_size=5), st.floats(2.0, 64.0), st.booleans())
def test_the_check_never_narrows_and_widens_exactly_excess_over_span_times_distance(points, beyond, above):
    scales = [16.0 * 2**i for i in range(len(points))]
    optima = [optimum(lr, spread) for lr, spread in points]
    target = scales[-1] * beyond if above else scales[0] / beyond
    result = result_of(scales, optima, target, n_boot=50)
    check = result.self_check
    low, high = result.checked_interval
    assert low <= result.law.low + 1e-15 and high >= result.law.high - 1e-15
    assert 0.0 <= check.excess <= abs(check.miss) + 1e-12
    assert check.excess == pytest.approx(max(0.0, abs(check.miss) - check.allowed), abs=1e-12)
    assert check.distance == pytest.approx(math.log2(beyond))
    assert check.widening == pytest.approx(check.excess / check.span * check.distance)
    if check.passed:
        assert result.checked_interval == result.law_interval
    elif check.side == "high":
        assert (
            high == pytest.approx(max(result.law.high, result.lr * 2**check.widening))
            and low == result.law.low
        )
    else:
        assert (
            low == pytest.approx(min(result.law.low, result.lr * 2**-check.widening))
            and high == result.law.high
        )


@settings(max_examples=40, deadline=None)
@given(st.floats(-1.5, 1.5), st.floats(1e-3, 0.1), st.floats(1.02, 3.0), st.floats(0.1, 100.0))
def test_optima_on_any_straight_law_pass_whatever_the_units(slope, lr, spread, unit):
    scales = [8.0 * unit, 16.0 * unit, 32.0 * unit]
    optima = [optimum(lr * (s / scales[0]) ** slope, spread) for s in scales]
    check = self_check(scales, optima, fit_power_law(scales, optima, 256.0 * unit, n_boot=50))
    assert check.passed and check.miss == pytest.approx(0.0, abs=1e-9) and check.widening == 0.0


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 4.0), st.floats(0.01, 100.0), st.floats(0.01, 100.0))
def test_the_check_reads_octaves_only_so_rescaling_the_lr_or_the_axis_changes_nothing(miss, lr_unit, unit):
    def check(lr_factor: float, axis_factor: float):
        scales = [s * axis_factor for s in (16.0, 32.0, 64.0)]
        optima = [
            optimum(0.01 * lr_factor, 1.1),
            optimum(0.01 * lr_factor, 1.1),
            optimum(0.01 * lr_factor * 2**miss, 1.1),
        ]
        return self_check(scales, optima, fit_power_law(scales, optima, 512.0 * axis_factor, n_boot=50))

    plain, moved = check(1.0, 1.0), check(lr_unit, unit)
    assert (moved.miss, moved.excess, moved.widening) == pytest.approx(
        (plain.miss, plain.excess, plain.widening)
    )


def test_a_self_check_needs_three_proxies():
    with pytest.raises(ValueError, match="three or more proxies"):
        self_check([16, 32], [optimum(0.01), optimum(0.01)], fit_power_law([1, 2, 3], [optimum(0.01)] * 3, 8))


NAN = float("nan")


def test_a_prediction_at_or_above_where_a_proxy_diverged_is_flagged_not_capped():
    scales = (16, 32, 64)
    grid = (0.01, 0.02, 0.04, 0.08)
    losses = [
        ((1.0, 1.0), (0.9, 0.9), (1.0, 1.0), (2.0, 2.0)),  # none diverged
        ((1.0, 1.0), (0.9, 0.9), (1.0, 1.0), (NAN, 2.0)),  # a seed at 0.08
        ((1.0, 1.0), (0.9, 0.9), (1.0, NAN), (NAN, NAN)),
    ]  # from 0.04
    optima = [optimum(0.02, 1.2, grid, rows) for rows in losses]
    stability = stability_check(scales, optima, 0.05)
    assert stability.edges == (None, 0.08, 0.04) and stability.below == (64.0,) and not stability.passed
    assert stability.stable == 0.02
    words = stability.sentence("width")
    assert words.startswith("warning: a proxy diverged at or below the predicted LR 0.05 (width 64 at 0.04)")
    assert (
        "flagged, not capped" in words
        and "the largest LR tried below any proxy's divergence was 0.02" in words
    )
    every = stability_check(scales, optima[1:] + optima[1:2], 0.08)
    assert every.below == (16.0, 32.0, 64.0) and "every proxy diverged" in every.sentence("width")
    assert stability_check(scales, optima, 0.03).passed
    assert "lies below every LR at which a proxy diverged (the lowest: 0.04)" in stability_check(
        scales, optima, 0.03
    ).sentence("width")
    assert (
        stability_check(scales, optima[:1] * 3, 1.0).sentence("width") == "no proxy diverged at any LR tried"
    )


def test_a_flagged_result_keeps_its_lr_and_says_so_in_its_words_and_code():
    scales = (16, 32, 64)
    grid = (0.01, 0.02, 0.04, 0.08)
    rows = ((1.0, 1.0), (0.9, 0.9), (1.0, 1.0), (NAN, NAN))
    optima = [optimum(lr, 1.2, grid, rows) for lr in (0.02, 0.04, 0.08)]  # the law climbs past 0.08
    result = result_of(scales, optima, 512)
    assert result.lr == pytest.approx(result.law.lr) and result.lr > 0.08
    assert [c.name for c in result.checks] == ["self-check", "stability"] and not result.checks[1].passed
    assert "warning: every proxy diverged at or below the predicted LR" in str(result)
    assert "# warning: every proxy diverged" in result.code()["PyTorch"]


def test_beyond_the_proxies_the_interval_carries_the_extrapolation_error_in_quadrature():
    from lrlab.transfer.extrapolation import EXTRAPOLATION_SD, MEASURED_OCTAVES

    scales = (16, 32, 64)
    optima = [optimum(0.01, 1.05), optimum(0.01, 1.05), optimum(0.01, 1.05)]  # flat: the check passes
    result = result_of(scales, optima, 512)
    assert result.self_check.passed and result.extrapolation_octaves == pytest.approx(3.0)
    low, high = result.interval
    law_low, law_high = result.checked_interval
    extra = Z80 * EXTRAPOLATION_SD * 3.0
    assert math.log2(high / result.lr) == pytest.approx(math.hypot(math.log2(law_high / result.lr), extra))
    assert math.log2(result.lr / low) == pytest.approx(math.hypot(math.log2(result.lr / law_low), extra))
    assert "octaves beyond the proxies" in str(result)
    assert (
        f"a proxy one octave from the target (width 256) would add +-{Z80 * EXTRAPOLATION_SD:.2g} octaves"
        in str(result)
    )
    assert "its growth beyond is assumed linear, not measured" not in str(result)  # 8x: measured that far
    farther = result_of(scales, optima, 64 * 2**MEASURED_OCTAVES * 2)
    assert farther.extrapolation_octaves == pytest.approx(4.0)
    assert "measured 3 octaves out; its growth beyond is assumed linear, not measured" in str(farther)
    # inside the proxies' range nothing is added, and no words about it
    inside = result_of(scales, optima, 48)
    assert inside.extrapolation_octaves == 0.0 and inside.interval == inside.checked_interval
    assert "octaves beyond the proxies" not in str(inside)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 6.0), st.floats(0.0, 6.0), st.floats(0.01, 3.0), st.floats(0.01, 3.0))
def test_the_extrapolation_widening_never_narrows_and_grows_with_the_distance(near, far, below, above):
    from lrlab.transfer.extrapolation import widen

    near, far = sorted((near, far))
    bounds = (2.0**-below, 2.0**above)
    low_near, high_near = widen(1.0, *bounds, near)
    low_far, high_far = widen(1.0, *bounds, far)
    assert low_far <= low_near <= bounds[0] * (1 + 1e-12) and high_far >= high_near >= bounds[1] * (1 - 1e-12)


def test_the_extrapolation_constant_is_the_one_the_tuning_ladders_measured():
    import re
    from pathlib import Path

    from lrlab.transfer.extrapolation import EXTRAPOLATION_SD, MEASURED_OCTAVES, TUNING_ERRORS

    text = (Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md").read_text()
    section = text.split("<!-- bench:tune-transfer -->", 1)[1].split("<!-- /bench:tune-transfer -->", 1)[0]
    measured = float(
        re.search(
            r"per octave of scale beyond the largest proxy, over all \d+: \*\*([0-9.]+)\*\*", section
        ).group(1)
    )
    assert measured == EXTRAPOLATION_SD
    # every tuning ladder's target lay MEASURED_OCTAVES beyond its largest proxy
    ladders = re.findall(r"\| (?:first|check) \| [^|]+ \| \w+ ([\d,]+) -> (\d+) \|", section)
    assert len(ladders) == 10
    assert {math.log2(int(t) / int(p.split(",")[-1])) for p, t in ladders} == {MEASURED_OCTAVES}
    means = re.search(r"\| mean abs\. \(all\) \| \| \| \| ([0-9.]+) \| ([0-9.]+) \|", section)
    assert (float(means.group(1)), float(means.group(2))) == TUNING_ERRORS
