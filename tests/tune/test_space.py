"""Search spaces: what a space file allows, what it refuses (one line naming the key), and
that every draw lies inside its ranges and builds the family's schedule."""

from __future__ import annotations

import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.schedules import Cyclic, OneCycle, Warmup
from lrlab.tune.space import Context, SpaceError, parse_space

CONTEXT = Context(steps_per_epoch=20, total_steps=200, finder_lrs={"sgd": 0.1, "adam": 0.002})


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        pytest.param({}, "names no schedule family", id="empty"),
        pytest.param({"optimizer": ["sgd"]}, "names no schedule family", id="only-optimizer"),
        pytest.param({"cosine": {"lr": {"log": [1.0, 0.1]}}}, "low 1 is above high 0.1", id="low-above-high"),
        pytest.param({"cosine": {"lr": 0.1, "gamma": 0.5}}, "cosine has no parameter 'gamma'", id="foreign-param"),
        pytest.param({"cosine": {"lr": 0.1}, "warmup": {"run": [0.0, 1.5]}}, "fraction of the run lies in [0, 1]",
                     id="fraction-above-1"),
        pytest.param({"cyclic": {"base_lr": 0.01, "max_lr": 0.1, "step_size": {"run": [0.1, 2]}}},
                     "fraction of the run", id="step-fraction-above-1"),
        pytest.param({"nosuch": {"lr": 0.1}}, "unknown schedule family 'nosuch'", id="unknown-family"),
        pytest.param({"cyclic": {"max_lr": 0.1}}, "missing base_lr, step_size", id="missing-required"),
        pytest.param({"cyclic": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 10, "mode": ["bogus"]}},
                     "mode must be one of", id="bad-choice"),
        pytest.param({"cyclic": {"base_lr": {"log": [0.01, 1]}, "max_lr": 0.5, "step_size": 10}},
                     "base_lr can be drawn above max_lr", id="contradictory-bounds"),
        pytest.param({"cyclic": {"base_lr": 0.01, "max_lr": 0.1, "step_size": 10, "cycle_decay": {"uniform": [0.5, 1.5]}}},
                     "a decay lies in (0, 1]", id="decay-above-1"),
        pytest.param({"cosine": {"lr": {"from_finder": [0, 3]}}}, "needs low > 0", id="finder-zero"),
        pytest.param({"cosine": {"lr": {"ratio": [0.1, 0.5]}}}, "cannot be a ratio", id="ratio-of-itself"),
        pytest.param({"cosine": {"lr": {"epochs": [1, 2]}}}, "applies to step counts", id="epochs-on-lr"),
        pytest.param({"cosine": {"lr": {"log": [0.1, 1], "uniform": [0.1, 1]}}}, "exactly one of", id="two-forms"),
        pytest.param({"cosine": {"lr": []}}, "categorical choice", id="empty-choice"),
        pytest.param({"optimizer": ["sgd(momentum=-1)"], "cosine": {"lr": 0.1}}, "space.optimizer", id="bad-optimizer"),
    ],
)
def test_bad_spaces_fail_in_one_line_naming_the_key(space, expected):
    with pytest.raises(SpaceError) as info:
        parse_space(space)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith("space")


def test_conditional_knobs_are_drawn_only_for_the_family_drawn():
    space = parse_space({
        "optimizer": ["sgd", "adam"],
        "cyclic": {"max_lr": {"from_finder": [0.5, 2]}, "base_lr": {"ratio": [0.1, 0.5]},
                   "step_size": {"epochs": [0.5, 2]}, "shape": ["triangle", "sine"]},
        "one_cycle": {"max_lr": {"log": [0.01, 1]}, "pct_start": {"uniform": [0.1, 0.5]}},
    })  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    families = set()
    for _ in range(40):
        trial = study.ask()
        choice = space.sample(trial, CONTEXT)
        families.add(choice.family)
        other = "one_cycle" if choice.family == "cyclic" else "cyclic"
        assert not any(k.startswith(other + ".") for k in trial.params)
        if isinstance(choice.schedule, Cyclic):
            multiplier = trial.params["cyclic.max_lr"]
            assert choice.schedule.max_lr == pytest.approx(multiplier * CONTEXT.finder_lrs[choice.optimizer], rel=1e-5)
            assert 0.1 * choice.schedule.max_lr * 0.999 <= choice.schedule.base_lr <= 0.5 * choice.schedule.max_lr * 1.001
            assert 10 <= choice.schedule.step_size <= 40  # 0.5..2 epochs of 20 steps
        else:
            assert isinstance(choice.schedule, OneCycle)
            assert choice.schedule.total_steps == CONTEXT.total_steps
        study.tell(trial, 0.0)
    assert families == {"cyclic", "one_cycle"}


def test_warmup_is_a_fraction_of_the_run_and_shortens_the_inner_schedule():
    space = parse_space({"cosine": {"lr": 0.1, "warmup": {"run": [0.1, 0.1]}}})
    choice = space.sample(optuna.create_study().ask(), CONTEXT)
    assert isinstance(choice.schedule, Warmup)
    assert choice.schedule.steps == 20
    assert choice.schedule.schedule.total_steps == 180
    assert choice.schedule(200) == 0.0 and choice.lr == 0.1


@settings(max_examples=40, deadline=None)
@given(
    low=st.floats(1e-5, 1.0),
    spread=st.floats(1.0, 1e3),
    pct=st.tuples(st.floats(0.05, 0.9), st.floats(0.05, 0.9)).map(sorted),
    seed=st.integers(0, 2**16),
)
def test_every_draw_lies_inside_its_ranges(low, spread, pct, seed):
    high = low * spread
    space = parse_space({"one_cycle": {"max_lr": {"log": [low, high]}, "pct_start": {"uniform": list(pct)}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(3):
        trial = study.ask()
        choice = space.sample(trial, CONTEXT)
        assert low * (1 - 1e-5) <= choice.lr <= high * (1 + 1e-5)
        assert pct[0] - 1e-6 <= choice.schedule.pct_start <= pct[1] + 1e-6
        assert math.isfinite(choice.schedule(CONTEXT.total_steps - 1))
        study.tell(trial, 0.0)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(-10, 10), b=st.floats(-10, 10))
def test_a_range_is_refused_exactly_when_low_is_above_high_or_not_positive(a, b):
    table = {"cosine": {"lr": {"log": [a, b]}}}
    if a > b or a <= 0:
        with pytest.raises(SpaceError):
            parse_space(table)
    else:
        assert parse_space(table).searched == ["cosine.lr"]
