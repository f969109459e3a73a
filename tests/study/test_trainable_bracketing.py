"""A run that FAILED at an LR (a trial function that raised or timed out there) closes the
study's bracket on its side as a diverged run does, and the family's words say it failed."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.records import EpochRecord, RunRecord
from lrlab.study.bracketing import failed_lrs, family_losses, family_optima, next_round

KEY = ("adam", "constant")


def _run(rid: str, lr: float, status: str, seed: int = 0) -> RunRecord:
    cfg = {"task": "digits-mlp", "optimizer": "adam", "schedule": f"constant(lr={lr!r})", "lr": lr,
           "seed": seed, "epochs": 2, "batch_size": 32}  # fmt: skip
    return RunRecord(rid, "s", status, cfg, seed, error="TimeoutError" if status == "failed" else None)


def _study(losses: dict[float, float | None]):
    """Runs at each LR: done with that final val loss, or failed (None)."""
    runs, epochs = [], {}
    for i, (lr, loss) in enumerate(sorted(losses.items())):
        rid = f"r{i}"
        runs.append(_run(rid, lr, "done" if loss is not None else "failed"))
        if loss is not None:
            epochs[rid] = [EpochRecord(rid, 2, 20, loss, loss, None, None, 1.0)]
    names = {r.config.schedule: "constant" for r in runs}
    return runs, epochs, names


def _optimum(runs, epochs, names):
    table = family_losses(runs, epochs, names, ["adam"])
    schedules = {KEY: {r.config.lr: r.config.schedule for r in runs}}
    failed = failed_lrs(runs, names, ["adam"])
    return table, family_optima(table, schedules, 20, [0], KEY, {KEY: 0}, failed)[0]


def test_a_failed_run_above_the_best_closes_the_bracket():
    runs, epochs, names = _study({0.001: 1.0, 0.003: 0.8, 0.01: 0.5, 0.03: None})
    table, optimum = _optimum(runs, epochs, names)
    assert math.isnan(table[KEY][0.03][0])
    assert next_round(table, {}, seed=0) == {}  # nothing trained toward the LR that failed
    assert optimum.bracketed and optimum.edge is None
    assert optimum.best_lr == 0.01
    assert "0.03 (failed)" in optimum.text
    assert "may lie higher" not in optimum.text
    assert "0.03 failed" in optimum.reason


def test_a_failed_run_below_the_best_closes_the_low_side():
    runs, epochs, names = _study({0.001: None, 0.003: 0.4, 0.01: 0.9})
    table, optimum = _optimum(runs, epochs, names)
    assert next_round(table, {}, seed=0) == {}
    assert optimum.bracketed and "0.001 (failed)" in optimum.text and "may lie lower" not in optimum.text


def test_every_lr_failed_says_failed():
    runs, epochs, names = _study({0.001: None, 0.01: None})
    _, optimum = _optimum(runs, epochs, names)
    assert optimum.lr is None
    assert "diverged or failed" in optimum.text


def test_without_failures_the_words_are_unchanged():
    runs, epochs, names = _study({0.001: 1.0, 0.003: 0.8, 0.01: 0.5})
    table, optimum = _optimum(runs, epochs, names)
    assert next_round(table, {}, seed=0)[KEY] > 0.01  # a best at the top with no failure: extend upward
    assert not optimum.bracketed and "may lie higher" in optimum.text and "failed" not in optimum.text


@settings(max_examples=40, deadline=None)
@given(
    best=st.integers(min_value=0, max_value=3),
    fail_from=st.integers(min_value=1, max_value=4),
)
def test_the_bracket_never_extends_past_a_failed_lr(best, fail_from):
    """LRs at and above ``fail_from`` fail; the others are a V around ``best``: the next LR
    asked for is never above a failed one."""
    lrs = [0.001 * 3**i for i in range(5)]
    losses = {lr: (None if i >= fail_from else 1.0 + abs(i - best)) for i, lr in enumerate(lrs)}
    runs, epochs, names = _study(losses)
    table = family_losses(runs, epochs, names, ["adam"])
    wanted = next_round(table, {}, seed=0)
    assert all(lr < lrs[fail_from] for lr in wanted.values())
    assert set(table[KEY]) == set(lrs)  # a failed LR is a row of the table, not left out
