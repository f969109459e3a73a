"""The proxies of a transfer: each a task at one value of the axis, trained at a grid of LRs
and every seed through the sweeps machinery, into sweeps named after the transfer.

A proxy's runs are an ordinary sweep (``{transfer}-{axis}{value}``): a re-run skips every
finished run, and a factory whose model changed under the same name is refused in one line
(the task's fingerprint, as for a study or a sweep).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lrlab.core.ranking import final_metric
from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.schedules import Schedule, parse
from lrlab.study.plan import study_schedules
from lrlab.sweeps import RunPlan, run_plans, substitute
from lrlab.training.trial_task import is_trainable
from lrlab.transfer.checks import RUN_AXES, SCHEDULES, TransferError

if TYPE_CHECKING:
    from lrlab.store.sqlite import Store
    from lrlab.training.tasks import Task

__all__ = ["Proxy", "ProxyTrainer", "build_proxy", "build_schedule", "objective_of", "proxy_sweep", "task_of"]


@dataclass(frozen=True)
class Proxy:
    """One rung of the ladder: the axis ``value``, the task the factory built for it, and
    the run's shape (epochs, batch size, batches per epoch) at that value."""

    value: float
    task: Task
    sweep: str
    epochs: int
    batch_size: int
    steps_per_epoch: int
    task_options: Mapping[str, Any]
    lr_mult: Mapping[str, float] | None = None  # per-parameter LR multipliers (μP)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def proxy_sweep(name: str, axis: str, value: float) -> str:
    """``mlp-width64``: the sweep that holds a proxy's runs."""
    return f"{name}-{axis.replace('_', '-')}{_label(value)}"


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def task_of(made: Any, factory: Callable[..., Any]) -> Task:
    """The factory's result as a task: a ``Task``, or the model function form of
    ``lrlab.study`` (``(model_fn, train, val)`` or a dict of ``lrlab.study``'s keywords)."""
    from lrlab.study.api import user_task
    from lrlab.training.tasks import Task
    from lrlab.training.trial_task import as_task

    if isinstance(made, Task):
        return made
    if is_trainable(made):
        return as_task(made)  # type: ignore[return-value]  # a trainable stands where a task does
    if isinstance(made, tuple) and len(made) == 3 and callable(made[0]):
        return user_task(made[0], made[1], made[2], name=_name(factory))
    if isinstance(made, Mapping) and {"model_fn", "train", "val"} <= set(made):
        options = {k: v for k, v in made.items() if k not in ("model_fn", "train", "val")}
        options.setdefault("name", _name(factory))
        return user_task(made["model_fn"], made["train"], made["val"], **options)
    raise TransferError(
        f"{_name(factory)}() must return a Task, a trainable, (model_fn, train, val) or a dict with model_fn, train "
        "and val, "
        f"got {type(made).__name__}"
    )


def _name(factory: Callable[..., Any]) -> str:
    name = getattr(factory, "__name__", "") or "model"
    return "model" if name.startswith("<") else name.replace("_", "-")


