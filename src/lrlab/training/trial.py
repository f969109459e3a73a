"""The trial interface: any training loop as a function lrlab can run, record and rank.

A user writes ``def train(trial)`` that builds its model and data, takes the configuration
being tried from ``trial`` (``trial.optimizer(params)``, ``trial.scheduler(optimizer)``,
``trial.lr``, ``trial.seed``), trains however it likes and calls ``trial.report(epoch,
**metrics)``; :func:`trainable` declares once what the function is judged on (its
``objective`` metric and ``direction``) and how long it trains (``epochs`` of
``steps_per_epoch`` optimizer steps). This is the form of Optuna's objective functions and
Ray Tune's function trainables::

    import lrlab

    @lrlab.trainable(objective="mean_return", direction="maximize", epochs=40, steps_per_epoch=10)
    def reinforce(trial: lrlab.Trial) -> None:
        torch.manual_seed(trial.seed)
        policy = ...
        opt = trial.optimizer(policy.parameters())
        sched = trial.scheduler(opt)
        for epoch in range(1, trial.epochs + 1):
            for _ in range(trial.steps_per_epoch):
                loss = ...; opt.zero_grad(); loss.backward(); opt.step(); sched.step()
                trial.log(loss=float(loss))
            trial.report(epoch, mean_return=...)

A :class:`Trial` built by lrlab (a study, ``tune``, a sweep: see
:mod:`lrlab.training.trial_run`) records every optimizer step of the optimizer it made
through the one :class:`~lrlab.training.recorder.Recorder` (LR per group and momentum as the
step uses them, the gradient norm, taken in an optimizer step pre-hook, and the loss when
``log`` gave one) and every ``report`` as an epoch record. One built by hand
(``reinforce.trial(lr=1e-3)``) records nothing and keeps the reports in ``trial.reports``,
to try a function in a plain call.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from lrlab.core.records import EpochRecord, Objective, RunConfig
from lrlab.optim.grammar import make_optimizer
from lrlab.optim.lr_free import step_lrs
from lrlab.torch import LRScheduler, group_momentum
from lrlab.training.recorder import ProgressFn, Recorder, RunProgress
from lrlab.training.trial_checks import check_signature, checked_lr_range, like_default, positive_int

if TYPE_CHECKING:
    from lrlab.training.trial_task import TrainableTask

__all__ = ["DIRECTIONS", "Pruned", "Trainable", "Trial", "TrialProgress", "TrialStopped", "trainable"]

DIRECTIONS = ("minimize", "maximize")


class Pruned(Exception):
    """Raised by ``trial.report`` (through the tune's progress callback) when the tune's
    pruner stops the trial; let it propagate out of the trial function. The run is stored
    ``failed`` with the reason ``Pruned: ...``, as the tune's own pruned runs are."""


class TrialStopped(BaseException):
    """Raised inside a trial function by the next ``log``, ``report`` or optimizer step
    once lrlab has ended its run (it diverged, ran past its time, or was interrupted). A
    ``BaseException``, so that a function's own ``except Exception`` does not swallow it."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class TrialProgress(RunProgress):
    """A :class:`~lrlab.training.recorder.RunProgress` that also carries every metric a
    ``report`` gave (the tune's pruner reads the declared objective from it)."""

    metrics: Mapping[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- the declaration


@dataclass(frozen=True, eq=False)
class Trainable:
    """A training function declared with :func:`trainable`: call it with a :class:`Trial`.

    ``options`` are the defaults of the function's options (``trial.options``): a run's
    ``task_options`` may only name these keys.
    """

    fn: Callable[[Trial], Any]
    objective: str
    direction: str
    epochs: int
    steps_per_epoch: int
    lr_range: tuple[float, float] | None = None
    timeout_s: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError(f"trainable: decorate a function, got {self.fn!r}")
        if not isinstance(self.objective, str) or not self.objective.isidentifier():
            raise ValueError(
                f"trainable: objective must be a metric name such as 'val_loss', got {self.objective!r}"
            )
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"trainable: direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}"
            )
        object.__setattr__(self, "epochs", positive_int("epochs", self.epochs))
        object.__setattr__(self, "steps_per_epoch", positive_int("steps_per_epoch", self.steps_per_epoch))
        object.__setattr__(self, "lr_range", checked_lr_range(self.lr_range))
        timeout = self.timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < math.inf):  # fmt: skip
            raise ValueError(f"trainable: timeout_s must be a number of seconds > 0, got {timeout!r}")
        if not isinstance(self.options, Mapping):
            raise ValueError(f"trainable: options must be a table of option defaults, got {self.options!r}")
        object.__setattr__(self, "options", dict(self.options))
        check_signature(self.fn)

    def __call__(self, trial: Trial) -> Any:
        return self.fn(trial)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or type(self.fn).__name__

    @property
    def __name__(self) -> str:  # a trainable stands for its function
        return getattr(self.fn, "__name__", self.name)

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "maximize"

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def objective_record(self) -> Objective:
        """The objective stored with every run (the one ranking reads it); the loss is the
        function's own, labelled ``loss (as logged)``."""
        return Objective(self.objective, self.higher_is_better, "as logged", "")

    def resolve_options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The declared option defaults updated by ``given``; ``ValueError`` in one line for
        a key the function did not declare."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = (
                ", ".join(sorted(self.options)) or "none: declare them with @lrlab.trainable(options={...})"
            )
            raise ValueError(f"trainable {self.name!r} has no option {unknown[0]!r} (its options: {known})")
        return {
            **self.options,
            **{key: like_default(self.name, key, self.options[key], v) for key, v in given.items()},
        }

    def task(self, **options: Any) -> TrainableTask:
        """This function as a task (study, tune, sweeps), with ``options``."""
        from lrlab.training.trial_task import TrainableTask

        return TrainableTask(self, self.resolve_options(options))

    def trial(
        self,
        lr: float,
        *,
        seed: int = 0,
        optimizer: str = "sgd",
        schedule: Any = None,
        momentum: Any = None,
        **options: Any,
    ) -> Trial:
        """A trial to call this function with by hand: nothing is recorded, the reports are
        kept in ``trial.reports``."""
        config = RunConfig(task=self.name, lr=lr, optimizer=optimizer, schedule=schedule, seed=seed,
                           epochs=self.epochs, task_options=self.resolve_options(options), momentum=momentum)  # fmt: skip
        return Trial(config, self)


