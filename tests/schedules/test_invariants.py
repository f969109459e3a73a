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
# (e.g. max_examples=400, derandomize=False) when changing a family. Derandomized, with
# no example database: every run draws the same examples, so a run can not pass where
# another fails; the properties must hold for every draw all the same.
FAMILY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_every_family_has_a_strategy():
    assert set(FAMILY_STRATEGIES) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
@settings(FAMILY_SETTINGS, max_examples=60)
@given(data=st.data())
def test_scalar_equals_vector_exactly(family, data):
    # Bit for bit, not approximately: a number goes through the same numpy operations as
    # an array (np.power and Python's ``**`` on a float differ by an ulp for some inputs).
    schedule = data.draw(FAMILY_STRATEGIES[family])
    steps = data.draw(st.lists(step_values, min_size=1, max_size=20))
    # And a run of evenly spaced steps from somewhere, at some scale.
    start = data.draw(step_values)
    stride = data.draw(st.floats(min_value=0.01, max_value=1e6))
    steps += [start + stride * k for k in range(25)]
    vector = schedule(np.asarray(steps, dtype=np.float64))
    scalars = [schedule(t) for t in steps]
    assert all(type(v) is float for v in scalars)
    assert vector.dtype == np.float64
    assert vector.shape == (len(steps),)
    assert np.array_equal(vector, np.asarray(scalars)), _first_difference(schedule, steps, vector, scalars)
    # An int step and the same step as a float give the same value.
    whole = [int(t) for t in steps if float(t).is_integer() and t < 2**53]
    for t in whole:
        assert schedule(t) == schedule(float(t))


def _first_difference(schedule, steps, vector, scalars):
    for t, v, s in zip(steps, vector, scalars):
        if v != s:
            return f"{schedule}: at step {t!r} the array gives {v!r}, the number {s!r}"
    return str(schedule)


# Schedules whose number and array values differed by an ulp at some steps when a number
# was evaluated as a 0-d array (whose arithmetic gives numpy scalars: ``**`` on those is
# the C library's pow, on arrays numpy's SIMD power).
ULP_REGRESSIONS = [
    "polynomial(lr=1.0, total_steps=5037, power=3)",
    "polynomial(lr=0.1, total_steps=5037, final_lr=1e-05, power=3.0)",
    "exponential(lr=1.0, decay_rate=0.9)",
    "exponential(lr=0.1, decay_rate=0.999)",
    "exponential(lr=1.0, decay_rate=0.96, decay_steps=100)",
    "exponential(lr=1.0, decay_rate=0.96, decay_steps=7, staircase=true)",
    "step_decay(lr=1.0, step_size=7, gamma=0.9)",
    "cyclic(base_lr=0.0, max_lr=1.0, step_size=10, cycle_decay=0.9)",
    "warmup(polynomial(lr=1.0, total_steps=5037, power=3), steps=100)",
    "sequence([constant(lr=1.0), exponential(lr=1.0, decay_rate=0.9)], boundaries=[50])",
    "warmup(sequence([step_decay(lr=1.0, step_size=7, gamma=0.9), "
    "polynomial(lr=1.0, total_steps=5037, power=3)], boundaries=[300]), steps=20)",
]


@pytest.mark.parametrize("spec", ULP_REGRESSIONS)
def test_scalar_equals_vector_at_every_step_regressions(spec):
    schedule = parse(spec)
    # Every step of a run, then every 997th up to ten million and fractional steps.
    steps = np.concatenate([np.arange(6000.0), np.arange(6000.0, 1e7, 997.0), np.arange(0.0, 600.0, 0.37)])
    vector = schedule(steps)
    scalars = np.array([schedule(t) for t in steps.tolist()])
    assert np.array_equal(vector, scalars), _first_difference(schedule, steps.tolist(), vector, scalars)


def test_polynomial_5037_cubed_step_by_step():
    # The reported case: the numbers 0 .. 5036 as Python ints, numpy scalars and 0-d
    # arrays, one at a time, against one array of all the steps.
    schedule = parse("polynomial(lr=1.0, total_steps=5037, power=3)")
    vector = schedule(np.arange(5037.0))
    for t in range(5037):
        expected = vector[t]
        assert schedule(t) == expected, t
        assert schedule(np.float64(t)) == expected, t
        assert schedule(np.int64(t)) == expected, t
        assert schedule(np.array(t)) == expected, t


@pytest.mark.parametrize("spec", ULP_REGRESSIONS)
def test_strided_and_shaped_arrays_give_the_same_values(spec):
    schedule = parse(spec)
    steps = np.arange(4000.0) * 1.5
    flat = schedule(steps)
    assert np.array_equal(schedule(steps[::3]), flat[::3])
    assert np.array_equal(schedule(steps.reshape(40, 100).T), flat.reshape(40, 100).T)
    assert np.array_equal(schedule(steps.reshape(-1, 4)[:, 1:2]), flat.reshape(-1, 4)[:, 1:2])


@pytest.mark.parametrize("family", FAMILIES)
@settings(FAMILY_SETTINGS, max_examples=8)
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
@settings(FAMILY_SETTINGS, max_examples=20)
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
