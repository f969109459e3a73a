"""A trainable function as a task: what the study, ``tune`` and the sweeps ask of a task.

:class:`TrainableTask` stands wherever a :class:`~lrlab.training.tasks.Task` does (it is
what ``get_task("file.py:fn")`` returns for a decorated function, and what
``as_task(fn)`` makes of one given in Python). It has no model, data or batches for lrlab
to build: ``range_test`` is False (a study brackets the LR by short trials from
``lr_range`` instead of a range test), training is the function itself
(:mod:`lrlab.training.trial_run`), and its fingerprint is the function's source and
options, so that two variants never share a study.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from lrlab.core.records import Objective
from lrlab.training.trial import Trainable

__all__ = ["TRAINABLE_KIND", "TrainableTask", "as_task", "is_trainable"]

TRAINABLE_KIND = "trainable"


def is_trainable(value: Any) -> bool:
    """Whether ``value`` is a :func:`~lrlab.training.trial.trainable` function or its task."""
    return isinstance(value, (Trainable, TrainableTask))


def as_task(value: Any, options: dict[str, Any] | None = None) -> TrainableTask:
    """The task of a trainable function (``options`` checked against its declared ones);
    a :class:`TrainableTask` is returned as it is when no options are given."""
    if isinstance(value, TrainableTask) and not options:
        return value
    if isinstance(value, TrainableTask):
        value = value.trainable
    if not isinstance(value, Trainable):
        raise ValueError(f"{value!r} is not a function declared with @lrlab.trainable(...)")
    return value.task(**(options or {}))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _source(fn: Any) -> str:
    """The function's source, or its compiled code where the source is not to be had."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return code.co_code.hex() if code is not None else repr(fn)


@dataclass(eq=False)
class TrainableTask:
    """A trainable function with its options, as a task. See the module docstring."""

    trainable: Trainable
    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    kind: str = TRAINABLE_KIND
    range_test: bool = False
    default_batch_size: int = 1  # a trainable makes its own batches: the runs' batch size is unused

    def __post_init__(self) -> None:
        self.name = self.name or self.trainable.name

    # -------------------------------------------------------- what the study and tune read

    @property
    def default_epochs(self) -> int:
        return self.trainable.epochs

    @property
    def lr_range(self) -> tuple[float, float] | None:
        return self.trainable.lr_range

    @property
    def timeout_s(self) -> float | None:
        return self.trainable.timeout_s

    @property
    def objective(self) -> Objective:
        return self.trainable.objective_record()

    @property
    def objective_metric(self) -> str:
        return self.trainable.objective

    @property
    def higher_is_better(self) -> bool:
        return self.trainable.higher_is_better

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (self.trainable.objective,)

    @property
    def stock_metrics(self) -> bool:
        return False  # never trained by the vectorised trainer

    def steps_per_epoch(self, batch_size: int | None = None) -> int:
        """The declared optimizer steps per epoch, whatever the batch size."""
        return self.trainable.steps_per_epoch

    def fingerprint(self) -> dict[str, Any]:
        """What a run's config cannot see: the function's source and options (the shape of
        :func:`~lrlab.training.tasks._base.task_fingerprint`, so that a change is said in
        words by ``fingerprint_change``)."""
        objective = self.objective
        direction = "higher" if objective.higher_is_better else "lower"
        return {
            "model": {"parameters": None, "shapes": "", "architecture": ""},
            "data": {"train": None, "val": None, "rows": ""},
            "options": {
                "kind": self.kind,
                "objective": f"{objective.metric} ({direction} is better)",
                "loss": objective.loss,
                "metrics": objective.metric,
                "function": self.trainable.name,
                "source": _digest(_source(self.trainable.fn)),
                "epochs": f"{self.trainable.epochs} x {self.trainable.steps_per_epoch} steps",
                "task_options": _digest(self.options),
            },
        }

    def check(self, ref: str | None = None) -> str:
        """The task check for a function: its options are declared ones (``ValueError`` in
        one line otherwise); nothing is run. Returns the one line that says so."""
        self.trainable.resolve_options(self.options)
        return (f"task {ref or self.name!r} is a trainable function: not run before training (no batch to try); "
                "a run that fails is stored failed with its reason")  # fmt: skip

    # -------------------------------------------------------- what a trainable has not

    def _none(self, what: str) -> ValueError:
        return ValueError(
            f"task {self.name!r} is a trainable function: it builds its own {what}, so lrlab has none to run a "
            "range test or a batch through; lrlab study --train brackets its LR by short trials instead, and "
            "lrlab tune --train searches it"
        )

    def make_model(self, seed: int) -> Any:
        raise self._none("model")

    def train_loader(self, batch_size: int, seed: int) -> Any:
        raise self._none("training data")

    def val_loader(self, batch_size: int) -> Any:
        raise self._none("validation data")

    def loss_fn(self, output: Any, target: Any) -> Any:
        raise self._none("loss")

    def evaluate(self, model: Any, loader: Any) -> Any:
        raise self._none("evaluation")
