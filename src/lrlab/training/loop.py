"""The recording training loop: one run config in, one stored run out.

Every optimizer step is recorded (LR of each param group, momentum, train loss, gradient
norm) and every epoch (train loss, validation loss, validation error and accuracy, wall
time), through the run's :class:`~lrlab.training.recorder.Recorder`. A NaN/inf loss, or a
loss above ``divergence_factor`` times the first step's loss, stops the run and marks it
``diverged`` at that step. The same config and seed give the same numbers on CPU: the run
trains with its resolved thread count, whatever else runs beside it.

The LR recorded for a step is the one the step uses (:func:`~lrlab.optim.lr_free.step_lrs`):
for Prodigy and D-Adaptation their estimate ``d * lr``, not the multiplier ``lr``. A
schedule-free optimizer gets its contract (:mod:`lrlab.optim.lr_free`): ``train()`` before
each epoch's steps, ``eval()`` before every evaluation and when the run stops, and
BatchNorm statistics recomputed at its evaluation point before evaluating.

A schedule with a ``plateau(...)`` node is driven by an epoch metric
(:func:`~lrlab.training.resolve.plateau_metric`: the validation loss, or the objective
the task declares): the scheduler's last step of each epoch waits for the evaluation and
is ``scheduler.step(metric)``, so the steps are still counted once per optimizer step,
``warmup(plateau(...))`` warms up per step and the plateau reduces per epoch.

The run is a :class:`~lrlab.core.records.RunConfig`; :func:`~lrlab.training.resolve.resolve`
decides its defaults once.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
import traceback
import warnings
from typing import TYPE_CHECKING, Any

import torch

from lrlab.core.records import EpochRecord, RunConfig, RunRecord, RunStatus
from lrlab.optim.grammar import make_optimizer
from lrlab.optim.lr_free import (
    BN_RECOMPUTE_BATCHES,
    eval_mode,
    has_batchnorm,
    is_schedule_free,
    recompute_batchnorm,
    step_lrs,
    train_mode,
)
from lrlab.store.sqlite import ClaimLost, RunRemoved, Store
from lrlab.torch import LRScheduler, group_momentum
from lrlab.torch_utils import torch_threads
from lrlab.training.recorder import ProgressFn, Recorder, RunProgress, divergence_reason
from lrlab.training.resolve import ResolvedRun, resolve

if TYPE_CHECKING:
    from lrlab.training.tasks import Task

__all__ = ["RunProgress", "train_run"]

_PROGRESS_EVERY_S = 0.5


def _param_groups(model: torch.nn.Module, config: RunConfig, lr: float) -> tuple[Any, Any]:
    """The optimizer's params (plain or lr_mult groups) and an unfreezer or None."""
    finetune = dict(config.finetune or {})
    rules = finetune.get("rules") or config.lr_mult
    if not finetune and not rules:
        return model.parameters(), None
    from lrlab.finetune import GradualUnfreezer, param_groups

    options = {k: finetune[k] for k in ("weight_decay", "no_decay") if finetune.get(k) is not None}
    groups = param_groups(
        model,
        lr,
        rules=rules,
        layer_decay=finetune.get("layer_decay"),
        freeze=finetune.get("freeze") or (),
        **options,
    )
    every = finetune.get("unfreeze_every")
    unfreezer = GradualUnfreezer(model, every=int(every)) if every else None
    return groups, unfreezer


