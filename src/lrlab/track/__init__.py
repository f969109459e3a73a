"""Record your own training runs into the lrlab store: ``lrlab.track`` for a plain loop.

Example:
    >>> import torch, lrlab
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> with lrlab.track(opt, name="doc-run", db=":memory:") as run:
    ...     for step in range(5):
    ...         opt.zero_grad()
    ...         loss = model(torch.ones(4, 3)).pow(2).mean()
    ...         loss.backward()
    ...         opt.step()
    ...         run.log(loss=loss)
    ...     run.epoch(val_loss=0.5)
    >>> run.status, run.steps
    ('done', 5)

Every ``log`` records one optimizer step: the LR of every param group, the momentum (or
Adam's beta1), the loss and the gradient norm of the gradients the optimizer last stepped
with. That norm is taken inside ``optimizer.step()``, just before the update, while the
gradients are still in the CPU's cache (after a closure's backward for closure-driven
optimizers); when ``log`` comes before the step, or the gradients changed since, it is the
norm of ``.grad`` at the time of the call. Losses and norms given as tensors stay tensors
until a batch of steps is converted at once (one host copy per batch, not a device sync
per step). Rows are buffered and written in batches by :class:`lrlab.training.Recorder`,
the one recorder of lrlab's own trainers (every 1000 steps, at least every
``WRITE_SECONDS``, at an epoch when a second has passed since the last write, at the end
and on an error), so a killed process loses only the unwritten tail, and a tracked run
reads back like any other:
``lrlab runs list``, ``lrlab report --sweep NAME``. The Lightning, Hugging Face and Keras
recorders (``lrlab.lightning``, ``lrlab.transformers``, ``lrlab.keras``) are thin callbacks
over :class:`Run`.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import numbers
import sys
import time
import types
import uuid
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrlab.core.diagnostics import Finding
from lrlab.core.records import EpochRecord, Objective, RunConfig, RunStatus
from lrlab.schedules import Schedule
from lrlab.store.sqlite import DEFAULT_DB, Store
from lrlab.torch import LRScheduler, group_momentum
from lrlab.track._instruments import Watch as _Watch
from lrlab.track._live import live_findings
from lrlab.track._norms import StepNorms
from lrlab.training.recorder import Recorder

__all__ = ["LIVE_EVERY", "WRITE_SECONDS", "Run", "end_left_open", "track"]

LIVE_EVERY = 50  # steps between live checks
_RECORDING: weakref.WeakSet[Run] = weakref.WeakSet()  # runs begun and not ended, ended at exit
_ENDED_AT_EXIT = "the process ended while the run was recording (its training stopped before it ended)"


@atexit.register
def _end_at_exit() -> None:
    """A trainer that raises never tells its callbacks (Hugging Face, Keras): the runs still
    recording when the process ends are ended failed, with the exception that ended it where
    Python kept one, their buffered rows written."""
    exc = getattr(sys, "last_value", None)
    error = _ENDED_AT_EXIT if exc is None else f"{type(exc).__name__}: {exc}"
    for run in list(_RECORDING):
        try:
            run.end(error=error)
        except Exception:  # the store may be gone at exit; the next run reclaims the claim
            log.debug("run %s could not be ended at exit", run.run_id, exc_info=True)


CONVERT_EVERY = LIVE_EVERY  # steps whose tensor losses are copied to the host at once
WRITE_SECONDS = 10.0  # buffered steps are written at least this often (besides every 1000 steps)
log = logging.getLogger("lrlab.track")
_ACTIVE = "_lrlab_tracked_by"  # attribute set on an optimizer while a run records it


def end_left_open(run: Run | None) -> None:
    """End ``run`` failed if it is still recording: a trainer callback calls this when the
    next training begins, because Hugging Face's Trainer and Keras' fit do not tell their
    callbacks when the training raised."""
    if run is not None and run.status == "running":
        run.end(error="its training stopped before it ended (the trainer raised)")


def _number(name: str, value: Any) -> float:
    """A metric as a float, or one clear line saying what was given instead."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"metric {name!r} must be a number or a one-element tensor, got a tensor of shape {tuple(value.shape)}"
            )
        return float(value.detach())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.generic) and np.issubdtype(type(value), np.number):
            return float(value)
        raise TypeError(
            f"metric {name!r} must be a number (int, float or one-element tensor), got {type(value).__name__}: {value!r:.60}"
        )
    return float(value)


