"""``resolve(config) -> ResolvedRun``: a run config turned, once, into what training needs.

Everything the loop, the vectorised trainer and the executors used to work out for
themselves from a config (the task's defaults, the loaders, the number of steps, the
device, the thread count) is decided here, in one place.

>>> from lrlab.core.records import RunConfig
>>> run = resolve(RunConfig(task="digits-linear", lr=0.1, epochs=2, batch_size=32,
...                         task_options={"train_size": 64, "val_size": 32}))
>>> run.steps_per_epoch, run.total_steps, run.threads, str(run.device)
(2, 4, 1, 'cpu')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from lrlab.core.records import DEFAULT_THREADS, RunConfig
from lrlab.schedules import Schedule
from lrlab.schedules.plateau import find_plateaus

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from lrlab.training.tasks import Task

__all__ = ["ResolvedRun", "check_plateau", "plateau_metric", "resolve", "resolve_device", "steps_per_epoch"]

# The validation loader's batch: at least this, or the training batch when larger.
VAL_BATCH_SIZE = 256


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` (``"cuda:1"``...) or ``"auto"`` (CUDA when available)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device (use cpu or auto)")
        return torch.device(device)
    raise ValueError(f"device must be cpu, cuda or auto, got {device!r}")


def steps_per_epoch(task: Task, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``task`` at ``batch_size``: ``len`` of its training
    loader, counted from the dataset's length, the batch size and ``drop_last``
    (:meth:`Task.steps_per_epoch`); a task-like object without that method is counted on
    a loader of its own."""
    count = getattr(task, "steps_per_epoch", None)
    if callable(count):
        return int(count(batch_size))
    return len(task.train_loader(batch_size, 0))


def plateau_metric(task: Task) -> tuple[str, bool]:
    """The epoch metric that drives a ``plateau(...)`` node of a run's schedule, and whether
    higher is better: the objective the task declares (``Task(objective=...)``), else the
    validation loss (torch's ``ReduceLROnPlateau`` convention; a built-in task's objective,
    the validation error, moves in steps of one example)."""
    if getattr(task, "objective_metric", None):
        objective = task.objective
        return objective.metric, objective.higher_is_better
    return "val_loss", False


def check_plateau(schedule: Schedule, task: Task) -> None:
    """``ValueError`` in one line when a plateau node of ``schedule`` cannot be driven on
    ``task``: its ``mode`` goes against the direction of the metric that drives it."""
    metric, higher = plateau_metric(task)
    wanted = "max" if higher else "min"
    for node in find_plateaus(schedule):
        if node.mode != wanted:
            direction = "higher" if higher else "lower"
            raise ValueError(
                f"plateau(mode={node.mode!r}) is driven by {metric}, where {direction} is better on task "
                f"{getattr(task, 'name', type(task).__name__)!r}: use mode={wanted!r}"
            )


@dataclass(frozen=True)
class ResolvedRun:
    """A :class:`RunConfig` with every default decided and its objects built.

    ``data_seed`` orders the batches (the run's seed, unless a vectorised group shares
    one); ``threads`` is the torch thread count the run trains with.
    """

    config: RunConfig
    task: Task
    epochs: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    schedule: Schedule
    momentum: Schedule | None
    device: torch.device
    threads: int
    data_seed: int
    train_loader: DataLoader
    val_loader: DataLoader

    @property
    def divergence_factor(self) -> float | None:
        return self.config.divergence_factor

    @property
    def plateau_metric(self) -> str | None:
        """The epoch metric fed to the schedule's plateau node(s) (:func:`plateau_metric`),
        None when the schedule has none."""
        return plateau_metric(self.task)[0] if find_plateaus(self.schedule) else None

    def environment(self) -> dict[str, Any]:
        """What the run was trained with, for the run's extras."""
        return {
            "device": str(self.device),
            "threads": self.threads,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "task_kind": self.task.kind,
            "objective": self.task.objective.to_dict(),
        }


def resolve(
    config: RunConfig,
    task: Task | None = None,
    *,
    device: str | torch.device = "cpu",
    data_seed: int | None = None,
) -> ResolvedRun:
    """Decide every default of ``config`` and build its loaders; ``task`` is the task the
    caller already holds (a study's or a sweep's, built once), else it is built from
    ``config.task``, a reference."""
    from lrlab.training.tasks import get_task

    if task is None:
        task = get_task(config.task, **dict(config.task_options))
    check_plateau(config.schedule, task)
    epochs = config.epochs or task.default_epochs
    batch_size = config.batch_size or task.default_batch_size
    seed = config.seed if data_seed is None else int(data_seed)
    train_loader = task.train_loader(batch_size, seed)
    per_epoch = len(train_loader)
    return ResolvedRun(
        config=config,
        task=task,
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=per_epoch,
        total_steps=epochs * per_epoch,
        schedule=config.schedule,
        momentum=config.momentum,
        device=resolve_device(device),
        threads=config.threads or DEFAULT_THREADS,
        data_seed=seed,
        train_loader=train_loader,
        val_loader=task.val_loader(max(batch_size, VAL_BATCH_SIZE)),
    )