def _step_before_metric(scheduler: LRScheduler) -> None:
    """A step of a plateau-driven run inside an epoch: the loop gives the metric at the
    epoch's end, so the scheduler's reminder that no metric came yet is not for this loop."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the schedule has a plateau", category=UserWarning)
        scheduler.step()


def _step_on_metric(scheduler: LRScheduler, value: float | None) -> None:
    """The epoch's last scheduler step, with the epoch's metric for the plateau node(s);
    an epoch whose metric is missing (None) only advances."""
    if value is None:
        scheduler.step()
    else:
        scheduler.step(float(value))


def train_run(
    config: RunConfig,
    store: Store,
    run_id: str,
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    sweep: str | None = None,
    owner: str | None = None,
    task: Task | None = None,
    instruments: Any = None,
) -> RunRecord:
    """Train the run ``run_id`` described by ``config``, recording into ``store`` (with the
    default instruments, or ``instruments``: see :class:`lrlab.instruments.InstrumentSettings`).

    The run row is created if missing and left ``done``, ``diverged`` or ``failed`` (with
    the error text); an exception raised by the task, model or optimizer marks the run
    failed and is not re-raised. Ctrl-C (``KeyboardInterrupt``) puts the run back to
    ``queued`` and is re-raised. Metrics of an earlier attempt of the same run are
    discarded first.

    With ``owner`` the run is claimed first (``Store.begin_run``): a run that is finished or
    held by another live process is left alone, and its stored record is returned as it is.

    ``task`` is the task ``config.task`` names, when the caller holds it already (a study's
    or a sweep's, built once); without it the task is built from that reference.

    Returns the stored :class:`RunRecord`; raises :class:`~lrlab.store.sqlite.RunRemoved` (a
    ``KeyError``) when another process removed the run from the store while it trained.
    """
    recorder = Recorder(store, run_id, config, sweep=sweep, owner=owner, instruments=instruments)
    if not recorder.begin():
        record = store.run(run_id)
        if progress is not None:
            progress(RunProgress("end", run_id, 0, 0, 0, 0, status=record.status.value,
                                 error="claimed by another process"))  # fmt: skip
        return record
    extras: dict[str, Any] = {}
    try:
        status, error, diverged_step = _train(config, recorder, progress, device, extras, task)
    except KeyboardInterrupt:
        recorder.end(RunStatus.QUEUED, error="interrupted")
        raise
    except ClaimLost:
        return stored_run(store, run_id)  # another process took the run over: theirs to record
    except sqlite3.Error as exc:
        if _removed(store, run_id):  # its rows refused because another process removed it
            return stored_run(store, run_id)
        # The store itself failed (a full disk, an I/O error): end this run as failed with
        # the reason where the store still allows it, then stop; nothing else can be recorded.
        store.release_space()
        with contextlib.suppress(sqlite3.Error, ClaimLost):
            recorder.abandon(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", extras=extras)
        raise
    except Exception as exc:
        status, error, diverged_step = RunStatus.FAILED, f"{type(exc).__name__}: {exc}", None
        extras["traceback"] = traceback.format_exc(limit=8)
    try:
        recorder.end(status, error=error, diverged_step=diverged_step, extras=extras)
    except (ClaimLost, KeyError):
        return stored_run(store, run_id)
    if progress is not None:
        epochs = int(extras.get("epochs") or config.epochs or 0)
        progress(RunProgress("end", run_id, epochs, epochs, 0, 0, status=status.value, error=error))
    return stored_run(store, run_id)


def _removed(store: Store, run_id: str) -> bool:
    """Whether the run is gone from a store that still answers (False where it does not)."""
    try:
        return not store.has_run(run_id)
    except sqlite3.Error:
        return False


def stored_run(store: Store, run_id: str) -> RunRecord:
    """The stored record of a run this process trained, or :class:`~lrlab.store.sqlite.RunRemoved`
    (a ``KeyError``) when another process removed it meanwhile: the sweep executors skip it
    with one line (``lrlab runs rm`` during a sweep) and the sweep goes on."""
    if not store.has_run(run_id):
        raise RunRemoved(f"run {run_id!r} was removed from {store.path} by another process while it trained")
    return store.run(run_id)


def _train(
    config: RunConfig,
    recorder: Recorder,
    progress: ProgressFn | None,
    device_name: str,
    extras: dict[str, Any],
    task: Task | None = None,
) -> tuple[RunStatus, str | None, int | None]:
    started = time.perf_counter()
    run = resolve(config, task, device=device_name)
    extras.update(run.environment())
    with torch_threads(run.threads):
        status, error, diverged_step = _epochs(run, recorder, progress, started, extras)
    if status is RunStatus.DONE:
        extras["wall_time"] = time.perf_counter() - started
    return status, error, diverged_step


PROBE_DATA_SEED = 7919  # the probe batch's shuffle: the run's data seed plus this


def probe_batch(run: ResolvedRun) -> tuple[Any, Any] | None:
    """One training batch held fixed for the step probe and the sharpness (the run's batch size,
    drawn with a shuffle of its own: the training batches keep their order), on the run's device."""
    with torch.random.fork_rng(devices=[]):
        batch = next(iter(run.task.train_loader(run.batch_size, run.data_seed + PROBE_DATA_SEED)), None)
    if batch is None:
        return None
    inputs, targets = (t.to(run.device) if isinstance(t, torch.Tensor) else t for t in batch)
    return inputs, targets


def _probe_loss(run: ResolvedRun, model: torch.nn.Module) -> Any:
    """The loss of :func:`probe_batch`, for the step probe and the sharpness."""
    batch = probe_batch(run)
    if batch is None:
        return None
    inputs, targets = batch
    loss_fn = run.task.loss_fn
    return lambda: loss_fn(model(inputs), targets)


def _epochs(
    run: ResolvedRun,
    recorder: Recorder,
    progress: ProgressFn | None,
    started: float,
    extras: dict[str, Any],
) -> tuple[RunStatus, str | None, int | None]:
    task, device, run_id = run.task, run.device, recorder.run_id
    epochs, total_steps = run.epochs, run.total_steps
    model = task.make_model(run.config.seed).to(device)
    model.train()
    params, unfreezer = _param_groups(model, run.config, run.config.lr)
    optimizer = make_optimizer(run.config.optimizer, params, run.config.lr)
    scheduler = LRScheduler(optimizer, run.schedule, momentum=run.momentum)
    extras["param_groups"] = len(optimizer.param_groups)
    mults = [float(g.get("lr_mult", 1.0)) for g in optimizer.param_groups]  # the groups as built: the intent
    probed = {"step_probe", "sharpness"} & recorder.instruments.settings.names
    probe = _probe_loss(run, model) if probed else None
    recorder.watch(optimizer, schedule=run.schedule, lr_mults=mults, model=model, loss_fn=probe)
    # BatchNorm statistics of a schedule-free run are recomputed on a loader of their own,
    # so that the training batches keep their order.
    bn_batches = (
        task.train_loader(run.batch_size, run.data_seed)
        if is_schedule_free(optimizer) and has_batchnorm(model)
        else None
    )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    report = progress or (lambda _event: None)
    report(RunProgress("start", run_id, 0, epochs, 0, total_steps))

    groups = optimizer.param_groups
    has_momentum = group_momentum(groups[0]) is not None
    on_accelerator = device.type != "cpu"
    factor = run.divergence_factor
    plateau_metric = run.plateau_metric  # None: every step advances the schedule at once
    per_epoch = run.steps_per_epoch
    step, initial_loss, last_report = 0, None, time.monotonic()
    try:
        for epoch in range(1, epochs + 1):
            if unfreezer is not None:
                unfreezer.on_epoch_start(epoch)
            train_mode(optimizer)
            loss_sum, loss_count = 0.0, 0
            for inputs, targets in run.train_loader:
                if on_accelerator:
                    inputs, targets = (
                        inputs.to(device, non_blocking=True),
                        targets.to(device, non_blocking=True),
                    )
                momentum_now = group_momentum(groups[0]) if has_momentum else None
                optimizer.zero_grad(set_to_none=True)
                loss_tensor = task.loss_fn(model(inputs), targets)
                loss_tensor.backward()
                lrs = step_lrs(optimizer)  # after backward: DAdaptSGD's first step scales by |g0|
                loss = loss_tensor.item()
                grads = [p.grad for p in params if p.grad is not None]
                recorder.step(step, epoch, lrs, momentum_now, loss, torch._foreach_norm(grads) if grads else ())
                if initial_loss is None:
                    initial_loss = loss
                why = divergence_reason(loss, initial_loss, factor)
                if why is not None:
                    return RunStatus.DIVERGED, f"{why} at step {step}", step
                optimizer.step()
                if plateau_metric is None:
                    scheduler.step()
                elif step + 1 < epoch * per_epoch:  # the epoch's last step waits for its metric
                    _step_before_metric(scheduler)
                loss_sum += loss
                loss_count += 1
                step += 1
                if (
                    progress is not None
                    and step % 16 == 0
                    and time.monotonic() - last_report > _PROGRESS_EVERY_S
                ):
                    last_report = time.monotonic()
                    report(RunProgress("step", run_id, epoch, epochs, step, total_steps, loss=loss))
            eval_mode(optimizer)
            if bn_batches is not None:
                recompute_batchnorm(model, optimizer, bn_batches, BN_RECOMPUTE_BATCHES, device=device)
            metrics = task.evaluate(model, run.val_loader)
            train_loss = loss_sum / loss_count if loss_count else None
            recorder.epoch(
                EpochRecord.of(run_id, epoch, step, train_loss, metrics, time.perf_counter() - started)
            )
            report(
                RunProgress("epoch", run_id, epoch, epochs, step, total_steps, loss=train_loss,
                            val_loss=metrics.get("val_loss"), val_accuracy=metrics.get("val_accuracy"))
            )  # fmt: skip
            val_loss = metrics.get("val_loss")
            if val_loss is not None and not math.isfinite(val_loss):
                return RunStatus.DIVERGED, f"non-finite validation loss after epoch {epoch}", step
            if plateau_metric is not None:
                _step_on_metric(scheduler, metrics.get(plateau_metric))
    finally:
        eval_mode(optimizer)  # a run ends with a schedule-free model at its evaluation point
        recorder.flush()
    return RunStatus.DONE, None, None
