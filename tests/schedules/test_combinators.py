"""Combinators evaluate each inner schedule at most once per call: nested warmups and
sequences take time linear in their depth, not exponential."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from lrlab import schedules as S
from lrlab.schedules import Schedule, SpecError, parse
from lrlab.schedules._base import BLOCK, FloatArray
from lrlab.schedules.spec import MAX_NESTING


@dataclass(frozen=True)
class Counted(Schedule):
    """``inner``, counting the evaluations of its values (one per ``_values`` call)."""

    inner: Schedule
    calls: list[int] = field(default_factory=list, compare=False, hash=False)

    def _values(self, t: FloatArray) -> FloatArray:
        self.calls.append(int(np.size(t)))
        return self.inner._values(t)


def nested_warmups(inner: Schedule, depth: int) -> Schedule:
    schedule = inner
    for level in range(depth):
        schedule = S.warmup(schedule, steps=level % 3 * 5, start_lr=0.01 * (level % 2))
    return schedule


def nested_mix(inner: Schedule, depth: int) -> Schedule:
    """Warmups and two-part sequences in turn, the counted schedule at the bottom."""
    schedule = inner
    for level in range(depth):
        if level % 2:
            schedule = S.sequence([S.constant(0.5), schedule], boundaries=[3])
        else:
            schedule = S.warmup(schedule, steps=4)
    return schedule


@pytest.mark.parametrize("depth", [1, 2, 8, 24, 200])
@pytest.mark.parametrize("nest", [nested_warmups, nested_mix], ids=["warmups", "warmups-and-sequences"])
def test_each_call_evaluates_the_inner_schedule_once(nest, depth):
    counted = Counted(S.cosine(0.1, total_steps=100))
    schedule = nest(counted, depth)
    # Building evaluates it a bounded number of times per level (warmup keeps schedule(0)).
    assert len(counted.calls) <= 2 * depth + 2
    counted.calls.clear()
    schedule(np.arange(1000, dtype=np.float64))
    assert len(counted.calls) == 1
    counted.calls.clear()
    schedule(7)
    assert len(counted.calls) == 1
    counted.calls.clear()
    # A long array goes through in blocks: once per block.
    schedule(np.arange(3 * BLOCK, dtype=np.float64))
    assert counted.calls == [BLOCK] * 3


@pytest.mark.parametrize("depth", [24, 200])
def test_deep_warmups_build_and_evaluate_fast(depth):
    start = time.process_time()
    schedule = nested_warmups(S.cosine(0.1, total_steps=1000), depth)
    values = schedule(np.arange(10_000, dtype=np.float64))
    elapsed = time.process_time() - start
    assert elapsed < 1.0, elapsed
    assert np.all(np.isfinite(values))


def test_warmup_nested_24_deep_parses_and_evaluates_fast():
    spec = "warmup(" * 24 + "cosine(lr=0.1, total_steps=1000)" + ", steps=10)" * 24
    start = time.process_time()
    schedule = parse(spec)
    values = schedule(np.arange(1000, dtype=np.float64))
    elapsed = time.process_time() - start
    assert elapsed < 1.0, elapsed
    # 24 ramps of 10 steps, then the cosine from its start.
    assert values[240] == 0.1
    assert str(schedule) == spec


def test_warmup_nested_200_deep_is_refused_by_the_parser_fast():
    spec = "warmup(" * 200 + "cosine(lr=0.1, total_steps=1000)" + ", steps=10)" * 200
    start = time.process_time()
    with pytest.raises(SpecError, match=f"at most {MAX_NESTING} levels"):
        parse(spec)
    assert time.process_time() - start < 1.0


def test_warmup_ramps_to_the_inner_start_value_exactly():
    # schedule(0) is kept when the warmup is made; the ramp still ends on it.
    inner = S.warmup(S.one_cycle(1.0, total_steps=100), steps=0)
    schedule = S.warmup(inner, steps=8, start_lr=0.001)
    ramp = schedule(np.arange(9, dtype=np.float64))
    assert ramp[0] == 0.001
    assert ramp[8] == inner(0)
    assert schedule(4) == 0.001 + (inner(0) - 0.001) * (4 / 8)
