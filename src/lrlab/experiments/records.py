"""Plain records read from the store: the single source of truth for reports.

These types are the contract between the store (``experiments/store.py``), which
returns them, and the report, finder and study, which consume them. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RUN_STATUSES = ("queued", "running", "done", "diverged", "failed")

# Keys of RunRecord.config that identify a configuration; runs that differ only in
# ``seed`` are repeats of one configuration.
CONFIG_AXES = ("task", "optimizer", "schedule", "lr", "epochs", "batch_size", "lr_mult")


@dataclass(frozen=True)
class RunRecord:
    """One training run.

    ``config`` is the fully resolved run spec (JSON-ready): at least ``task``,
    ``optimizer`` (spec string such as ``"sgd(momentum=0.9)"``), ``schedule`` (a
    schedule spec string with numbers substituted), ``lr``, ``seed``, ``epochs``,
    ``batch_size``.
    """

    id: str
    sweep: str | None
    status: str
    config: dict[str, Any]
    seed: int
    error: str | None = None
    diverged_step: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    lrlab_version: str | None = None
    torch_version: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def configuration(self) -> tuple[tuple[str, str], ...]:
        """The config without the seed, as a hashable key that groups repeats."""
        return tuple(sorted((k, repr(v)) for k, v in self.config.items() if k != "seed"))


@dataclass(frozen=True)
class EpochRecord:
    """Metrics at the end of an epoch (``epoch`` is 1-based; ``step`` the global step
    count at that point). ``val_error``/``val_accuracy`` are None for language models,
    whose losses are in nats per token."""

    run_id: str
    epoch: int
    step: int
    train_loss: float | None
    val_loss: float | None
    val_error: float | None
    val_accuracy: float | None
    wall_time: float


@dataclass(frozen=True)
class StepSeries:
    """Every optimizer step of a run, columnar (numpy arrays of equal length).

    ``lr`` is the first param group's LR; ``lrs`` has one column per group
    (shape ``(steps, groups)``); ``momentum`` is NaN where the optimizer has none.
    """

    run_id: str
    step: np.ndarray
    epoch: np.ndarray
    lr: np.ndarray
    lrs: np.ndarray
    momentum: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class FinderRecord:
    """A stored learning-rate range test."""

    id: str
    task: str
    optimizer: str
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: dict[str, float]
    lr: float
    reason: str
    base_lr: float | None = None
    max_lr: float | None = None
    sweep: str | None = None
    created_at: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
