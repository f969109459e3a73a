"""Runs grouped by configuration (the config without its seed), with short labels.

A label names only the axes that vary across the runs being compared (``lr=0.1,
optimizer=adam``): the axes every run shares go into the report's subtitle instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrlab.core.records import EpochRecord, RunConfig, RunRecord, RunStatus, schedule_family
from lrlab.schedules import Schedule
from lrlab.schedules.spec import format_value as format_spec_value

__all__ = [
    "Configuration",
    "config_axes",
    "epoch_stats",
    "format_value",
    "group_runs",
    "is_diverged",
    "schedule_family",
    "schedule_shape",
    "shared_axes",
    "varying_axes",
]

# Axes in the order a label names them.
LABEL_ORDER = ("lr", "schedule", "optimizer", "task", "epochs", "batch_size", "lr_mult")


@dataclass(frozen=True)
class Configuration:
    """Runs that differ only in their seed."""

    key: str  # RunConfig.key(): the config without its seed
    config: RunConfig  # the first run's config
    runs: tuple[RunRecord, ...]  # sorted by seed
    label: str
    index: int  # position in the report's ordering (colours follow it)

    @property
    def axes(self) -> dict[str, Any]:
        return config_axes(self.config)

    @property
    def lr(self) -> float:
        return self.config.lr

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs)

    @property
    def diverged(self) -> tuple[RunRecord, ...]:
        return tuple(r for r in self.runs if is_diverged(r))


def is_diverged(run: RunRecord) -> bool:
    return run.status is RunStatus.DIVERGED or run.diverged_step is not None


def config_axes(config: RunConfig) -> dict[str, Any]:
    """The axes a configuration is labelled by: its config without the seed, with the
    schedules as :class:`Schedule` objects (so that labels read them, never their text)."""
    axes = {k: v for k, v in config.to_dict().items() if k != "seed"}
    axes["schedule"] = config.schedule
    if config.momentum is not None:
        axes["momentum"] = config.momentum
    return axes


def format_value(value: Any) -> str:
    """A config value as a label shows it: numbers in short ``g`` form, JSON otherwise."""
    if isinstance(value, Schedule):
        return str(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def schedule_shape(schedule: Schedule, lr: float | None = None) -> str:
    """The schedule's spec with its parameters equal to the run's LR written as ``lr``.

    Sweeps put the LR into the schedule, so ``cosine(lr=0.1, ...)`` and ``cosine(lr=0.5, ...)``
    are the same schedule at two learning rates. Read from the schedule's fields.

    >>> from lrlab.schedules import cosine, warmup
    >>> schedule_shape(warmup(cosine(0.1, total_steps=100), steps=10), 0.1)
    'warmup(cosine(lr=lr, total_steps=100), steps=10)'
    """
    parts: list[str] = []
    for index, field in enumerate(dataclasses.fields(schedule)):  # type: ignore[arg-type]
        value = getattr(schedule, field.name)
        if field.default is not dataclasses.MISSING and value == field.default:
            continue
        holds = isinstance(value, Schedule) or (isinstance(value, tuple) and value and isinstance(value[0], Schedule))
        # Only LR fields are written relative to the LR (a decay_rate of 0.01 is no LR).
        text = _shape_value(value, lr if holds or "lr" in field.name else None)
        parts.append(text if index == 0 and holds else f"{field.name}={text}")
    return f"{schedule.name}({', '.join(parts)})"


def _shape_value(value: Any, lr: float | None) -> str:
    if isinstance(value, Schedule):
        return schedule_shape(value, lr)
    if isinstance(value, tuple) and value and isinstance(value[0], Schedule):
        return "[" + ", ".join(schedule_shape(v, lr) for v in value) + "]"
    if (
        lr is not None
        and isinstance(value, float)
        and math.isclose(value, lr, rel_tol=1e-9, abs_tol=0.0)
    ):
        return "lr"
    return format_spec_value(value)


def _axis_value(axes: dict[str, Any], axis: str) -> str:
    value = axes.get(axis)
    if isinstance(value, Schedule):
        return schedule_shape(value, _as_float(axes.get("lr")))
    return format_value(value)


def _as_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def varying_axes(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Axes (seed excluded) whose value differs between ``configs`` (``config_axes``), in label order."""
    keys = sorted({k for c in configs for k in c if k != "seed"})
    varying = [k for k in keys if len({_axis_value(c, k) for c in configs}) > 1]
    return sorted(varying, key=lambda k: (LABEL_ORDER.index(k) if k in LABEL_ORDER else len(LABEL_ORDER), k))