def _deferred(name: str, value: Any) -> float | torch.Tensor:
    """A metric checked now; a one-element tensor is kept (detached) to be read later."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.detach()
    return _number(name, value)


def _floats(values: Sequence[float | torch.Tensor]) -> list[float]:
    """Numbers and one-element tensors as floats, the tensors copied to the host at once."""
    at = [i for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
    out = list(values)
    if at:
        tensors = [values[i].reshape(()) for i in at]  # type: ignore[union-attr]
        try:
            host = torch.stack(tensors).double().tolist()
        except RuntimeError:  # tensors on several devices
            host = [float(t) for t in tensors]
        for i, v in zip(at, host):
            out[i] = v
    return [float(v) for v in out]


def _group_lr(group: Mapping[str, Any]) -> float:
    lr = group["lr"]
    return float(lr) if not isinstance(lr, torch.Tensor) else float(lr.detach())


def _check_optimizer(optimizer: Any) -> None:
    """A torch optimizer (or None) that no other run records."""
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if optimizer is not None and getattr(optimizer, _ACTIVE, None) is not None:
        raise RuntimeError(
            f"this optimizer is already recorded by run {getattr(optimizer, _ACTIVE)!r}: "
            "attach one recorder per training run (end the other first)"
        )


def _objective(
    objective: str | Objective | None, higher_is_better: bool, loss_name: str | None, loss_unit: str | None
) -> Objective:
    """The run's objective: a metric name (with its direction) or an ``Objective``, with the
    training loss's own name in the report ("MSE") and its unit if any."""
    if isinstance(objective, str):
        objective = Objective(metric=objective, higher_is_better=higher_is_better)
    objective = objective or Objective()
    if loss_name is not None:
        return dataclasses.replace(objective, loss=str(loss_name), unit=str(loss_unit or ""))
    if loss_unit is not None:
        return dataclasses.replace(objective, unit=str(loss_unit))
    return objective


