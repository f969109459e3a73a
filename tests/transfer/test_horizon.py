"""The horizon law: the constant equals the measurement in docs/benchmarks.md, the study's
``schedule_for`` and snippets apply the rule it reads to, and say so."""

import re
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.core.horizon import HORIZON, HorizonLaw, horizon_advice
from lrlab.schedules import parse
from lrlab.study.codegen import horizon_note, scale_lrs, schedule_for, torch_snippet

BENCHMARKS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def test_the_constant_equals_what_docs_benchmarks_reports():
    text = BENCHMARKS.read_text()
    found = re.search(r"horizon-law: slope=(\S+) low=(\S+) high=(\S+) longest=(\S+)`", text)
    assert found, "docs/benchmarks.md has no horizon section: run python -m benchmarks.bench_horizon"
    slope, low, high, longest = (float(v) for v in found.groups())
    assert (HORIZON.slope, HORIZON.slope_low, HORIZON.slope_high, HORIZON.longest) == (
        slope,
        low,
        high,
        longest,
    )


def test_a_slope_interval_through_zero_keeps_the_lr_and_says_how_far_the_optimum_moved():
    law = HorizonLaw(-0.036, -0.114, 0.043, 16.0, "the ladder")
    advice = horizon_advice(69, 69 * 10, law)
    assert advice.kept and advice.factor == 1.0 and advice.warning is None
    assert advice.reason.startswith(
        "the LR is kept: on the run-length ladder the optimum moved by x0.91 [0.73, 1.1] from x1 to x16"
    )
    assert (advice.low, advice.high) == pytest.approx((10**-0.114, 10**0.043))


def test_a_slope_away_from_zero_corrects_the_lr_with_its_interval():
    law = HorizonLaw(-0.3, -0.4, -0.2, 16.0, "a ladder")
    advice = horizon_advice(100, 800, law)
    assert not advice.kept
    assert advice.factor == pytest.approx(8**-0.3)
    assert (advice.low, advice.high) == pytest.approx((8**-0.4, 8**-0.2))
    stretched = schedule_for("cosine(lr=0.1, total_steps=100)", 100, 800, law=law)
    assert stretched(0) == pytest.approx(0.1 * 8**-0.3) and "total_steps=800" in str(stretched)


def test_schedule_for_keeps_the_measured_lr_and_warns_past_the_longest_run_measured():
    spec = "warmup(cosine(lr=0.1, total_steps=570), steps=30)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = schedule_for(spec, 600, 600 * 16)
    assert str(kept) == "warmup(cosine(lr=0.1, total_steps=9120), steps=480)"
    with pytest.warns(
        UserWarning, match=r"x17 the study's, longer than the longest run length measured \(x16\)"
    ):
        schedule_for(spec, 600, 600 * 17)


def test_the_snippet_says_which_rule_it_applies_and_how_far_it_was_measured():
    code = torch_snippet("adam", "cosine(lr=0.01, total_steps=69)", study_steps=69)
    note = horizon_note(69)
    assert (
        note.startswith("# the LR is kept: on the run-length ladder the optimum moved by x") and note in code
    )
    assert "Measured up to x16 the study's 69 steps (1104 steps); longer runs extrapolate." in " ".join(
        line.removeprefix("# ") for line in note.splitlines()
    )
    assert all(len(line) <= 100 for line in note.splitlines())
    compile(code, "snippet", "exec")


@given(st.floats(min_value=1e-3, max_value=10.0), st.floats(min_value=0.01, max_value=100.0))
def test_scale_lrs_multiplies_every_lr_and_keeps_the_steps(lr, factor):
    schedule = parse(f"warmup(cyclic(base_lr={lr}, max_lr={lr * 3}, step_size=10), steps=5)")
    scaled = scale_lrs(schedule, factor)
    for t in (0, 3, 5, 12, 20, 40):
        assert scaled(t) == pytest.approx(schedule(t) * factor, rel=1e-9, abs=1e-15)