def build_proxy(
    factory: Callable[..., Any],
    axis: str,
    value: float,
    *,
    name: str,
    epochs: int | None,
    batch_size: int | None,
) -> Proxy:
    """The proxy at ``value``: the factory called with ``axis=value`` (without an argument for
    ``steps`` and ``batch_size``, whose value then sets the run's epochs or batch size)."""
    from lrlab.training.resolve import steps_per_epoch

    number = int(value) if float(value).is_integer() else value
    try:
        made = _call(factory, axis, number)
    except TransferError:
        raise
    except Exception as exc:
        raise TransferError(
            f"{_name(factory)}({'' if axis in RUN_AXES else f'{axis}={number!r}'}) raised "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    task = task_of(made, factory)
    if axis == "batch_size" and is_trainable(task):
        raise TransferError(
            f"{_name(factory)} is a trainable: it makes its own batches, so the batch_size axis does not reach it; "
            "declare the batch size as one of its options and use that as the axis"
        )
    run_epochs = int(value) if axis == "steps" else (epochs or task.default_epochs)
    size = int(value) if axis == "batch_size" else (batch_size or task.default_batch_size)
    # A trainable's runs carry its own options (what its trial reads); a task's, the axis value.
    options = dict(task.options) if is_trainable(task) else {} if axis in RUN_AXES else {axis: number}
    return Proxy(
        value, task, proxy_sweep(name, axis, value), run_epochs, size, steps_per_epoch(task, size), options
    )


def _call(factory: Callable[..., Any], axis: str, number: float) -> Any:
    """The factory's result at ``axis = number``; a trainable itself is no factory: the value
    is one of its declared options (or, on a run axis, nothing to pass)."""
    if is_trainable(factory):
        return factory.task(**({} if axis in RUN_AXES else {axis: number}))  # type: ignore[attr-defined]
    return factory() if axis in RUN_AXES else factory(**{axis: number})


def build_schedule(schedule: str, lr: float, total_steps: int, steps_per_epoch: int) -> Schedule:
    """``schedule`` (a family of :data:`SCHEDULES`, or a spec with ``{lr}`` and
    ``{total_steps}``) peaking at ``lr`` over ``total_steps``."""
    if schedule in SCHEDULES:
        return study_schedules(lr, lr, lr, max(2, total_steps), cycles=1, families=(schedule,))[schedule]
    return parse(substitute(schedule, lr=lr, total_steps=total_steps, steps_per_epoch=steps_per_epoch))


def objective_of(task: Task) -> tuple[str, float]:
    """The metric an optimum is judged on and its sign (losses lower is better): the task's
    own objective when it declares one, else the final validation loss (smooth in the LR,
    where an error rate on a small validation set ties)."""
    if task.objective_metric is not None:
        return task.objective_metric, -1.0 if task.objective.higher_is_better else 1.0
    return "val_loss", 1.0


@dataclass
class ProxyTrainer:
    """Trains a proxy at LRs (``evaluate``, the callback of ``lrlab.core.bracket.bracket``):
    every seed, one sweep per proxy, finished runs taken from the store."""

    proxy: Proxy
    store: Store
    optimizer: str
    schedule: str
    seeds: tuple[int, ...]
    execution: dict[str, Any]
    described: dict[str, Any]

    def plans(self, lrs: Sequence[float]) -> list[RunPlan]:
        p = self.proxy
        out = []
        for lr in lrs:
            schedule = build_schedule(self.schedule, lr, p.total_steps, p.steps_per_epoch)
            for seed in self.seeds:
                config = RunConfig(task=p.task.name, lr=lr,
                                   optimizer=self.optimizer, schedule=schedule, seed=seed, epochs=p.epochs,
                                   batch_size=p.batch_size, task_options=dict(p.task_options),
                                   lr_mult=p.lr_mult)  # fmt: skip
                out.append(RunPlan.of(p.sweep, config))
        return out

    def evaluate(self, lrs: Sequence[float]) -> dict[float, list[float]]:
        """Train ``lrs`` (every seed; finished runs skipped) and return each LR's loss per seed
        (NaN where a run diverged)."""
        lrs = list(lrs)
        plans = self.plans(lrs)
        spec = {**self.described, "lrs": [*self.described.get("lrs", []), *lrs]}
        self.described = spec
        records = run_plans(plans, self.store, self.proxy.sweep, spec, task=self.proxy.task, **self.execution)
        return self.losses(lrs, records)

    def losses(self, lrs: Sequence[float], records: Sequence[RunRecord]) -> dict[float, list[float]]:
        metric, sign = objective_of(self.proxy.task)
        epochs = self.store.epochs_for([r.id for r in records])
        out: dict[float, list[float]] = {}
        per_lr = len(self.seeds)
        for index, lr in enumerate(lrs):
            runs = records[index * per_lr : (index + 1) * per_lr]
            out[lr] = [_loss(r, epochs.get(r.id, ()), metric, sign) for r in runs]
        return out


def _loss(record: RunRecord, epochs: Sequence[Any], metric: str, sign: float) -> float:
    """A run's loss for the bracket: its final ``metric`` (signed), NaN when it diverged."""
    if record.status is RunStatus.DIVERGED:
        return math.nan
    if record.status is RunStatus.DONE:
        value = final_metric(epochs, metric)
        return math.nan if value is None else sign * value
    error = (
        (record.error or record.status.value).splitlines()[0] if (record.error or "") else record.status.value
    )
    raise RuntimeError(f"run {record.id} of {record.sweep} did not finish ({record.status.value}): {error}")