class Run:
    """One recorded run; made by :func:`track` (or a trainer callback) and used as a context."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer | None,
        *,
        name: str,
        sweep: str | None = None,
        config: Mapping[str, Any] | None = None,
        db: str | Path | Store = DEFAULT_DB,
        lr: float | None = None,
        schedule: Schedule | str | None = None,
        momentum: Schedule | str | None = None,
        scheduler: Any = None,
        seed: int = 0,
        epochs: int | None = None,
        batch_size: int | None = None,
        total_steps: int | None = None,
        objective: str | Objective | None = None,
        higher_is_better: bool = False,
        loss_name: str | None = None,
        loss_unit: str | None = None,
        live: bool = False,
        run_id: str | None = None,
        optimizer_name: str | None = None,
        instruments: Any = None,
        model: torch.nn.Module | None = None,
        lr_mults: Sequence[float] | None = None,
        probe_loss: Any = None,
        sharpness_loss: Any = None,
        export: Sequence[Any] = (),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string (the run's task label), got {name!r}")
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if lr is None:
            if optimizer is None:
                raise ValueError("lr= is needed when no torch optimizer is given")
            lr = _group_lr(optimizer.param_groups[0])
        self.declared = objective is not None  # a metric the user named: checked at the first epoch
        self.objective = _objective(objective, higher_is_better, loss_name, loss_unit)
        self.name, self.sweep = name, sweep if sweep is not None else name
        self.run_id = run_id or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        if scheduler is not None:  # an lrlab LRScheduler: the schedules it drives, unless given
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(
                    f"scheduler must be an lrlab.torch.LRScheduler, got {type(scheduler).__name__}"
                )
            schedule = scheduler.schedule if schedule is None else schedule
            momentum = scheduler.momentum if momentum is None else momentum
        # What ran: no momentum schedule is recorded that the user's loop did not drive.
        self.config = RunConfig.as_ran(
            task=name, lr=float(lr), optimizer=optimizer_name or (type(optimizer).__name__.lower() if optimizer else "sgd"),
            schedule=schedule, momentum=momentum, seed=seed, epochs=epochs, batch_size=batch_size,
            divergence_factor=None,
        )  # fmt: skip
        self.user_config = dict(config or {})
        self.total_steps = total_steps
        self.store = db if isinstance(db, Store) else Store(db)
        self.live = live
        self.instrument_findings: list[Finding] = []
        self.recorder = Recorder(self.store, self.run_id, self.config, sweep=self.sweep, listeners=export,
                                 instruments=instruments, on_finding=self._instrument_finding)  # fmt: skip
        self._watch = _Watch(schedule is not None, model, lr_mults, _probe_loss(probe_loss, sharpness_loss))
        self.steps = 0
        self.last_step = 0
        self.status = RunStatus.QUEUED.value
        self.diverged_step: int | None = None
        self.findings: dict[str, str] = {}  # kind -> message, each logged once
        self._epoch = 1
        self._epoch_losses: list[float] = []
        self._started = time.monotonic()
        self._history: dict[str, list[float]] = {"step": [], "lr": [], "loss": [], "grad": []}
        self._initial_loss: float | None = None
        self._open = False
        self._objective_checked = False
        # steps whose loss may still be a tensor: (step, epoch, lrs, momentum, loss, norms)
        self._unread: list[tuple[int, int, list[float], float | None, Any, Any]] = []
        self._written_at = time.monotonic()
        self._norms = StepNorms()  # the gradient norm taken inside optimizer.step()

    @property
    def params(self) -> list[torch.Tensor]:
        """The tensors of the optimizer's param groups (empty without an optimizer)."""
        return self._norms.params

    # -------------------------------------------------------- lifecycle

    def __enter__(self) -> Run:
        self.begin()
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.end()
        else:
            self.end(error=f"{type(exc).__name__}: {exc}")

    def begin(self) -> Run:
        extras: dict[str, Any] = {
            "source": "track",
            "config": self.user_config,
            "objective": self.objective.to_dict(),
        }
        if self.total_steps:
            extras["total_steps"] = int(self.total_steps)
        if self.sweep not in self.store.sweeps():  # listed by `lrlab runs list` and `lrlab report --sweep`
            self.store.upsert_sweep(self.sweep, {"source": "track", "task": self.name})
        self.recorder.begin(extras)
        if self.optimizer is not None:
            setattr(self.optimizer, _ACTIVE, self.run_id)
            self._norms.attach(self.optimizer)
            self._watch.attach(self.recorder, self.optimizer, self.config)
        self.status = RunStatus.RUNNING.value
        self._open = True
        _RECORDING.add(self)
        return self

    def end(self, error: str | None = None) -> None:
        """Write what is buffered and the final status: done, diverged, or failed with ``error``."""
        if not self._open:
            return
        self._open = False
        _RECORDING.discard(self)
        if self.optimizer is not None and getattr(self.optimizer, _ACTIVE, None) == self.run_id:
            delattr(self.optimizer, _ACTIVE)
        self._norms.stop()
        self._read()
        if self._epoch_losses:  # steps after the last epoch(): an epoch of their own
            self._write_epoch({})
        if error is not None:
            status = RunStatus.FAILED
        elif self.diverged_step is not None:
            status = RunStatus.DIVERGED
        else:
            status = RunStatus.DONE
        extras = {"steps": self.steps, "total_steps": self.total_steps or self.last_step}
        self.recorder.end(status, error=error, diverged_step=self.diverged_step, extras=extras)
        self.status = status.value
        if self.live:
            self._check_live(final=True)

    # -------------------------------------------------------- metrics

    def log(self, loss: Any, step: int | None = None, *, grad_norm: Any = None) -> None:
        """One optimizer step: ``loss`` (a number or one-element tensor) and, from the optimizer,
        every group's LR, the momentum or beta1 and the gradient norm of the gradients it last
        stepped with (``grad_norm`` overrides it). A tensor given is read when its batch of
        steps is converted (at most ``CONVERT_EVERY`` steps later, or at ``epoch``/the end)."""
        if self.optimizer is None:
            raise RuntimeError("log() needs a torch optimizer; this run was made without one (use record())")
        groups = self.optimizer.param_groups
        if grad_norm is None:
            norms = self._norms.read() if self._open else 0.0
        else:
            norms = _deferred("grad_norm", grad_norm)
            norms = (norms,) if isinstance(norms, torch.Tensor) else norms
        self.record(loss, step, [_group_lr(g) for g in groups], group_momentum(groups[0]), norms)

    def record(
        self, loss: Any, step: int | None, lrs: Sequence[float], momentum: float | None, norms: Any
    ) -> None:
        """One step with everything given (the callbacks' way in); ``norms`` is a number or a
        tuple of per-tensor norm tensors (as ``torch._foreach_norm`` returns)."""
        if not self._open:
            raise RuntimeError(
                f"run {self.run_id!r} is not recording (use it as `with lrlab.track(...) as run:`)"
            )
        value = _deferred("loss", loss)
        if step is None:
            step = self.last_step + 1
        elif isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"step must be an integer, got {type(step).__name__}: {step!r:.60}")
        step = int(step)
        self.recorder.instruments.align(step, taken=True)  # logged after optimizer.step(): its update's step
        self._unread.append((step, self._epoch, list(lrs), momentum, value, norms))
        self.steps += 1
        self.last_step = step
        now = time.monotonic()
        due = now - self._written_at >= WRITE_SECONDS  # however long a step takes
        bad = isinstance(value, float) and not math.isfinite(value)
        if due or bad or len(self._unread) >= CONVERT_EVERY:
            self._read()
            if due:
                self.recorder.flush()
                self._written_at = now
            if self.live:
                self._check_live()

    def _read(self) -> None:
        """The unread steps' losses copied to the host at once, handed to the recorder."""
        unread, self._unread = self._unread, []
        if not unread:
            return
        values = _floats([row[4] for row in unread])
        for (step, epoch, lrs, momentum, _loss, norms), value in zip(unread, values):
            self.recorder.step(step, epoch, lrs, momentum, value, norms)
            if self._initial_loss is None and math.isfinite(value):
                self._initial_loss = value
            if self.diverged_step is None and not math.isfinite(value):
                self.diverged_step = step
        self._epoch_losses.extend(values)  # read before every epoch(): all of the current epoch
        if self.live:
            history = self._history
            history["step"].extend(row[0] for row in unread)
            history["lr"].extend(float(max(row[2])) if row[2] else math.nan for row in unread)
            history["loss"].extend(values)
            history["grad"].extend(_total(row[5]) for row in unread)

    def epoch(self, **metrics: Any) -> None:
        """An epoch's metrics by name (``val_loss``, ``val_accuracy``, any other); the epoch's
        train loss is the mean logged loss unless ``train_loss`` is given."""
        if not self._open:
            raise RuntimeError(f"run {self.run_id!r} is not recording")
        values = {k: _number(k, v) for k, v in metrics.items() if v is not None}
        names = sorted({*values, "train_loss"})
        self._read()
        self._write_epoch(values)
        if self.live:
            self._check_live()
        self._check_objective(names)

    def _check_objective(self, names: list[str]) -> None:
        """A declared objective missing from the first epoch with validation metrics stops the
        run in one line (the epoch and the steps before it are written first)."""
        if not self.declared or self._objective_checked or not any(n.startswith("val") for n in names):
            return
        self._objective_checked = True
        metric = self.objective.metric
        if metric not in names:
            self.recorder.flush()
            raise ValueError(
                f"objective {metric!r} is not a metric of run {self.run_id!r} (its epochs have: "
                f"{', '.join(names)}); name one of these with objective="
            )

    def _write_epoch(self, values: dict[str, float]) -> None:
        train = values.pop("train_loss", None)
        if train is None and self._epoch_losses:
            train = float(np.mean(self._epoch_losses))
        record = EpochRecord.of(
            self.run_id, self._epoch, self.last_step, train, values, time.monotonic() - self._started
        )
        self.recorder.epoch(record)
        self._epoch += 1
        self._epoch_losses = []

    # -------------------------------------------------------- live diagnostics

    def noise(self, small_sq: float, big_sq: float, small_batch: int, big_batch: int) -> None:
        """The squared gradient norms of the last step at two batch sizes (a micro-batch's and
        the accumulated one's, e.g. from :class:`lrlab.instruments.MicroBatchNorms`), for the
        ``noise_scale`` instrument (the gradient noise scale and critical batch size)."""
        self.recorder.instruments.observe_noise(self.last_step, small_sq, big_sq, small_batch, big_batch)

    def _check_live(self, final: bool = False) -> None:
        self.recorder.instruments.collect()  # the instruments' findings of the steps read so far
        for kind, message in live_findings(
            self._history, self._initial_loss, self.total_steps, final, self.run_id
        ):
            self._finding(kind, _crawling(message) if kind == "stuck" and self._too_small() else message)

    def _too_small(self) -> bool:
        """Whether the instruments read the LR as too small (a small update ratio or the step
        probe): then a flat loss with a large gradient is a crawl, not an oscillation."""
        return any(f.kind == "lr_low" or (f.kind == "update_ratio" and f.numbers.get("high") is False)
                   for f in self.instrument_findings)  # fmt: skip

    def _instrument_finding(self, finding: Finding) -> None:
        self.instrument_findings.append(finding)
        if self.live:
            log.warning("lrlab %s: %s", self.run_id, finding.message)

    def _finding(self, kind: str, message: str) -> None:
        if kind in self.findings:
            return
        self.findings[kind] = message
        log.warning("lrlab %s: %s", self.run_id, message)


