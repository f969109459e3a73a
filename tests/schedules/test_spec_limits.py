"""``parse`` is bounded work on any text: it returns a schedule or raises ValueError, fast.

The bound per call is a bound on the work (no exponential blow-up, no deep recursion), not a
benchmark: every call here takes milliseconds. It is measured in this process's CPU time, so
that other work on the machine (a loaded CI runner, parallel test workers) cannot fail it.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrlab.schedules import Schedule, SpecError, parse
from lrlab.schedules._base import REGISTRY
from lrlab.schedules.spec import MAX_NESTING, MAX_NUMBER_CHARS, MAX_SPEC_CHARS

SECONDS_PER_CALL = 1.0
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_within_bound(text: str) -> Schedule | ValueError:
    """``parse(text)``: a schedule or the ValueError it raised (any other error fails)."""
    start = time.process_time()
    try:
        outcome: Schedule | ValueError = parse(text)
    except ValueError as exc:
        outcome = exc
    elapsed = time.process_time() - start
    assert elapsed < SECONDS_PER_CALL, (elapsed, text[:200])
    if isinstance(outcome, ValueError):
        assert "\n" not in str(outcome), str(outcome)
    return outcome


# Pieces of specs: names of schedules and parameters, numbers of every size, punctuation.
PARAMETERS = sorted({f for cls in REGISTRY.values() for f in cls.__dataclass_fields__})
huge_numbers = st.one_of(
    st.integers(min_value=1, max_value=600).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: f"1e{n}"),
    st.integers(min_value=1, max_value=5000).map(lambda n: f"-1e-{n}"),
    st.sampled_from(["1e308", "1.7976931348623157e308", "1.8e308", "4.9e-324", "1e-300", "1e300"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
)
tokens = st.one_of(
    st.sampled_from(sorted(REGISTRY)),
    st.sampled_from(PARAMETERS).map(lambda p: p + "="),
    huge_numbers,
    st.sampled_from(["(", ")", "[", "]", ",", "=", " ", '"cos"', "'sine'", "true", "None", "x"]),
)
token_soup = st.lists(tokens, max_size=60).map("".join)
spec_alphabet = st.text(alphabet="()[],=. 0123456789eE+-_\"'\\abcdefghijklmnopqrstuvwxyz", max_size=200)


@st.composite
def deep_nesting(draw):
    """A chain of warmups, lists or both, up to far beyond MAX_NESTING, closed or not."""
    depth = draw(st.integers(min_value=0, max_value=1500))
    opener = draw(st.sampled_from(["warmup(", "lr=[", "sequence([", "warmup(schedule="]))
    closer = {"warmup(": ", steps=1)", "lr=[": "]", "sequence([": "], boundaries=[])"}.get(opener, ")")
    leaf = draw(st.sampled_from(["constant(0.1)", "cosine(lr=0.1, total_steps=10)", "1", ""]))
    closed = draw(st.booleans())
    return opener * depth + leaf + (closer * depth if closed else "")


@FUZZ
@given(text=st.text(max_size=300))
def test_parse_on_any_text_raises_only_value_error_quickly(text):
    parse_within_bound(text)


@FUZZ
@given(text=st.one_of(token_soup, spec_alphabet))
def test_parse_on_spec_like_text_raises_only_value_error_quickly(text):
    parse_within_bound(text)


@FUZZ
@given(text=deep_nesting())
def test_parse_of_deep_nesting_raises_only_value_error_quickly(text):
    parse_within_bound(text)


@FUZZ
@given(number=huge_numbers, parameter=st.sampled_from(["lr", "total_steps", "final_lr"]))
def test_parse_of_any_number_raises_only_value_error_quickly(number, parameter):
    arguments = {"lr": "0.1", "total_steps": "10", "final_lr": "0.0"}
    arguments[parameter] = number
    text = "cosine(" + ", ".join(f"{k}={v}" for k, v in arguments.items()) + ")"
    for spec in (text, f"warmup({text}, steps={number})", f"multistep(0.1, milestones=[{number}])"):
        parse_within_bound(spec)


def test_nesting_up_to_the_limit_parses():
    # MAX_NESTING levels: MAX_NESTING - 1 warmups around a constant.
    depth = MAX_NESTING - 1
    schedule = parse("warmup(" * depth + "constant(0.1)" + ", steps=1)" * depth)
    assert schedule(depth) == 0.1


@pytest.mark.parametrize("depth", [MAX_NESTING, 200, 500, 5000])
def test_nesting_beyond_the_limit_names_the_limit(depth):
    spec = "warmup(" * depth + "constant(0.1)" + ", steps=1)" * depth
    error = parse_within_bound(spec)
    assert isinstance(error, SpecError)
    assert f"nesting too deep: at most {MAX_NESTING} levels" in str(error)
    assert spec[error.position :].startswith("warmup(") or spec[error.position :].startswith("constant(")


@pytest.mark.parametrize("depth", [MAX_NESTING, 1000])
def test_lists_nested_beyond_the_limit_name_the_limit(depth):
    error = parse_within_bound("multistep(0.1, milestones=" + "[" * depth + "1" + "]" * depth + ")")
    assert isinstance(error, SpecError)
    assert "nesting too deep" in str(error)


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        pytest.param("1" * 300, f"too long: at most {MAX_NUMBER_CHARS} characters", id="300-digit-int"),
        pytest.param("1" * 5000, f"too long: at most {MAX_NUMBER_CHARS} characters", id="5000-digit-int"),
        pytest.param("0." + "1" * 100, f"too long: at most {MAX_NUMBER_CHARS} characters", id="long-float"),
        pytest.param("1e309", "out of range: numbers must be finite float64", id="overflowing-float"),
        pytest.param("-1e99999", "out of range: numbers must be finite float64", id="overflowing-negative"),
    ],
)
def test_numbers_beyond_float64_or_too_long_are_spec_errors(number, fragment):
    for spec in (f"constant({number})", f"cosine(lr=0.1, total_steps={number})"):
        error = parse_within_bound(spec)
        assert isinstance(error, SpecError)
        assert fragment in str(error)
        assert spec[error.position :].startswith(number)


def test_longest_allowed_number_still_parses():
    text = "1" * MAX_NUMBER_CHARS
    assert parse(f"cosine(lr=0.1, total_steps={text})").total_steps == int(text)


def test_spec_longer_than_the_limit_is_refused_with_a_short_message():
    spec = "constant(" + " " * MAX_SPEC_CHARS + "0.1)"
    error = parse_within_bound(spec)
    assert isinstance(error, SpecError)
    assert f"at most {MAX_SPEC_CHARS} characters" in str(error)
    assert len(str(error)) < 400


def test_long_sequence_within_the_limit_parses_quickly():
    parts = 2000
    spec = (
        "sequence(["
        + ", ".join(f"constant({i / parts!r})" for i in range(parts))
        + "], boundaries=["
        + ", ".join(str(10 * i) for i in range(1, parts))
        + "])"
    )
    assert len(spec) <= MAX_SPEC_CHARS
    schedule = parse_within_bound(spec)
    assert isinstance(schedule, Schedule)
    assert schedule(10 * (parts - 1)) == (parts - 1) / parts
