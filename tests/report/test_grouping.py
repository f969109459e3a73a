"""Runs group by configuration (seed aside); labels name only what varies."""

import numpy as np

from lrlab.core.grouping import (
    config_axes,
    epoch_stats,
    group_runs,
    schedule_family,
    schedule_shape,
    varying_axes,
)
from lrlab.schedules import parse

from ._records import epochs, run


def test_seeds_of_one_configuration_form_one_group_ordered_by_lr():
    runs = [run("b0", 0.5, 0), run("a0", 0.05, 0), run("b1", 0.5, 1), run("a1", 0.05, 1)]
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["lr=0.05", "lr=0.5"]
    assert [g.seeds for g in groups] == [(0, 1), (0, 1)]
    assert [g.index for g in groups] == [0, 1]


def test_schedule_templated_by_lr_is_one_axis_value_and_named_by_family():
    runs = [
        run("a", 0.1, schedule="cosine(lr=0.1, total_steps=100)"),
        run("b", 0.2, schedule="cosine(lr=0.2, total_steps=100)"),
        run("c", 0.1, schedule="constant(lr=0.1)"),
    ]
    labels = [g.label for g in group_runs(runs)]
    assert labels == ["lr=0.1, schedule=constant", "lr=0.1, schedule=cosine", "lr=0.2, schedule=cosine"]
    assert schedule_shape(parse("cosine(lr=0.2, total_steps=100)"), 0.2) == "cosine(lr=lr, total_steps=100)"
    assert schedule_family(parse("warmup(cosine(lr=1, total_steps=9), steps=1)")) == "warmup+cosine"
    assert schedule_family(parse("sequence([constant(lr=1), cosine(lr=1, total_steps=9)], boundaries=[5])")) == (
        "sequence+constant+cosine"
    )


def test_schedules_of_one_family_with_different_numbers_keep_their_full_spec():
    runs = [run("a", 0.1, schedule="step_decay(lr=0.1, step_size=10)"),
            run("b", 0.1, schedule="step_decay(lr=0.1, step_size=20)")]  # fmt: skip
    assert [g.label for g in group_runs(runs)] == [
        "schedule=step_decay(lr=lr, step_size=10)",
        "schedule=step_decay(lr=lr, step_size=20)",
    ]


def test_only_varying_axes_are_named():
    configs = [config_axes(run("a", 0.1, optimizer="adam").config), config_axes(run("b", 0.1, optimizer="sgd").config)]
    assert varying_axes(configs) == ["optimizer"]


def test_epoch_stats_average_over_seeds_and_drop_non_finite_values():
    a = epochs("a", [1.0, 0.5, 0.25], [1.1, 0.6, float("nan")])
    b = epochs("b", [3.0, 1.5], [1.3, 0.8])
    s = epoch_stats([a, b], "val_loss")
    assert s.epoch.tolist() == [1, 2]
    np.testing.assert_allclose(s.mean, [1.2, 0.7])
    np.testing.assert_allclose(s.low, [1.1, 0.6])
    assert s.count.tolist() == [2, 2]