def _crawling(message: str) -> str:
    """The stuck finding where the instruments read the LR as too small: the loss is flat
    because the steps are short, so the advice turns round."""
    head = message.split(" (oscillating", 1)[0]
    return f"{head} (not an oscillation: the instruments read the updates as too small, see above: raise the LR)"


def _total(norms: Any) -> float:
    if isinstance(norms, (tuple, list)):
        if not norms:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack(list(norms)).double()))
    return float(norms)


def _probe_loss(probe_loss: Any, sharpness_loss: Any) -> Any:
    """``probe_loss``, or the same closure under its former name (one warning)."""
    if sharpness_loss is None:
        return probe_loss
    if probe_loss is not None:
        raise ValueError("give the fixed-batch loss once: probe_loss= (sharpness_loss= is its former name)")
    warnings.warn("lrlab.track(sharpness_loss=...) is now probe_loss=: the step probe reads it too",
                  DeprecationWarning, stacklevel=4)  # fmt: skip
    return sharpness_loss


def track(
    optimizer: torch.optim.Optimizer | None,
    *,
    name: str,
    config: Mapping[str, Any] | None = None,
    db: str | Path | Store = DEFAULT_DB,
    sweep: str | None = None,
    **options: Any,
) -> Run:
    """Record a training run driven by ``optimizer`` into the store at ``db``.

    ``name`` labels the run (its task); ``sweep`` groups runs for ``lrlab report --sweep``
    (default: ``name``); ``config`` (any JSON-ready mapping) is stored with the run. Other
    options: ``schedule`` (an lrlab schedule or spec; default the constant first-group LR),
    ``momentum`` (the momentum schedule the loop drives, if any: none is recorded unless
    given, whatever the schedule; the momentum of every step is recorded all the same),
    ``scheduler`` (an :class:`lrlab.torch.LRScheduler`: its schedule and momentum schedule
    are recorded, unless given), ``seed``, ``epochs``, ``batch_size``, ``total_steps`` (the planned length, for the
    decay diagnostic), ``objective``/``higher_is_better`` (the metric the report ranks by;
    one the first validated epoch lacks stops the run in one line), ``loss_name``/``loss_unit``
    (the training loss's name on the report's axes, e.g. ``"MSE"``; default cross-entropy in
    nats), ``live=True`` (diagnostics as training goes, each logged once through ``logging``),
    ``instruments`` (which instruments run: default the cheap ones, ``"default,sharpness"``,
    ``"all"``, ``False``; see :mod:`lrlab.instruments`), ``model`` (for the schedule-free
    evaluation check and per-layer names), ``lr_mults`` (the LR multiplier intended per param
    group, for the LR audit), ``probe_loss`` (a closure returning the loss on a batch held fixed:
    the step probe reads it every 10 steps, the sharpness instrument when on; ``sharpness_loss``
    is its former, deprecated name),
    ``export=[lrlab.export.TensorBoard(dir), lrlab.export.MLflow(uri)]`` (the steps and epochs
    sent there as they are written to the store; instruments, findings and config at the end).
    The run ends ``done``, ``diverged`` (a non-finite loss) or ``failed`` with the error.
    """
    return Run(optimizer, name=name, sweep=sweep, config=config, db=db, **options)


class _CallableModule(types.ModuleType):
    """``lrlab.track(...)`` calls :func:`track` (the module and the function share the name)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Run:
        return track(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
