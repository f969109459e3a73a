"""The one recorder: a run's lifecycle in the store, its divergence rule, its metric buffer.

The training loop, the vectorised trainer and the callbacks for users' own trainers all
record a run through :class:`Recorder`: ``begin`` (the run is claimed and marked running),
``step``/``rows`` and ``epoch`` (buffered, written in batches), ``end`` (the final status).
Each store call is one transaction (``Store.begin_run`` / ``append_metrics`` / ``end_run``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lrlab.core.diagnostics import Finding
from lrlab.core.records import EpochRecord, RunConfig, RunRecord, RunStatus
from lrlab.instruments import Instruments, InstrumentSettings
from lrlab.store.sqlite import StepRow, Store

__all__ = ["FLUSH_EVERY", "FLUSH_SECONDS", "REMOVED", "REMOVED_LINE", "Recorder", "RunProgress", "divergence_reason", "versions"]

REMOVED = "removed"  # the status a progress callback is told for a run another process removed
REMOVED_LINE = "removed from the store by another process: skipped"

FLUSH_EVERY = 1000  # step rows per write transaction at most
FLUSH_SECONDS = 1.0  # epochs (and their steps) are written at least this often
log = logging.getLogger("lrlab.export")
HEARTBEAT_SECONDS = 20.0  # a claimed run writes at least this often (its lease is LEASE_SECONDS)


@dataclass(frozen=True)
class RunProgress:
    """What a run reports to a ``progress`` callback.

    ``event`` is ``"start"``, ``"step"`` (at most every half second), ``"epoch"`` or
    ``"end"``; ``status`` is the run's status (final at ``"end"``).
    """

    event: str
    run_id: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    status: str = "running"
    error: str | None = None


ProgressFn = Callable[[Any], None]


def divergence_reason(loss: float, initial: float, factor: float | None) -> str | None:
    """Why a step's ``loss`` means the run diverged (a non-finite loss, or a loss above
    ``factor`` times the first step's ``initial`` loss), or None.

    >>> divergence_reason(9.0, 2.0, 4.0)
    'loss 9 > 4 x initial 2'
    >>> divergence_reason(float("nan"), 2.0, None)
    'non-finite loss'
    """
    if not math.isfinite(loss):
        return "non-finite loss"
    if factor is not None and loss > factor * initial:
        return f"loss {loss:.4g} > {factor:g} x initial {initial:.4g}"
    return None


def versions() -> tuple[str, str]:
    """lrlab's and torch's versions, recorded with every run."""
    from lrlab import __version__

    return __version__, torch.__version__


class Recorder:
    """Records one run into ``store``; see the module docstring for the lifecycle.

    Gradient norms handed to :meth:`step` may stay on the device (the per-tensor norms of
    one ``torch._foreach_norm``): the totals of a whole batch of steps are computed and
    copied to the host at once when the rows are written.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        config: RunConfig,
        *,
        sweep: str | None = None,
        flush_every: int = FLUSH_EVERY,
        flush_seconds: float = FLUSH_SECONDS,
        owner: str | None = None,
        listeners: Sequence[Any] = (),
        instruments: InstrumentSettings | str | bool | Sequence[str] | None = None,
        on_finding: Callable[[Finding], None] | None = None,
    ) -> None:
        self.store, self.run_id, self.config, self.sweep = store, run_id, config, sweep
        self.listeners = list(listeners)  # exporters told what is written (see _tell)
        self.owner = owner  # with an owner the run is claimed (see Store.begin_run)
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._head: list[tuple[int, int, list[float], float | None, float]] = []
        self._norms: list[Any] = []  # per step: a float, or a tuple of per-tensor norm tensors
        self._epochs: list[EpochRecord] = []
        self._last_flush = self._last_beat = time.monotonic()
        self.status: RunStatus = RunStatus.QUEUED
        # the run's instruments: fed every step; hooked on an optimizer by watch()
        self.instruments = Instruments(instruments, on_finding=on_finding)

    # -------------------------------------------------------- lifecycle

    def begin(self, extras: dict[str, Any] | None = None) -> bool:
        """Mark the run running (created if missing; an earlier attempt's metrics dropped).

        With an owner, False when the run could not be claimed (finished, or held by a live
        process): then nothing was written and the run must not be trained here."""
        lrlab_version, torch_version = versions()
        record = RunRecord(
            id=self.run_id, sweep=self.sweep, status=RunStatus.QUEUED, config=self.config,
            seed=self.config.seed, lrlab_version=lrlab_version, torch_version=torch_version,
        )  # fmt: skip
        if not self.store.begin_run(record, extras, owner=self.owner):
            return False
        self._tell("begin", record)
        self.status = RunStatus.RUNNING
        self._last_flush = self._last_beat = time.monotonic()
        return True

    def end(
        self,
        status: RunStatus,
        *,
        error: str | None = None,
        diverged_step: int | None = None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        """Write what is buffered, then the final status (``queued`` after an interruption)."""
        self.flush()
        self.store.end_run(
            self.run_id, status, error=error, diverged_step=diverged_step, extras=extras, owner=self.owner
        )
        self.status = RunStatus(status)
        self.instruments.detach()
        self._tell("ended", self.store, self.run_id)

    def abandon(self, status: RunStatus, *, error: str, extras: dict[str, Any] | None = None) -> None:
        """End the run without writing what is buffered (the store could not take it: a full
        disk); the status is the one small write left to try."""
        self._head.clear()
        self._norms.clear()
        self._epochs.clear()
        self.instruments.detach()
        self.store.end_run(self.run_id, status, error=error, extras=extras, owner=self.owner)
        self.status = RunStatus(status)

    # -------------------------------------------------------- metrics

    def step(
        self, step: int, epoch: int, lrs: list[float], momentum: float | None, loss: float, norms: Any
    ) -> None:
        """One optimizer step; ``norms`` is the gradient norm or per-tensor norm tensors."""
        self._head.append((step, epoch, lrs, momentum, loss))
        self._norms.append(norms)
        self.instruments.observe_step(step, loss)
        if len(self._head) >= self.flush_every:
            rows = self._take()
            series, findings = self.instruments.take()
            self.store.append_metrics(self.run_id, rows, owner=self.owner, series=series, findings=findings)
            self._tell("written", self.run_id, rows, [])
            self._last_beat = time.monotonic()
        elif self.owner is not None and time.monotonic() - self._last_beat > HEARTBEAT_SECONDS:
            self.flush()  # the write renews the claim

    def rows(self, rows: Sequence[StepRow]) -> None:
        """Step rows with their gradient norms already computed."""
        for step, epoch, lrs, momentum, loss, norm in rows:
            self.step(step, epoch, list(lrs), momentum, loss, float(norm))

    def epoch(self, record: EpochRecord) -> None:
        """An epoch's metrics; written with the buffered steps about once a second at most."""
        self._epochs.append(record)
        self.instruments.observe_epoch(record.step)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every buffered step and epoch in one transaction."""
        steps, epochs = self._take(), list(self._epochs)
        self._epochs.clear()
        series, findings = self.instruments.take()
        self.store.append_metrics(self.run_id, steps, epochs, owner=self.owner, series=series, findings=findings)
        if steps or epochs:
            self._tell("written", self.run_id, steps, epochs)
        self._last_flush = self._last_beat = time.monotonic()

    def watch(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        schedule: Any = None,
        lr_mults: Sequence[float] | None = None,
        model: torch.nn.Module | None = None,
        loss_fn: Callable[[], torch.Tensor] | None = None,
    ) -> Instruments:
        """Hook the run's instruments on ``optimizer``: the update ratio, the LR audit against
        ``schedule`` (times ``lr_mults`` per group; no audit without a schedule), the
        schedule-free evaluation check on ``model``'s evaluation forwards, the sharpness of
        ``loss_fn`` when it is on. Returns the instruments."""
        self.instruments.expect(schedule, lr_mults)
        return self.instruments.attach(optimizer, loss_fn=loss_fn, model=model)

    def _tell(self, event: str, *args: Any) -> None:
        """Tell every listener (an exporter: ``lrlab.export.TensorBoard``, ``MLflow``) what the
        store just took: ``begin(record)``, ``written(run_id, step_rows, epochs)``,
        ``ended(store, run_id)``. A listener that fails is dropped with one warning; the run
        goes on recording into the store, which stays the source of truth."""
        for listener in list(self.listeners):
            try:
                getattr(listener, event)(*args)
            except Exception as exc:
                self.listeners.remove(listener)
                log.warning("lrlab %s: export to %r stopped (%s: %s); the run is still recorded in the store",
                            self.run_id, listener, type(exc).__name__, exc)  # fmt: skip

    def _take(self) -> list[StepRow]:
        count = len(self._head)
        if not count:
            return []
        norms = self._norms
        widths = {len(n) if isinstance(n, (tuple, list)) else -1 for n in norms}
        if len(widths) == 1 and widths.pop() > 0:
            flat = torch.stack([n for per_step in norms for n in per_step]).view(count, -1)
            totals = torch.linalg.vector_norm(flat.double(), dim=1).tolist()
        else:  # floats, or a changing number of tensors with a gradient (gradual unfreezing)
            totals = [_total(n) for n in norms]
        rows = [(s, e, lrs, m, loss, n) for (s, e, lrs, m, loss), n in zip(self._head, totals)]
        self._head.clear()
        self._norms.clear()
        return rows


def _total(norms: Any) -> float:
    if not isinstance(norms, (tuple, list)):
        return float(norms)
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(list(norms)).double()))
