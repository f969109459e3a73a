"""Invariants every schedule family satisfies (timm style: one test, every family)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schedule_strategies import FAMILY_STRATEGIES, step_values

from lrlab.schedules import FAMILIES, from_dict, parse
from lrlab.schedules._base import BLOCK

# 30 examples per family and property keeps the suite fast; run with more
# (e.g. max_examples=400) when changing a family.
FAMILY_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_family_has_a_strategy():
    assert set(FAMILY_STRATEGIES) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
@FAMILY_SETTINGS
@given(data=st.data())
def test_scalar_equals_vector_exactly(family, data):
    schedule = data.draw(FAMILY_STRATEGIES[family])
    steps = data.draw(st.lists(step_values, min_size=1, max_size=20))
    vector = schedule(np.asarray(steps, dtype=np.float64))
    scalars = [schedule(t) for t in steps]
    assert all(isinstance(v, float) for v in scalars)
    assert vector.dtype == np.float64
    assert vector.shape == (len(steps),)
    assert np.array_equal(vector, np.asarray(scalars), equal_nan=True)
    # An int step and the same step as a float give the same value.
    whole = [int(t) for t in steps if float(t).is_integer() and t < 2**53]
    for t in whole:
        assert schedule(t) == schedule(float(t))


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_long_arrays_in_blocks_equal_step_by_step_values(family, data):
    # Arrays longer than a block (BLOCK steps) are evaluated block by block, with
    # per-cycle tables and single-phase shortcuts: still the same numbers as s(t).
    schedule = data.draw(FAMILY_STRATEGIES[family])
    stride = data.draw(st.sampled_from([1.0, 0.5, 37.0, 1e4]))
    count = 3 * (BLOCK * 2 // 3 + 41)
    steps = np.arange(count, dtype=np.float64) * stride
    if data.draw(st.booleans()):
        steps = np.random.default_rng(0).permutation(steps)
    values = schedule(steps.reshape(-1, 3) if data.draw(st.booleans()) else steps).ravel()
    picks = np.random.default_rng(1).choice(count, size=60, replace=False)
    assert [values[i] for i in picks] == [schedule(steps[i]) for i in picks]


@pytest.mark.parametrize("family", FAMILIES)
@FAMILY_SETTINGS
@given(data=st.data())
def test_values_are_finite_and_non_negative(family, data):
    schedule = data.draw(FAMILY_STRATEGIES[family])
    steps = data.draw(st.lists(step_values, min_size=1, max_size=50))
    values = schedule(np.asarray([0, 1, *steps], dtype=np.float64))
    assert np.all(np.isfinite(values)), (str(schedule), values)
    assert np.all(values >= 0), (str(schedule), values)


@pytest.mark.parametrize("family", FAMILIES)
@FAMILY_SETTINGS
@given(data=st.data())
def test_spec_and_dict_round_trip_exactly(family, data):
    schedule = data.draw(FAMILY_STRATEGIES[family])
    spec = str(schedule)
    assert parse(spec) == schedule
    assert str(parse(spec)) == spec
    assert from_dict(schedule.to_dict()) == schedule
    # to_dict is plain JSON data.
    assert from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_schedules_are_hashable_immutable_values(family, data):
    schedule = data.draw(FAMILY_STRATEGIES[family])
    assert hash(schedule) == hash(from_dict(schedule.to_dict()))
    field = next(iter(schedule.to_dict().keys() - {"name"}))
    with pytest.raises(AttributeError):
        setattr(schedule, field, 1.0)


@pytest.mark.parametrize("bad_step", [-1, -0.5, math.nan, math.inf])
def test_bad_steps_are_rejected(bad_step):
    schedule = parse("cosine(lr=0.1, total_steps=10)")
    with pytest.raises(ValueError, match="step t must be finite and >= 0"):
        schedule(bad_step)
    with pytest.raises(ValueError, match="step t must be finite and >= 0"):
        schedule(np.array([0.0, bad_step]))
