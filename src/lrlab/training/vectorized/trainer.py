"""Vectorised sweeps: train many learning rates of one configuration in a single pass.

Runs whose resolved configs differ only in ``lr``, ``schedule``, ``momentum`` (schedule)
and ``seed`` share the architecture, so they are trained together: their parameters are
stacked (:mod:`lrlab.training.vectorized.model`), every member is updated with its own
learning rate and momentum at every step (:mod:`lrlab.training.vectorized.optim`), and
all members see the same batches. That makes the comparison *paired*: every learning
rate sees the same data in the same order. The group uses one data seed, the smallest
seed of its members (``RunRecord.extras["data_seed"]``); the ``seed`` of a member still
initialises its weights. A member whose seed is the data seed therefore gives the same
numbers as the same run trained alone by :func:`lrlab.training.loop.train_run`; a
member with another seed matches a lone run with its weights and the group's batch order.

Each member is an ordinary run in the store: same id, same step and epoch records, same
statuses and divergence rule (NaN/inf loss, or a loss above ``divergence_factor`` times
its first loss). A diverging member is frozen at that step (its update masked out),
marked ``diverged``, and dropped from the stack at the end of the epoch; the others go
on. ``extras["vectorized"]`` is the group's size.

Example:
    >>> from lrlab.store.sqlite import Store
    >>> from lrlab.core.records import RunConfig
    >>> base = RunConfig(task="digits-linear", lr=0.01, optimizer="sgd(momentum=0.9)", epochs=1,
    ...                  batch_size=32, task_options={"train_size": 64, "val_size": 32})
    >>> configs = [base, base.replace(lr=0.1, schedule=None)]
    >>> records = train_vectorized(configs, Store(":memory:"), ["a", "b"])
    >>> [(r.status.value, r.extras["vectorized"]) for r in records]
    [('done', 2), ('done', 2)]
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lrlab.core.records import EpochRecord, RunConfig, RunRecord, RunStatus
from lrlab.store.sqlite import ClaimLost, RunRemoved, Store
from lrlab.torch_utils import torch_threads
from lrlab.training.recorder import REMOVED, REMOVED_LINE, Recorder, RunProgress, divergence_reason
from lrlab.training.resolve import resolve
from lrlab.training.vectorized.group import _Group, _member_norms, _NotVectorizable
from lrlab.training.vectorized.instruments import StackedInstruments
from lrlab.training.vectorized.plan import (
    DEFAULT_MAX_GROUP,
    GROUP_AXES,
    Plan,
    group_key,
    plan_groups,
    why_not_vectorized,
)

if TYPE_CHECKING:
    from lrlab.training.tasks import Task

__all__ = [
    "DEFAULT_MAX_GROUP",
    "GROUP_AXES",
    "group_key",
    "plan_groups",
    "run_vectorized",
    "train_vectorized",
    "why_not_vectorized",
]

_FLUSH_EVERY = 1000
_PROGRESS_EVERY_S = 0.5

ProgressFn = Callable[[RunProgress], None]


class _Trainer:
    """Trains a :class:`_Group` and records every member into the store."""

    def __init__(self, group: _Group, recorders: Sequence[Recorder], progress: ProgressFn | None) -> None:
        self.group, self.recorders = group, list(recorders)
        self.run_ids = [r.run_id for r in self.recorders]
        self.report = progress or (lambda _event: None)
        self.has_progress = progress is not None
        self.alive = list(range(len(self.run_ids)))  # global member index of each stacked slot
        # global index -> final status; None: taken over or removed by another process
        self.finished: dict[int, RunStatus | None] = {}
        self.initial = np.full(len(self.run_ids), np.nan)  # host copy of each member's first loss
        # step, epoch, losses, norms, update ratios (or None), step-probe multiples (or None)
        self.pending: list[tuple[int, int, Tensor, Tensor, Tensor | None, list[float] | None]] = []
        settings = self.recorders[0].instruments.settings if self.recorders else None
        self.instruments = StackedInstruments(group, settings) if settings is not None else None
        if self.instruments is not None and not self.instruments.on:
            self.instruments = None

    # -------------------------------------------------------- the loop

    def run(self) -> None:
        g = self.group
        started = time.perf_counter()
        device = g.device
        members = len(self.alive)
        active = torch.ones(members, dtype=torch.bool, device=device)
        diverged_at = torch.full((members,), -1, dtype=torch.int64, device=device)
        initial: Tensor | None = None
        epochs, total = g.epochs, g.total_steps
        for rid in self.run_ids:
            self.report(RunProgress("start", rid, 0, epochs, 0, total))
        step, last_report = 0, time.monotonic()
        for epoch in range(1, epochs + 1):
            self.loss_sum = np.zeros(len(self.run_ids))
            self.loss_count = np.zeros(len(self.run_ids), dtype=np.int64)
            for inputs, targets in g.train_loader:
                inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
                losses = g.loss(g.model(inputs), targets)
                grads = torch.autograd.grad(losses.sum(), g.model.params)
                losses = losses.detach()
                norms = _member_norms(grads)
                if initial is None:
                    initial = losses.clone()
                bad = ~torch.isfinite(losses)
                if g.factor is not None:
                    bad |= losses > g.factor * initial
                diverged_at = torch.where(active & bad, step, diverged_at)
                active &= ~bad
                momentum = g.momentum_device[:, step] if g.scheduled_momentum else None
                if self.instruments is not None:
                    self.instruments.before(step, g.model.params)
                g.optimizer.step(list(grads), g.lr_device[:, step], momentum, active)
                ratios, multiples = (
                    self.instruments.after(g.model.params) if self.instruments is not None else (None, None)
                )
                self.pending.append((step, epoch, losses, norms, ratios, multiples))
                step += 1
                if len(self.pending) >= _FLUSH_EVERY:
                    self._flush(diverged_at)
                if not bool(active.any()):  # every member has diverged: nothing left to train
                    break
                if (
                    self.has_progress
                    and step % 16 == 0
                    and time.monotonic() - last_report > _PROGRESS_EVERY_S
                ):
                    last_report = time.monotonic()
                    self._report_steps(epoch, step, losses)
            self._flush(diverged_at)
            active, diverged_at, initial = self._end_epoch(epoch, step, started, active, diverged_at, initial)
            if not self.alive:
                break
        for index in self.alive:
            self._finish(index, RunStatus.DONE, None, None, {"wall_time": time.perf_counter() - started})

    def _report_steps(self, epoch: int, step: int, losses: Tensor) -> None:
        g = self.group
        for index, loss in zip(self.alive, losses.tolist()):
            if index not in self.finished:
                self.report(
                    RunProgress("step", self.run_ids[index], epoch, g.epochs, step, g.total_steps, loss=loss)
                )

    # -------------------------------------------------------- recording

    def _flush(self, diverged_at: Tensor) -> None:
        """Write the pending step rows of every member (up to its diverging step)."""
        if not self.pending:
            return
        g = self.group
        losses = torch.stack([row[2] for row in self.pending]).double().cpu().numpy()
        norms = torch.stack([row[3] for row in self.pending]).double().cpu().numpy()
        steps = [row[0] for row in self.pending]
        epochs = [row[1] for row in self.pending]
        ratios = [None if row[4] is None else row[4].cpu().numpy() for row in self.pending]
        multiples = [row[5] for row in self.pending]
        stop = diverged_at.cpu().tolist()
        self.pending.clear()
        if steps[0] == 0:
            self.initial[self.alive] = losses[0]
        # The host tables keep every member (global index); the device ones only the stacked.
        lrs = g.lr_table[:, steps[0] : steps[-1] + 1].numpy()
        momenta = g.momentum_table[:, steps[0] : steps[-1] + 1].numpy()
        for slot, index in enumerate(self.alive):
            if index in self.finished:
                continue
            last = stop[slot] if stop[slot] >= 0 else steps[-1]
            count = last - steps[0] + 1
            rows = [
                (steps[i], epochs[i], [float(lrs[index, i])], float(momenta[index, i]),
                 float(losses[i, slot]), float(norms[i, slot]))
                for i in range(count)
            ]  # fmt: skip
            panel = self.recorders[index].instruments
            for i in range(count):  # the instruments first: the rows' losses are judged with them
                ratio = None if ratios[i] is None else [float(ratios[i][slot])]
                multiple = None if multiples[i] is None else multiples[i][slot]
                panel.observe_update(steps[i], [float(lrs[index, i])], ratio, multiple)
            if not self._record(index, lambda index=index, rows=rows: self.recorders[index].rows(rows)):
                continue
            applied = count - 1 if stop[slot] >= 0 else count
            self.loss_sum[index] += float(losses[:applied, slot].sum())
            self.loss_count[index] += applied
            if stop[slot] >= 0:
                loss, first = float(losses[count - 1, slot]), float(self.initial[index])
                why = divergence_reason(loss, first, g.factor) or "diverged"
                self._finish(index, RunStatus.DIVERGED, f"{why} at step {stop[slot]}", stop[slot])

    def _end_epoch(
        self,
        epoch: int,
        step: int,
        started: float,
        active: Tensor,
        diverged_at: Tensor,
        initial: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        g = self.group
        metrics = g.evaluate(self.alive)
        wall = time.perf_counter() - started
        for slot, index in enumerate(self.alive):
            if index in self.finished:
                continue
            count = int(self.loss_count[index])
            train_loss = float(self.loss_sum[index] / count) if count else None
            m = metrics[slot]
            rid = self.run_ids[index]
            record = EpochRecord.of(rid, epoch, step, train_loss, m, wall)
            if not self._record(index, lambda index=index, record=record: self.recorders[index].epoch(record)):
                continue
            self.report(
                RunProgress("epoch", rid, epoch, g.epochs, step, g.total_steps, loss=train_loss,
                            val_loss=m.get("val_loss"), val_accuracy=m.get("val_accuracy"))
            )  # fmt: skip
            val_loss = m.get("val_loss")
            if val_loss is not None and not math.isfinite(val_loss):
                self._finish(index, RunStatus.DIVERGED, f"non-finite validation loss after epoch {epoch}", step)
        keep = [slot for slot, index in enumerate(self.alive) if index not in self.finished]
        if len(keep) == len(self.alive):
            return active, diverged_at, initial
        # Drop the finished members from the stack: the others go on, faster.
        self.alive = [self.alive[slot] for slot in keep]
        if not keep:
            return active, diverged_at, initial
        where = torch.tensor(keep, dtype=torch.long, device=g.device)
        g.model.select(where)
        g.optimizer.select(where, g.model.params)
        g.lr_device, g.momentum_device = g.lr_device[where], g.momentum_device[where]
        assert initial is not None
        return active[where], diverged_at[where], initial[where]

    def _record(self, index: int, write: Callable[[], None]) -> bool:
        """Do one write of member ``index``; False when another process took its run over
        (``ClaimLost``: theirs to record) or removed it (``lrlab runs rm``: skipped, in one
        line to the progress callback). Either way the member is dropped and the others go on."""
        try:
            write()
            return True
        except (ClaimLost, KeyError) as exc:
            rid, store = self.run_ids[index], self.recorders[index].store
            if not store.has_run(rid):
                self.report(RunProgress("end", rid, 0, 0, 0, 0, status=REMOVED, error=REMOVED_LINE))
            elif not isinstance(exc, ClaimLost):
                raise
            self.finished[index] = None
            return False

    def _finish(
        self,
        index: int,
        status: RunStatus,
        error: str | None,
        diverged_step: int | None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        end = self.recorders[index].end
        if not self._record(index, lambda: end(status, error=error, diverged_step=diverged_step, extras=extras)):
            return
        self.finished[index] = status
        g = self.group
        self.report(
            RunProgress("end", self.run_ids[index], g.epochs, g.epochs, 0, 0, status=status.value, error=error)
        )


# ---------------------------------------------------------------- entry points


def train_vectorized(
    configs: Sequence[RunConfig],
    store: Store,
    run_ids: Sequence[str],
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    sweep: str | None = None,
    data_seed: int | None = None,
    mode: str = "auto",
    fallback: bool = True,
    owner: str | None = None,
    task: Task | None = None,
    instruments: Any = None,
) -> list[RunRecord]:
    """Train the runs ``run_ids`` (configs of one group) together, recording each into ``store``
    (with the default instruments, or ``instruments``: the update ratio and the step probe of
    every member are measured on the stacked weights, :mod:`lrlab.training.vectorized.instruments`).

    The configs must differ only in ``lr``, ``schedule``, ``momentum`` and ``seed`` (see
    :func:`group_key`). The batches come from ``data_seed`` (default: the smallest seed).
    ``mode`` is ``"auto"``, ``"bmm"`` or ``"vmap"`` (see
    :mod:`lrlab.training.vectorized.model`). When the model cannot be stacked, the
    runs are trained one by one with :func:`~lrlab.training.loop.train_run` if
    ``fallback`` (the reason goes to ``extras["vectorized_fallback"]``), else ``ValueError``.

    Runs are created if missing and left ``done``, ``diverged`` or ``failed``, as
    ``train_run`` leaves them; Ctrl-C puts the unfinished ones back to ``queued`` and is
    re-raised. With ``owner`` each run is claimed first (``Store.begin_run``); the runs that
    are finished or held by another live process are left alone; a run another process
    removes meanwhile (``lrlab runs rm``) is dropped from the group, the progress callback
    told so in one line, and the others go on. Returns the stored records, in the order of
    ``run_ids`` (less the removed). ``task`` is their task when the caller holds it
    already (else it is built from the configs' reference).
    """
    configs, run_ids = list(configs), list(run_ids)
    _check_group(configs, run_ids, mode)
    data_seed = min(c.seed for c in configs) if data_seed is None else int(data_seed)
    first = resolve(configs[0], task, device=device, data_seed=data_seed)
    runs = [first, *(resolve(c, first.task, device=first.device, data_seed=data_seed) for c in configs[1:])]
    with torch_threads(first.threads):
        try:
            group = _Group(runs, mode)
        except _NotVectorizable as exc:
            if not fallback:
                raise ValueError(f"runs cannot be vectorised: {exc}") from None
            return _train_alone(configs, store, run_ids, progress, device, sweep, str(exc), owner, first.task)
        recorders = [Recorder(store, rid, c, sweep=sweep, owner=owner, instruments=instruments)
                     for rid, c in zip(run_ids, configs)]  # fmt: skip
        environment = {**first.environment(), "param_groups": 1, "vectorized": len(run_ids),
                       "vectorized_mode": group.model.mode, "data_seed": data_seed}  # fmt: skip
        claimed = [recorder.begin(environment) for recorder in recorders]
        if not all(claimed):  # train only what this process holds
            keep = [i for i, ok in enumerate(claimed) if ok]
            if not keep:
                return _stored(store, run_ids)
            group = _Group([runs[i] for i in keep], mode)
            recorders = [recorders[i] for i in keep]
        _train_group(group, recorders, progress)
    return _stored(store, run_ids)


def _stored(store: Store, run_ids: list[str]) -> list[RunRecord]:
    """The stored records of ``run_ids``, in order, less those another process removed."""
    return [store.run(rid) for rid in run_ids if store.has_run(rid)]


def _check_group(configs: list[RunConfig], run_ids: list[str], mode: str) -> None:
    """``ValueError`` unless the runs are one group (see :func:`group_key`) with distinct ids."""
    if not configs or len(configs) != len(run_ids):
        raise ValueError(
            f"configs and run_ids must be non-empty and of equal length, got {len(configs)} and {len(run_ids)}"
        )
    if len(set(run_ids)) != len(run_ids):
        raise ValueError("run_ids must be distinct")
    if mode not in ("auto", "bmm", "vmap"):
        raise ValueError(f"mode must be auto, bmm or vmap, got {mode!r}")
    keys = [group_key(c) for c in configs]
    if keys[0] is None:
        raise ValueError(f"run {run_ids[0]!r} cannot be vectorised: {why_not_vectorized(configs[0])}")
    for rid, key in zip(run_ids, keys):
        if key != keys[0]:
            raise ValueError(
                f"run {rid!r} differs from run {run_ids[0]!r} in more than {', '.join(GROUP_AXES)} "
                "(or cannot be vectorised); group runs with plan_groups()"
            )


def _train_group(group: _Group, recorders: list[Recorder], progress: ProgressFn | None) -> None:
    trainer = _Trainer(group, recorders, progress)
    try:
        with warnings.catch_warnings():
            # vmap's per-member fallback for a missing batching rule is correct, only slower.
            warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
            trainer.run()
    except KeyboardInterrupt:
        for index, recorder in enumerate(recorders):
            if index not in trainer.finished:
                recorder.end(RunStatus.QUEUED, error="interrupted")
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        for index in range(len(recorders)):
            if index not in trainer.finished:
                trainer._finish(index, RunStatus.FAILED, error, None, {"traceback": traceback.format_exc(limit=8)})


def _train_alone(
    configs: list[RunConfig],
    store: Store,
    run_ids: list[str],
    progress: ProgressFn | None,
    device: str,
    sweep: str | None,
    reason: str,
    owner: str | None,
    task: Task,
) -> list[RunRecord]:
    from lrlab.training.loop import train_run

    records = []
    for config, rid in zip(configs, run_ids):
        try:
            record = train_run(config, store, rid, progress, device=device, sweep=sweep, owner=owner, task=task)
        except RunRemoved:
            if progress is not None:
                progress(RunProgress("end", rid, 0, 0, 0, 0, status=REMOVED, error=REMOVED_LINE))
            continue
        if record.status.is_ended and record.extras.get("vectorized_fallback") is None:
            store.end_run(rid, record.status, error=record.error, diverged_step=record.diverged_step,
                          extras={"vectorized_fallback": reason})  # fmt: skip
        records.append(store.run(rid))
    return records


def run_vectorized(
    plans: Sequence[Plan],
    store: Store,
    sweep: str | None = None,
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    max_group: int | None = None,
    owner: str | None = None,
    task: Task | None = None,
) -> list[Plan]:
    """Train every group of two or more runs of ``plans`` (objects with ``id`` and
    ``config``, such as a sweep's ``RunPlan``); return the runs left to train alone.
    ``task`` is the plans' task when the caller holds it (built once for all groups).

    ``max_group`` (default ``DEFAULT_MAX_GROUP``) bounds a group's size: memory grows
    with it, and bigger groups are split into near-equal parts.
    """
    groups, alone = plan_groups(plans, max_group or DEFAULT_MAX_GROUP)
    for data_seed, members in groups:
        train_vectorized([p.config for p in members], store, [p.id for p in members], progress,
                         device=device, sweep=sweep, data_seed=data_seed, owner=owner, task=task)  # fmt: skip
    return alone