def shared_axes(configs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Axes every config shares (seed excluded), formatted for a subtitle."""
    if not configs:
        return {}
    keys = sorted(set.intersection(*[set(c) for c in configs]) - {"seed"})
    varying = set(varying_axes(configs))
    return {k: format_value(configs[0][k]) for k in keys if k not in varying}


def _sort_value(value: Any) -> tuple[int, float, str]:
    number = _as_float(value)
    return (0, number, "") if number is not None else (1, 0.0, format_value(value))


def group_runs(runs: Sequence[RunRecord]) -> list[Configuration]:
    """Group ``runs`` by configuration, ordered by the varying axes (LR numerically)."""
    buckets: dict[str, list[RunRecord]] = {}
    for run in runs:
        buckets.setdefault(run.configuration, []).append(run)
    axes_of = [config_axes(rs[0].config) for rs in buckets.values()]
    axes = varying_axes(axes_of)
    short_schedule = _families_distinguish(axes_of, axes)
    entries = []
    for (key, members), config_axes_ in zip(buckets.items(), axes_of):
        label = _label(config_axes_, axes, short_schedule)
        order = tuple(_sort_value(config_axes_.get(a)) for a in axes)
        entries.append((order, label, key, tuple(sorted(members, key=lambda r: (r.seed, r.id)))))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [
        Configuration(key=key, config=members[0].config, runs=members, label=label, index=i)
        for i, (_order, label, key, members) in enumerate(entries)
    ]


def _families_distinguish(configs: list[dict[str, Any]], axes: list[str]) -> bool:
    """True when naming schedules by family alone still tells every configuration apart."""
    if "schedule" not in axes:
        return False
    full = {tuple(_axis_value(c, a) for a in axes) for c in configs}
    short = {
        tuple(schedule_family(c[a]) if a == "schedule" else _axis_value(c, a) for a in axes)
        for c in configs
    }
    return len(short) == len(full)


def _label(axes_values: dict[str, Any], axes: list[str], short_schedule: bool) -> str:
    if not axes:
        return "all runs"
    parts = []
    for axis in axes:
        value = axes_values.get(axis)
        if axis == "schedule" and short_schedule:
            text = schedule_family(value)
        else:
            text = _axis_value(axes_values, axis)
        parts.append(f"{axis}={text}")
    return ", ".join(parts)


@dataclass(frozen=True)
class EpochStats:
    """A metric per epoch across the seeds of a configuration: mean, min and max."""

    epoch: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray  # how many seeds reported the metric at that epoch


def epoch_stats(per_run: Sequence[Sequence[EpochRecord]], metric: str) -> EpochStats:
    """Mean and range over runs of ``metric`` (an EpochRecord field), epoch by epoch.

    Epochs where no run has a finite value are left out; a run that stopped early (it
    diverged) simply stops contributing.

    >>> a = [EpochRecord("a", 1, 10, 1.0, 1.2, None, None, 0.0), EpochRecord("a", 2, 20, 0.5, 0.9, None, None, 0.0)]
    >>> b = [EpochRecord("b", 1, 10, 3.0, 1.4, None, None, 0.0)]
    >>> s = epoch_stats([a, b], "train_loss")
    >>> s.epoch.tolist(), s.mean.tolist(), s.low.tolist(), s.high.tolist(), s.count.tolist()
    ([1, 2], [2.0, 0.5], [1.0, 0.5], [3.0, 0.5], [2, 1])
    """
    values: dict[int, list[float]] = {}
    for records in per_run:
        for rec in records:
            value = rec.value(metric)
            if value is not None and math.isfinite(value):
                values.setdefault(rec.epoch, []).append(float(value))
    epochs = sorted(values)
    # Plain Python on a few seeds per epoch: a numpy array per epoch costs more than the sums.
    lists = [values[e] for e in epochs]
    return EpochStats(
        epoch=np.asarray(epochs, dtype=np.int64),
        mean=np.asarray([sum(v) / len(v) for v in lists], dtype=np.float64),
        low=np.asarray([min(v) for v in lists], dtype=np.float64),
        high=np.asarray([max(v) for v in lists], dtype=np.float64),
        count=np.asarray([len(v) for v in lists], dtype=np.int64),
    )
