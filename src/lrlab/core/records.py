"""Typed records: a run's configuration and status, its metrics, range tests. No torch here.

These types are the contract between the store (``lrlab.store.sqlite``), which returns
them, and everything that trains, reports or recommends. A run is a :class:`RunConfig`
value, validated once, with every default spelled here and nowhere else; its schedules
are :class:`~lrlab.schedules.Schedule` objects, never spec strings, inside the process.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from lrlab.core.defaults import default_momentum, double_warmup, schedule_warmups
from lrlab.schedules import Schedule, constant, parse

__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_THREADS",
    "EpochRecord",
    "FinderRecord",
    "Objective",
    "RunConfig",
    "RunRecord",
    "RunStatus",
    "StepSeries",
    "default_momentum",
    "double_warmup",
    "schedule_family",
    "schedule_warmups",
]

DEFAULT_OPTIMIZER = "sgd"
# A loss above this many times the first step's loss stops a run as diverged.
DEFAULT_DIVERGENCE_FACTOR = 4.0
# Torch threads per run unless the config says otherwise: a fixed number, so that a run
# gives the same numbers however many runs train beside it (``--jobs``).
DEFAULT_THREADS = 1
_MAX_SEED = 2**63


class RunStatus(str, enum.Enum):
    """Where a run is in its lifecycle: queued -> running -> done | diverged | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        """The run reached its outcome (done or diverged): a sweep never trains it again."""
        return self in (RunStatus.DONE, RunStatus.DIVERGED)

    @property
    def is_ended(self) -> bool:
        """The run stopped for good this attempt (finished, or failed with an error)."""
        return self.is_finished or self is RunStatus.FAILED

    @classmethod
    def parse(cls, value: Any) -> RunStatus:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"status must be one of {allowed}, got {value!r}") from None


