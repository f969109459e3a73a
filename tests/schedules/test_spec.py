"""Spec strings: writing, reading back, and errors that point at the problem."""

import pytest

from lrlab.schedules import SpecError, cosine, parse, warmup


def test_contract_example_round_trips():
    spec = "warmup(cosine(lr=0.0003, total_steps=10000), steps=500)"
    s = parse(spec)
    assert s == warmup(cosine(0.0003, total_steps=10000), steps=500)
    assert str(s) == spec


@pytest.mark.parametrize(
    ("spec", "position", "fragment"),
    [
        pytest.param("cosine(lr=0.1", 13, "expected ',' or ')'", id="unclosed"),
        pytest.param("cosin(lr=1)", 0, "unknown schedule 'cosin'", id="unknown-name"),
        pytest.param("cosine(lr=-1, total_steps=3)", 7, "lr must be >= 0", id="negative-lr"),
        pytest.param("cosine(lr=0.1, foo=3)", 15, "no parameter 'foo'", id="unknown-param"),
        pytest.param("cosine(lr=0.1, total_steps=10) x", 31, "unexpected 'x'", id="trailing"),
        pytest.param("cosine(lr=0.1, total_steps=10 @", 30, "unexpected character '@'", id="bad-char"),
        pytest.param("__import__('os')", 0, "unknown schedule '__import__'", id="no-eval"),
    ],
)
def test_bad_spec_names_problem_and_position(spec, position, fragment):
    with pytest.raises(SpecError) as info:
        parse(spec)
    assert info.value.position == position
    assert fragment in str(info.value)
