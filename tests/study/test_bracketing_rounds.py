"""The study's bracketing rounds and grids as pure functions: which family trains which LR
next, how many extra LRs a family may spend, and where a task without a range test starts."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.study.bracketing import (
    DEFAULT_ANCHORS,
    MAX_EXTRA,
    Bracketing,
    bracket_rounds,
    grid_without_range_test,
    lacking_seeds,
    next_round,
    open_edge,
)

FACTOR = 3.0


def _curve(optimum: float, blowup: float | None):
    """A loss that is a parabola in log LR around ``optimum``, diverged (NaN) above ``blowup``."""

    def loss(lr: float) -> float:
        if blowup is not None and lr > blowup:
            return math.nan
        return (math.log(lr) - math.log(optimum)) ** 2

    return loss


def _simulate(curves: dict, anchor: float = 1.0, max_extra: int = MAX_EXTRA):
    """Run :func:`bracket_rounds` over synthetic families: each round 'trains' the LRs asked for."""
    table = {
        key: {anchor * f: {0: loss(anchor * f)} for f in (1 / FACTOR, 1.0, FACTOR)}
        for key, loss in curves.items()
    }
    rounds: list[dict] = []

    def train_round(index: int, wanted: dict) -> None:
        assert index == len(rounds) + 1
        rounds.append(dict(wanted))
        for key, lr in wanted.items():
            table[key][lr] = {0: curves[key](lr)}

    done = bracket_rounds(
        lambda: {k: dict(v) for k, v in table.items()}, train_round, seed=0, max_extra=max_extra
    )
    return done, rounds, table


log_optimum = st.floats(min_value=-6.0, max_value=6.0, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(log_optimum, st.booleans(), st.floats(0.0, 4.0)), min_size=1, max_size=5),
       st.integers(0, 3))  # fmt: skip
def test_rounds_add_one_lr_per_family_outward_and_stop_at_the_budget(families, max_extra):
    curves = {
        (f"opt{i}", "constant"): _curve(math.exp(x), math.exp(x + gap) if blows else None)
        for i, (x, blows, gap) in enumerate(families)
    }
    done, rounds, table = _simulate(curves, max_extra=max_extra)
    assert isinstance(done, Bracketing)
    assert done.rounds == len(rounds) <= max_extra
    assert done.extra_runs == sum(len(r) for r in rounds)
    for by_lr in table.values():
        added = sorted(set(by_lr) - {1 / FACTOR, 1.0, FACTOR})
        assert len(added) <= max_extra  # the stated extra budget
        tried = sorted(by_lr)
        ratios = [b / a for a, b in itertools.pairwise(tried)]
        assert all(math.isclose(r, FACTOR, rel_tol=1e-9) for r in ratios)  # the grid continues at its factor
    before = {key: [1 / FACTOR, 1.0, FACTOR] for key in curves}
    for per_round in rounds:  # one LR per family per round, one grid step beyond what was tried before it
        for key, lr in per_round.items():
            low, high = min(before[key]), max(before[key])
            assert math.isclose(lr, low / FACTOR) or math.isclose(lr, high * FACTOR)
            before[key].append(lr)
    assert done.edge_after <= done.edge_before <= done.families == len(curves)


@settings(max_examples=60, deadline=None)
@given(log_optimum)
def test_a_family_stops_once_a_worse_lr_lies_beyond_its_best(x):
    optimum = math.exp(x)
    done, _rounds, table = _simulate({("adam", "cosine"): _curve(optimum, None)}, max_extra=20)
    lrs = sorted(table[("adam", "cosine")])
    losses = [table[("adam", "cosine")][lr][0] for lr in lrs]
    best = losses.index(min(losses))
    assert 0 < best < len(lrs) - 1  # bracketed by a worse LR on both sides
    assert lrs[best - 1] <= optimum * FACTOR and lrs[best + 1] >= optimum / FACTOR
    assert done.edge_after == 0


def test_a_diverged_neighbour_ends_the_bracketing():
    # The best is the largest of the first three LRs, the next one out diverges: one extra LR, then stop.
    done, rounds, table = _simulate({("sgd", "step"): _curve(100.0, blowup=5.0)})
    assert rounds == [{("sgd", "step"): pytest.approx(9.0)}]
    assert math.isnan(table[("sgd", "step")][rounds[0][("sgd", "step")]][0])
    assert (done.edge_before, done.edge_after, done.extra_runs) == (1, 0, 1)


def test_the_extra_budget_runs_out_and_the_family_stays_at_the_edge():
    done, rounds, _table = _simulate({("adam", "constant"): _curve(1e4, None)})
    assert len(rounds) == MAX_EXTRA
    assert (done.edge_before, done.edge_after, done.extra_runs) == (1, 1, MAX_EXTRA)
    assert done.unbracketed == (("adam", "constant"),)
    assert "still at the edge when the extra budget ran out" in done.words()


def test_next_round_skips_a_family_that_spent_its_budget():
    table = {
        ("a", "x"): {1.0: {0: 3.0}, 3.0: {0: 2.0}, 9.0: {0: 1.0}},
        ("b", "x"): {1.0: {0: 1.0}, 3.0: {0: 2.0}},
    }
    assert next_round(table, {("a", "x"): MAX_EXTRA}, seed=0) == {("b", "x"): pytest.approx(1 / 3)}
    assert next_round(table, {}, seed=0) == {
        ("a", "x"): pytest.approx(27.0),
        ("b", "x"): pytest.approx(1 / 3),
    }


def test_neighbours_without_every_seed_are_the_ones_trained():
    seeds = (0, 1, 2)
    table = {
        0.1: {0: 0.5},
        0.3: {0: 0.2, 1: 0.25, 2: 0.22},
        0.9: {0: 0.3},
        2.7: {0: math.nan},
    }
    assert lacking_seeds(table, 0.3, seeds) == [0.1, 0.9]
    table[0.9] = {
        0: 0.3,
        1: 0.1,
        2: 0.1,
    }  # now 0.9 is best by the mean over seeds: 2.7 diverged, so nothing beyond
    assert lacking_seeds(table, 0.3, seeds) == [0.1]


def test_a_task_without_a_range_test_spans_its_lr_range():
    grid = grid_without_range_test("adam", (1e-4, 1e-2), (1 / 3, 1.0, 3.0))
    assert grid.anchor == pytest.approx(1e-3)
    assert grid.lrs() == pytest.approx([1e-4, 1e-3, 1e-2])
    assert "no range test" in grid.words() and "0.0001..0.01" in grid.words()
    five = grid_without_range_test("adam", (1e-4, 1e-2), (0.1, 1 / 3, 1.0, 3.0, 10.0))
    assert five.lrs()[0] == pytest.approx(1e-4) and five.lrs()[-1] == pytest.approx(1e-2)
    assert len(five.lrs()) == 5


@pytest.mark.parametrize(("spec", "anchor"), [("adam", DEFAULT_ANCHORS["adam-like"]), ("adamw", 1e-3),
                                              ("sgd", DEFAULT_ANCHORS["sgd-like"]), ("sgdm", 1e-2)])  # fmt: skip
def test_without_lr_range_the_grid_centres_on_the_optimizer_default(spec, anchor):
    grid = grid_without_range_test(spec, None, (1 / 3, 1.0, 3.0))
    assert grid.lrs() == pytest.approx([anchor / 3, anchor, anchor * 3])


@pytest.mark.parametrize("bad", [(1e-2, 1e-4), (0.0, 1.0), (1e-3,), "fast", (1e-3, math.inf)])
def test_a_bad_lr_range_is_one_line(bad):
    with pytest.raises(ValueError, match=r"^lr_range must be \(low, high\) with 0 < low < high, got"):
        grid_without_range_test("adam", bad, (1 / 3, 1.0, 3.0))


losses = st.one_of(st.floats(0.0, 5.0), st.just(math.nan))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(losses, st.booleans()), min_size=1, max_size=7), st.data())
def test_the_lrs_lacking_seeds_are_unsettled_neighbours_and_the_edge_is_beyond_the_grid(rows, data):
    seeds = (0, 1, 2)
    table = {}
    for i, (loss, full) in enumerate(rows):
        lr = 3.0**i
        table[lr] = {0: loss} if not full or math.isnan(loss) else {0: loss, 1: loss + 0.1, 2: loss - 0.1}
    best = data.draw(st.sampled_from(sorted(table)))
    table[best] = {0: 0.5, 1: 0.6, 2: 0.4}  # the recommended LR is a finalist: it trained every seed
    lacking = lacking_seeds(table, best, seeds)
    lrs = sorted(table)
    for lr in lacking:
        assert (
            lr in table and set(table[lr]) == {0} and not math.isnan(table[lr][0])
        )  # trained once, finished
        i = lrs.index(lr)
        assert any(0 <= j < len(lrs) and j != i for j in (i - 1, i + 1))  # next to something tried
    assert best not in lacking
    beyond = open_edge(table, seeds)
    if beyond is not None:  # one grid step beyond everything tried
        assert math.isclose(beyond, lrs[-1] * 3.0) or math.isclose(beyond, lrs[0] / 3.0)