def trainable(
    objective: str = "val_loss",
    *,
    direction: str = "minimize",
    epochs: int,
    steps_per_epoch: int,
    lr_range: tuple[float, float] | None = None,
    timeout_s: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> Callable[[Callable[[Trial], Any]], Trainable]:
    """Declare a training function lrlab can run for any configuration.

    ``objective`` is the metric every "best" is judged on (a key the function passes to
    ``trial.report``) and ``direction`` which way is better; the function trains ``epochs``
    epochs of ``steps_per_epoch`` optimizer steps (the schedules are built over
    ``epochs * steps_per_epoch`` steps). ``lr_range`` is where a study starts looking for
    the LR (there is no range test for a function); ``timeout_s`` the longest a run may go
    without a report (from its start, or its last report) before it is stopped and stored
    ``failed``. ``options`` are the function's options and their defaults
    (``trial.options``; ``--task-option key=value`` changes them).

    >>> @trainable(objective="score", direction="maximize", epochs=2, steps_per_epoch=1)
    ... def fit(trial):
    ...     for epoch in range(1, trial.epochs + 1):
    ...         trial.report(epoch, score=trial.lr * epoch)
    >>> trial = fit.trial(lr=0.5)
    >>> fit(trial); [r["score"] for r in trial.reports]
    [0.5, 1.0]
    """

    def declare(fn: Callable[[Trial], Any]) -> Trainable:
        if isinstance(fn, Trainable):
            fn = fn.fn
        made = Trainable(
            fn, objective, direction, epochs, steps_per_epoch, lr_range, timeout_s, options or {}
        )
        for attribute in ("__module__", "__doc__"):
            with contextlib.suppress(AttributeError, TypeError):
                object.__setattr__(made, attribute, getattr(fn, attribute, None))
        return made

    return declare


# ---------------------------------------------------------------- the trial


def _number(name: str, value: Any, where: str = "trial.report") -> float:
    """A metric value as a float: a Python or numpy number, or a one-element tensor."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{where}: {name} must be one number, got a tensor of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise ValueError(f"{where}: {name} must be a number, got {type(value).__name__} {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}") from None


@dataclass
class _Step:
    """An optimizer step seen by the pre-hook, written once its loss is known (or the next
    step comes)."""

    step: int
    epoch: int
    lrs: list[float]
    momentum: float | None
    norms: Any
    loss: float = math.nan


class Trial:
    """One configuration being tried: what the function builds its optimizer and schedule
    from, and where it reports. See the module docstring.

    ``config`` is the run's :class:`~lrlab.core.records.RunConfig`; ``options`` the
    function's options; ``device`` the device lrlab was asked to train on (``--device``;
    the function decides where its tensors go); ``reports`` every report so far
    (``{"epoch": n, metric: value}``).
    """

    def __init__(
        self,
        config: RunConfig,
        trainable: Trainable,
        *,
        recorder: Recorder | None = None,
        progress: ProgressFn | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.config, self.trainable = config, trainable
        # Where lrlab was asked to train: the function may move its model there.
        self.device = torch.device(device)
        self.options: dict[str, Any] = trainable.resolve_options(config.task_options)
        self.reports: list[dict[str, float]] = []
        self._recorder, self._progress = recorder, progress
        self._lock = threading.RLock()
        self._stopped: TrialStopped | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._pending: _Step | None = None
        self._held_loss: float | None = None
        self._log_before: bool | None = None  # whether the function logs a step's loss before the step
        self._epoch_losses: list[float] = []
        self._steps = 0
        self._started = time.perf_counter()
        self.last_activity = time.monotonic()  # the start or the last report: timeout_s counts from it

    # -------------------------------------------------------- the configuration

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def lr(self) -> float:
        return self.config.lr

    @property
    def epochs(self) -> int:
        """The run's epochs: the config's (a study may train shorter runs than declared),
        else the declared ones. The schedules are built over ``epochs * steps_per_epoch``."""
        return self.config.epochs or self.trainable.epochs

    @property
    def steps_per_epoch(self) -> int:
        return self.trainable.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far (of the first optimizer the trial made)."""
        return self._steps

    @property
    def epoch(self) -> int:
        """The epoch under way: one after the last reported."""
        return (int(self.reports[-1]["epoch"]) if self.reports else 0) + 1

    def optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The configuration's optimizer (its spec, at ``trial.lr``) over ``params``
        (tensors or param-group dicts; a group with its own ``lr`` keeps it). The first
        optimizer a trial makes is the one whose steps are recorded."""
        optimizer = make_optimizer(self.config.optimizer, params, self.config.lr)
        if self._optimizer is None:
            self._optimizer = optimizer
            optimizer.register_step_pre_hook(self._on_step)
            if self._recorder is not None:  # the recorder's instruments watch it as they do the loop's
                mults = [float(g.get("lr_mult", 1.0)) for g in optimizer.param_groups]
                self._recorder.watch(optimizer, schedule=self.config.schedule, lr_mults=mults)
        return optimizer

    def scheduler(self, optimizer: torch.optim.Optimizer) -> LRScheduler:
        """The configuration's schedule (and momentum schedule) over ``optimizer``, built
        over ``epochs * steps_per_epoch`` steps: call ``step()`` after each optimizer step."""
        return LRScheduler(optimizer, self.config.schedule, momentum=self.config.momentum)

    # -------------------------------------------------------- what the function says

    def log(self, loss: float | torch.Tensor | None = None) -> None:
        """The loss of the step just taken, or of the next one when the function logs before
        its steps (read from its first ``log``: before any step, or after one); a step
        without a log has no loss. A loss that is not finite ends the run as diverged.
        Optional: a function may log nothing."""
        self._check_stopped()
        if loss is None:
            return
        value = _number("loss", loss, "trial.log")
        with self._lock:
            if self._log_before is None:  # the function's order, read once: log then step, or step then log
                self._log_before = self._steps == 0
            if self._log_before:
                self._held_loss = value
            elif self._pending is not None:
                self._pending.loss = value
            self._epoch_losses.append(value)
        if not math.isfinite(value):
            raise self._end("diverged", f"non-finite loss at step {max(self._steps - 1, 0)}")

    def report(self, epoch: int, **metrics: Any) -> None:
        """The metrics at the end of ``epoch`` (1 to ``epochs``, increasing); they must hold
        the declared objective. A NaN/inf objective ends the run as diverged. In a tune this
        may raise :class:`Pruned`: let it propagate."""
        self._check_stopped()
        values = self._checked_report(epoch, metrics)
        objective = values[self.trainable.objective]
        with self._lock:
            self._check_stopped()
            self.last_activity = time.monotonic()
            self.reports.append({"epoch": float(epoch), **values})
            train_loss = sum(self._epoch_losses) / len(self._epoch_losses) if self._epoch_losses else None
            self._epoch_losses = []
            if self._recorder is not None:
                self._flush_pending()
                self._recorder.epoch(EpochRecord.of(self._recorder.run_id, int(epoch), self._steps, train_loss,
                                                    values, time.perf_counter() - self._started))  # fmt: skip
        if not math.isfinite(objective):
            raise self._end("diverged", f"{self.trainable.objective} is {objective} at epoch {epoch}")
        if self._progress is not None and self._recorder is not None:
            self._progress(TrialProgress(
                "epoch", self._recorder.run_id, int(epoch), self.epochs, self._steps, self.total_steps,
                loss=train_loss, val_loss=values.get("val_loss"), val_accuracy=values.get("val_accuracy"),
                metrics=dict(values),
            ))  # fmt: skip

    def _checked_report(self, epoch: Any, metrics: Mapping[str, Any]) -> dict[str, float]:
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ValueError(f"trial.report: epoch must be a whole number, got {epoch!r}")
        last = int(self.reports[-1]["epoch"]) if self.reports else 0
        if not last < epoch <= self.epochs:
            raise ValueError(f"trial.report: epoch must run from {last + 1} to {self.epochs} (the run's epochs), "
                             f"got {epoch}")  # fmt: skip
        objective = self.trainable.objective
        if objective not in metrics:
            given = ", ".join(sorted(metrics)) or "nothing"
            raise ValueError(
                f"trial.report(epoch={epoch}) has no {objective}, the declared objective (got: {given})"
            )
        return {name: _number(name, value) for name, value in metrics.items()}

    # -------------------------------------------------------- recording

    def _on_step(self, optimizer: Any, _args: Any, _kwargs: Any) -> None:
        """The optimizer step pre-hook: the step's LRs, momentum and gradient norm."""
        self._check_stopped()
        with self._lock:
            if self._recorder is not None:
                self._flush_pending()
                grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                norms = tuple(torch._foreach_norm(grads)) if grads else ()
                momentum = group_momentum(optimizer.param_groups[0])
                self._pending = _Step(self._steps, self.epoch, step_lrs(optimizer), momentum, norms)
                if self._held_loss is not None:
                    self._pending.loss, self._held_loss = self._held_loss, None
            self._steps += 1

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and self._recorder is not None:
            self._recorder.step(pending.step, pending.epoch, pending.lrs, pending.momentum, pending.loss,
                                pending.norms)  # fmt: skip

    def finish(self) -> None:
        """Hand the last step to the recorder (its loss is as logged by now)."""
        with self._lock:
            self._flush_pending()

    def stop(self, status: str, reason: str, *, wait_s: float = 5.0) -> None:
        """End the trial from outside its function: every later ``log``, ``report`` or
        optimizer step raises :class:`TrialStopped`, and nothing more is recorded."""
        acquired = self._lock.acquire(timeout=wait_s)
        try:
            if self._stopped is None:
                self._stopped = TrialStopped(status, reason)
        finally:
            if acquired:
                self._lock.release()

    @property
    def stopped(self) -> TrialStopped | None:
        return self._stopped

    def _end(self, status: str, reason: str) -> TrialStopped:
        self.stop(status, reason)
        assert self._stopped is not None
        return self._stopped

    def _check_stopped(self) -> None:
        if self._stopped is not None:
            raise self._stopped
