"""The grid of a sweep: every combination of its axes and seeds as a typed run, with a stable id.

A run's id is a hash of the sweep name and its resolved config (``RunConfig.to_dict()``),
so re-running a sweep skips finished runs (``done``, ``diverged``) and restarts the others.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.schedules import parse
from lrlab.sweeps.spec import SweepSpec, substitute

if TYPE_CHECKING:
    from lrlab.training.tasks import Task

__all__ = ["RunPlan", "build_task", "expand", "run_id_for"]


@dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: its id and its typed config."""

    id: str
    config: RunConfig

    @property
    def seed(self) -> int:
        return self.config.seed

    @classmethod
    def of(cls, sweep: str, config: RunConfig) -> RunPlan:
        return cls(run_id_for(sweep, config), config)

    def queued(self, sweep: str) -> RunRecord:
        """The run as the store first holds it (and as a claim asks for it): queued."""
        return RunRecord(id=self.id, sweep=sweep, status=RunStatus.QUEUED, config=self.config, seed=self.seed)


def run_id_for(sweep: str, config: RunConfig) -> str:
    """The stable id of a run: a hash of the sweep name and the resolved config."""
    text = json.dumps({"sweep": sweep, "config": config.to_dict()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_task(spec: SweepSpec) -> Task:
    """The sweep's task, built once from its reference and options (``ValueError`` in one
    line when it cannot be): every run of the sweep trains this object."""
    from lrlab.training.tasks import get_task

    try:
        return get_task(spec.task, **spec.task_options)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"task {spec.task!r} could not be built: {type(exc).__name__}: {exc}") from None


def expand(spec: SweepSpec, task: Task | None = None) -> list[RunPlan]:
    """Every run of the sweep, in a stable order (grid axes, then seeds). ``task`` is the
    sweep's task when already built (:func:`build_task`), read for its defaults and its
    number of batches per epoch."""
    from lrlab.training.resolve import steps_per_epoch

    task = build_task(spec) if task is None else task
    epochs = spec.epochs or task.default_epochs
    grid = spec.grid
    batch_sizes = grid.batch_size or [spec.batch_size or task.default_batch_size]
    per_epoch = {bs: steps_per_epoch(task, bs) for bs in batch_sizes}
    finetune = spec.finetune.model_dump(exclude_none=True) if spec.finetune is not None else None
    plans: list[RunPlan] = []
    axes = itertools.product(
        batch_sizes,
        grid.optimizer,
        grid.schedule,
        grid.lrs(),
        grid.momentum or [None],
        grid.lr_mult or [None],
    )
    for batch_size, optimizer, schedule, lr, momentum, lr_mult in axes:
        numbers = {"lr": lr, "total_steps": epochs * per_epoch[batch_size],
                   "steps_per_epoch": per_epoch[batch_size]}  # fmt: skip
        for seed in spec.seeds:
            config = RunConfig(
                task=spec.task,
                task_options=dict(spec.task_options),
                optimizer=optimizer,
                schedule=parse(substitute(schedule, **numbers)),
                lr=lr,
                seed=seed,
                epochs=epochs,
                batch_size=batch_size,
                divergence_factor=spec.divergence_factor,
                momentum=parse(substitute(momentum, **numbers)) if momentum is not None else None,
                lr_mult=dict(lr_mult) if lr_mult else None,
                finetune=finetune,
                threads=spec.threads,
            )
            plans.append(RunPlan.of(spec.name, config))
    return plans
