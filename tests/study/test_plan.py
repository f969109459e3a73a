"""The schedules a study derives from a range test, and its budgets."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrlab.optim.grammar import optimizer_key, resolve_optimizer
from lrlab.schedules import parse
from lrlab.schedules.summary import key_points
from lrlab.study.plan import BUDGETS, SCHEDULE_NAMES, study_schedules


@given(
    lr=st.floats(1e-5, 10.0),
    ratio=st.floats(1.0, 10.0),
    total_steps=st.integers(6, 20_000),
)
def test_every_study_schedule_parses_and_stays_within_its_bounds(lr, ratio, total_steps):
    base_lr, max_lr = lr / ratio, lr * ratio
    specs = study_schedules(lr, base_lr, max_lr, total_steps)
    assert tuple(specs) == SCHEDULE_NAMES
    steps = np.arange(total_steps, dtype=float)
    for name, schedule in specs.items():
        assert parse(str(schedule)) == schedule, name  # the spec people read is the schedule trained
        values = schedule(steps)
        assert np.all(np.isfinite(values)) and np.all(values >= 0), name
        assert values.max() <= max(max_lr, lr) * (1 + 1e-3), name


def test_decaying_schedules_fall_about_100x_by_the_end():
    specs = study_schedules(0.1, 0.025, 0.4, total_steps=900)
    for name in ("step", "exponential"):
        kp = key_points(specs[name], 900)
        assert kp.decay_factor == pytest.approx(100, rel=0.02), name


def test_cyclic_schedules_make_three_whole_cycles_and_end_at_base():
    specs = study_schedules(0.1, 0.025, 0.4, total_steps=600)
    triangular = specs["triangular"]
    peaks = [triangular(100 + 200 * k) for k in range(3)]
    assert peaks == pytest.approx([0.4] * 3)
    assert triangular(600) == pytest.approx(0.025)
    sine = specs["sine-decay"]
    assert [sine(100 + 200 * k) for k in range(3)] == pytest.approx(
        [0.4, 0.025 + 0.375 / 2, 0.025 + 0.375 / 4]
    )


def test_bad_finder_numbers_are_rejected_by_name():
    with pytest.raises(ValueError, match="max_lr must be >= base_lr"):
        study_schedules(0.1, 0.5, 0.2, total_steps=100)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        study_schedules(float("nan"), 0.1, 0.2, total_steps=100)


def test_budgets_scale_epochs_seeds_and_lrs():
    assert BUDGETS["small"].epochs(20) == 10 and BUDGETS["small"].epochs(2) == 3
    assert len(BUDGETS["large"].seeds) > len(BUDGETS["medium"].seeds) == len(BUDGETS["small"].seeds) == 3
    assert len(BUDGETS["large"].lr_factors) > len(BUDGETS["medium"].lr_factors)
    assert resolve_optimizer("sgdm") == "sgd(momentum=0.9)"
    assert resolve_optimizer("sgd(momentum=0.95)") == "sgd(momentum=0.95)"
    assert optimizer_key("sgd(momentum=0.9)") == "sgdm"


def test_every_budget_trains_the_finders_lr_and_half_a_decade_either_side():
    from lrlab.study.plan import factor_label

    for budget in BUDGETS.values():
        assert 1.0 in budget.lr_factors  # the LR the range test recommends is trained
        assert max(budget.lr_factors) >= 3.0 and min(budget.lr_factors) <= 1 / 3
    assert [factor_label(f) for f in BUDGETS["small"].lr_factors] == ["x1/3", "x1", "x3"]