def _number(name: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
    return number


def _whole(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value >= maximum:
        raise ValueError(f"{name} must be a whole number below 2**63, got {value!r}")
    return int(value)


def _schedule(name: str, value: Any) -> Schedule | None:
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        try:
            return parse(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if isinstance(value, dict):
        from lrlab.schedules import from_dict

        return from_dict(value)
    raise ValueError(f"{name} must be a schedule, a spec string or None, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """One training run, fully described and validated at construction.

    ``schedule`` drives the learning rate (default ``constant(lr)``); ``epochs`` and
    ``batch_size`` left at None take the task's defaults when the run is resolved
    (``lrlab.training.resolve``); ``threads`` None means ``DEFAULT_THREADS``. ``momentum``
    left at None is :func:`default_momentum`: a one-cycle ``schedule`` with an optimizer
    that has a momentum cycles it 0.95 -> 0.85 -> 0.95, as torch's OneCycleLR does (None
    otherwise: the optimizer's own).
    ``finetune`` holds ``rules``, ``layer_decay``, ``freeze``, ``unfreeze_every``,
    ``weight_decay`` and ``no_decay`` (see ``lrlab.finetune``). A schedule may be given as
    a spec string or a ``to_dict()`` dict; it is stored as a ``Schedule``.

    >>> config = RunConfig(task="digits-mlp", lr=0.1, optimizer="sgd(momentum=0.9)")
    >>> str(config.schedule), config.divergence_factor
    ('constant(lr=0.1)', 4.0)
    >>> RunConfig.from_dict(config.to_dict()) == config
    True
    """

    task: str
    lr: float
    optimizer: str = DEFAULT_OPTIMIZER
    schedule: Schedule = None  # type: ignore[assignment]  # None: constant(lr)
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    task_options: Mapping[str, Any] = field(default_factory=dict)
    momentum: Schedule | None = None
    lr_mult: Mapping[str, float] | None = None
    finetune: Mapping[str, Any] | None = None
    divergence_factor: float | None = DEFAULT_DIVERGENCE_FACTOR
    threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task must be a non-empty string, got {self.task!r}")
        if not isinstance(self.optimizer, str) or not self.optimizer.strip():
            raise ValueError(f"optimizer must be a non-empty spec string, got {self.optimizer!r}")
        lr = _number("lr", self.lr, minimum=0.0)
        schedule = _schedule("schedule", self.schedule)
        values: dict[str, Any] = {
            "lr": lr,
            "schedule": schedule if schedule is not None else constant(lr),
            "momentum": _schedule("momentum", self.momentum),
            "seed": _whole("seed", self.seed, minimum=0, maximum=_MAX_SEED),
            "task_options": dict(self.task_options or {}),
        }
        for name in ("epochs", "batch_size", "threads"):
            value = getattr(self, name)
            values[name] = None if value is None else _whole(name, value, minimum=1)
        factor = self.divergence_factor
        values["divergence_factor"] = (
            None if factor is None else _number("divergence_factor", factor, minimum=0.0, strict=True)
        )
        if self.lr_mult is not None:
            if not isinstance(self.lr_mult, Mapping):
                raise ValueError(f"lr_mult must be a table of pattern = multiplier, got {self.lr_mult!r}")
            values["lr_mult"] = {
                str(k): _number(f"lr_mult[{k!r}]", v, minimum=0.0) for k, v in self.lr_mult.items()
            }
        if self.finetune is not None:
            if not isinstance(self.finetune, Mapping):
                raise ValueError(f"finetune must be a table, got {self.finetune!r}")
            values["finetune"] = {k: v for k, v in self.finetune.items() if v is not None}
        if not isinstance(values["task_options"], dict):
            raise ValueError(f"task_options must be a table, got {self.task_options!r}")
        twice = double_warmup(self.optimizer, values["schedule"])
        if twice is not None:
            raise ValueError(twice)
        if values["momentum"] is None:
            values["momentum"] = default_momentum(self.optimizer, values["schedule"])
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __hash__(self) -> int:
        return hash(self.key())

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form kept in the store (schedules as spec strings, for people).

        Every field is spelled, except the optional ones (``momentum``, ``lr_mult``,
        ``finetune``, ``threads``) when they are unset.
        """
        out: dict[str, Any] = {
            "task": self.task,
            "task_options": dict(self.task_options),
            "optimizer": self.optimizer,
            "schedule": str(self.schedule),
            "lr": self.lr,
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "divergence_factor": self.divergence_factor,
        }
        if self.momentum is not None:
            out["momentum"] = str(self.momentum)
        if self.lr_mult is not None:
            out["lr_mult"] = dict(self.lr_mult)
        if self.finetune is not None:
            out["finetune"] = dict(self.finetune)
        if self.threads is not None:
            out["threads"] = self.threads
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Read ``to_dict()`` back; an unknown key is an error that names it. A stored config
        is what ran: no default momentum is added to one stored without it (a one-cycle run
        recorded before one-cycle cycled momentum by default)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run config must be a table, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run config key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls.as_ran(**dict(data))

    @classmethod
    def as_ran(cls, **values: Any) -> RunConfig:
        """A config that describes a run as it ran, not one lrlab is about to build: validated
        as any, but no default is added. ``momentum`` None then means the optimizer's own
        momentum, driven by no schedule (its value per step is in the step series), where a
        new run would cycle it with a one-cycle (:func:`default_momentum`). ``from_dict``
        and the recorders of users' runs (``lrlab.track``, the trainer callbacks) use it.

        >>> RunConfig.as_ran(task="t", lr=0.01, optimizer="adam",
        ...                  schedule="one_cycle(max_lr=0.01, total_steps=100)").momentum is None
        True
        """
        config = cls(**values)
        if values.get("momentum") is None and config.momentum is not None:
            object.__setattr__(config, "momentum", None)
        return config

    def key(self, without: tuple[str, ...] = ("seed",)) -> str:
        """The config without the fields ``without``, as a canonical string: runs with
        equal keys are repeats of one configuration (by default, differing only in seed)."""
        shown = {k: v for k, v in self.to_dict().items() if k not in without}
        return json.dumps(shown, sort_keys=True, default=str)

    @property
    def schedule_family(self) -> str:
        """Names of the schedule's families, outermost first: ``warmup+cosine``."""
        return schedule_family(self.schedule)


def schedule_family(schedule: Schedule) -> str:
    """``warmup(cosine(...))`` -> ``"warmup+cosine"``, read from the schedule object."""
    return "+".join(node.name for node in schedule.nodes())


@dataclass(frozen=True)
class RunRecord:
    """One training run as the store holds it.

    ``config`` is the run's :class:`RunConfig` (a dict is read with ``RunConfig.from_dict``);
    ``status`` a :class:`RunStatus` (a string is read with ``RunStatus.parse``).
    """

    id: str
    sweep: str | None
    status: RunStatus
    config: RunConfig
    seed: int
    error: str | None = None
    diverged_step: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    lrlab_version: str | None = None
    torch_version: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.config, RunConfig):
            object.__setattr__(self, "config", RunConfig.from_dict(self.config))
        if not isinstance(self.status, RunStatus):
            object.__setattr__(self, "status", RunStatus.parse(self.status))

    @property
    def configuration(self) -> str:
        """The config without the seed, as a hashable key that groups repeats."""
        return self.config.key()

    @property
    def objective(self) -> Objective | None:
        """The objective its task declared when it ran (None for runs stored before tasks
        declared one: the report then infers it from the metrics)."""
        data = self.extras.get("objective")
        return Objective.from_dict(data) if isinstance(data, Mapping) else None


@dataclass(frozen=True)
class EpochRecord:
    """Metrics at the end of an epoch (``epoch`` is 1-based; ``step`` the global step
    count at that point). ``val_error``/``val_accuracy`` are None where the task has no
    classes (language models, regression). ``metrics`` holds any other named metric the
    task reports (``val_mae``, ``val_r2``, a custom task's own), read with :meth:`value`.

    >>> rec = EpochRecord("r", 1, 10, 0.5, 0.4, None, None, 1.0, {"val_mae": 0.3})
    >>> rec.value("val_loss"), rec.value("val_mae"), rec.value("val_r2")
    (0.4, 0.3, None)
    """

    run_id: str
    epoch: int
    step: int
    train_loss: float | None
    val_loss: float | None
    val_error: float | None
    val_accuracy: float | None
    wall_time: float
    metrics: Mapping[str, float | None] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The metric ``name``: a column (``val_loss``, ``train_loss``, ...) or a named metric."""
        if name in _EPOCH_FIELDS:
            return getattr(self, name)
        return self.metrics.get(name)

    @classmethod
    def of(cls, run_id: str, epoch: int, step: int, train_loss: float | None,
           metrics: Mapping[str, float | None], wall_time: float) -> EpochRecord:
        """An epoch from a task's ``evaluate()`` dict: the known columns by name, the rest
        into ``metrics``."""
        extra = {k: (None if v is None else float(v)) for k, v in metrics.items() if k not in _EPOCH_FIELDS}
        return cls(run_id, epoch, step, train_loss, metrics.get("val_loss"), metrics.get("val_error"),
                   metrics.get("val_accuracy"), wall_time, extra)  # fmt: skip


_EPOCH_FIELDS = frozenset({"train_loss", "val_loss", "val_error", "val_accuracy", "wall_time", "epoch", "step"})


@dataclass(frozen=True)
class Objective:
    """What a run's task minimises or maximises, and how its loss is named.

    ``metric`` is the epoch metric every "best" is judged on; ``higher_is_better`` its
    direction; ``loss`` and ``unit`` name the training loss in labels and messages
    (``"cross-entropy"``, ``"nats"``; ``"MSE"``, ``""``); ``metrics`` the other named
    validation metrics the task reports. Kept in a run's extras as ``to_dict()``.

    >>> Objective.for_kind("regression").metric, Objective.for_kind("regression").loss
    ('val_loss', 'MSE')
    >>> Objective.from_dict(Objective.for_kind("classification").to_dict()).metric
    'val_error'
    """

    metric: str = "val_loss"
    higher_is_better: bool = False
    loss: str = "cross-entropy"
    unit: str = "nats"
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"objective metric must be a metric name, got {self.metric!r}")
        object.__setattr__(self, "higher_is_better", bool(self.higher_is_better))
        object.__setattr__(self, "metrics", tuple(str(m) for m in self.metrics))

    @classmethod
    def for_kind(cls, kind: str) -> Objective:
        """The built-in objective of a task kind."""
        if kind == "classification":
            return cls("val_error", False, "cross-entropy", "nats", ("val_accuracy",))
        if kind == "language_model":
            return cls("val_loss", False, "cross-entropy", "nats per token")
        if kind == "regression":
            return cls("val_loss", False, "MSE", "", ("val_mae", "val_r2"))
        raise ValueError(f"no built-in objective for task kind {kind!r}")

    @property
    def loss_label(self) -> str:
        """``"cross-entropy, nats"``: the loss and its unit for an axis label."""
        return f"{self.loss}, {self.unit}" if self.unit else self.loss

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "higher_is_better": self.higher_is_better, "loss": self.loss,
                "unit": self.unit, "metrics": list(self.metrics)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class StepSeries:
    """Every optimizer step of a run, columnar (numpy arrays of equal length).

    ``lr`` is the first param group's LR; ``lrs`` has one column per group
    (shape ``(steps, groups)``); ``momentum`` is NaN where the optimizer has none.
    The store's step-block codec reads and writes this type directly: its fields are
    the columns of a block.
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

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The per-step columns, in field order (every field but ``run_id``)."""
        return tuple(f.name for f in fields(cls) if f.name != "run_id")

    @classmethod
    def empty(cls, run_id: str) -> StepSeries:
        """A run with no steps (one param group)."""
        ints, floats = np.zeros(0, dtype=np.int64), np.zeros(0)
        return cls(run_id, ints, ints.copy(), floats, np.zeros((0, 1)), floats.copy(), floats.copy(), floats.copy())

    @property
    def groups(self) -> int:
        """How many param groups (columns of ``lrs``)."""
        return int(self.lrs.shape[1])

    def take(self, index: np.ndarray) -> StepSeries:
        """The steps at ``index`` (indices or a boolean mask), every column alike."""
        return replace(self, **{name: getattr(self, name)[index] for name in self.columns()})


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
