"""One trial of a tune: the objective it is scored by, the training of its runs (each
epoch reported to Optuna's pruner), what it ended as, and handing it back when interrupted.

Used by the search loop (:mod:`lrlab.tune.engine`), the Ray workers
(:mod:`lrlab.tune.ray_backend`) and population-based training (:mod:`lrlab.tune.pbt`).
"""

from __future__ import annotations

import contextlib
import math
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lrlab.core.ranking import rank
from lrlab.core.records import Objective, RunRecord, RunStatus
from lrlab.formatting import num
from lrlab.store.sqlite import Store
from lrlab.sweeps.grid import RunPlan
from lrlab.training.recorder import RunProgress
from lrlab.training.trial import Pruned  # raised from a run's progress callback when Optuna's pruner stops it
from lrlab.training.trial_run import train_any

__all__ = [
    "PRUNED_PREFIX",
    "Pruned",
    "TrialOutcome",
    "epoch_value",
    "objective_of",
    "penalty",
    "pruning_hook",
    "requeue",
    "score",
    "train_trial",
]

PRUNED_PREFIX = "Pruned: "

ProgressFn = Callable[[Any], None]


@dataclass(frozen=True)
class TrialOutcome:
    """One finished trial: its Optuna state (``complete``, ``pruned``, ``diverged`` is
    complete with the untrained model's score, ``failed``), value and run."""

    number: int
    state: str
    value: float | None
    run_ids: tuple[str, ...]
    params: dict[str, Any]
    schedule: str
    optimizer: str
    lr: float
    steps: int
    pruned_epoch: int | None = None
    audit_value: float | None = None


def objective_of(task: Any) -> tuple[str, str]:
    """The metric a tune optimises and its direction: the task's declared objective where
    it has one, else validation error for classifiers and validation loss otherwise."""
    declared = getattr(task, "objective", None)
    if declared is None:
        try:
            declared = Objective.for_kind(task.kind)
        except ValueError:
            declared = None
    if declared is not None:
        return declared.metric, "maximize" if declared.higher_is_better else "minimize"
    return ("val_error" if task.kind == "classification" else "val_loss"), "minimize"


def epoch_value(event: RunProgress, metric: str) -> float | None:
    """The objective at an epoch event, where the event carries it (validation error is
    one minus the accuracy; validation loss as such)."""
    reported = getattr(event, "metrics", None)  # a trainable function's report carries every metric
    if reported and metric in reported:
        return float(reported[metric])
    if metric == "val_error" and event.val_accuracy is not None:
        return 1.0 - float(event.val_accuracy)
    if metric == "val_loss" and event.val_loss is not None:
        return float(event.val_loss)
    return None


def score(records: Sequence[RunRecord], store: Store) -> float | None:
    """The trial's score: the one ranking's mean over its finished seeds."""
    done = [r for r in records if r.status is RunStatus.DONE]
    if not done:
        return None
    ranked = rank(done, store.epochs_for([r.id for r in done]))
    return ranked[0].mean if ranked else None


def penalty(record: RunRecord, store: Store, metric: str) -> float:
    """A diverged trial scores as the untrained model: error 1, or its first step's loss."""
    if metric == "val_error":
        return 1.0
    steps = store.steps(record.id)
    first = float(steps.loss[0]) if len(steps) else math.inf
    return first if math.isfinite(first) else 1e6


def pruning_hook(trial: Any, metric: str, pruner: str, forward: ProgressFn | None) -> ProgressFn:
    """A ``train_run`` progress callback that reports each epoch's metric to ``trial`` and
    raises :class:`Pruned` when Optuna says so."""

    def on(event: Any) -> None:
        if forward is not None:
            forward(event)
        if not isinstance(event, RunProgress) or event.event != "epoch":
            return
        value = epoch_value(event, metric)
        if value is None or not math.isfinite(value):
            return
        trial.report(value, event.epoch)
        if event.epoch < event.epochs and trial.should_prune():
            raise Pruned(f"by the {pruner} pruner after epoch {event.epoch} of {event.epochs} ({metric} {num(value)})")

    return on


def train_trial(
    plans: Sequence[RunPlan],
    store: Store,
    sweep: str,
    *,
    trial: Any = None,
    metric: str = "val_loss",
    pruner: str = "none",
    progress: ProgressFn | None = None,
    device: str = "cpu",
    owner: str | None = None,
) -> list[RunRecord]:
    """Train a trial's runs (one per seed) in this process; the first seed's epochs go to
    ``trial`` for pruning. Stops at the first run that does not finish."""
    records = []
    for index, plan in enumerate(plans):
        hook = pruning_hook(trial, metric, pruner, progress) if trial is not None and index == 0 else progress
        record = train_any(plan.config, store, plan.id, progress=hook, device=device, sweep=sweep, owner=owner)
        records.append(record)
        if record.status is not RunStatus.DONE:
            break
    return records


def requeue(study: Any, trial: Any) -> None:
    """Hand an interrupted trial back: failed in Optuna, its parameters queued again (a
    resume trains them first). SIGINT is held off for the two writes, so a second Ctrl-C
    cannot leave a failed trial without its retry."""
    import optuna

    with _sigint_held():
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT ignored inside the block (where the main thread can set handlers)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
