"""The recording training loop: one run config in, one stored run out.

Every optimizer step is recorded (LR of each param group, momentum, train loss, gradient
norm) and written to the store in batches; every epoch is recorded (train loss, validation
loss, validation error and accuracy, wall time). A NaN/inf loss, or a loss above
``divergence_factor`` times the first step's loss, stops the run and marks it
``diverged`` at that step. The same config and seed give the same numbers on CPU.

A run config (``RunRecord.config``) holds:

=====================  =============================================================
``task``               built-in name or ``"module:function"`` / ``"file.py:function"``
``task_options``       keyword arguments of the task factory (optional)
``optimizer``          optimizer spec, e.g. ``"sgd(momentum=0.9)"``
``schedule``           schedule spec with numbers, e.g. ``"cosine(lr=0.1, total_steps=460)"``
                       (``{lr}``, ``{total_steps}``, ``{steps_per_epoch}`` are substituted
                       if still present); default ``constant(lr=<lr>)``
``lr``                 base learning rate
``seed``               seed of the weights and the batch order
``epochs``             default: the task's
``batch_size``         default: the task's
``momentum``           optional momentum schedule spec (one-cycle style)
``lr_mult``            optional ``{pattern: multiplier}`` rules (discriminative LRs)
``finetune``           optional ``{"rules", "layer_decay", "freeze", "unfreeze_every"}``
``divergence_factor``  default 4.0; ``None`` checks only for NaN/inf
=====================  =============================================================
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrlab.experiments.records import EpochRecord, RunRecord
from lrlab.experiments.store import Store

__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "RunProgress",
    "resolve_device",
    "substitute",
    "train_run",
]

DEFAULT_DIVERGENCE_FACTOR = 4.0
_FLUSH_EVERY = 1000  # step rows per write transaction at most
_FLUSH_SECONDS = 1.0  # epochs (and their steps) are written at least this often
_PROGRESS_EVERY_S = 0.5


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


ProgressFn = Callable[[RunProgress], None]


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (``"cuda:1"``...) or ``"auto"`` (CUDA when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device (use cpu or auto)")
        return torch.device(device)
    raise ValueError(f"device must be cpu, cuda or auto, got {device!r}")


def substitute(spec: str, *, lr: float, total_steps: int, steps_per_epoch: int) -> str:
    """Put numbers in place of ``{lr}``, ``{total_steps}`` and ``{steps_per_epoch}``.

    >>> substitute("cosine(lr={lr}, total_steps={total_steps})", lr=0.1, total_steps=50, steps_per_epoch=5)
    'cosine(lr=0.1, total_steps=50)'
    """
    values = {
        "lr": repr(float(lr)),
        "total_steps": str(int(total_steps)),
        "steps_per_epoch": str(int(steps_per_epoch)),
    }
    out = spec
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    if "{" in out or "}" in out:
        start = out.find("{")
        raise ValueError(
            f"schedule {spec!r} has an unknown placeholder near {out[start : start + 20]!r} "
            "(known: {lr}, {total_steps}, {steps_per_epoch})"
        )
    return out


def _momentum_of(group: dict[str, Any]) -> float | None:
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None


def _param_groups(model: torch.nn.Module, config: dict[str, Any], lr: float) -> tuple[Any, Any]:
    """The optimizer's params (plain or lr_mult groups) and an unfreezer or None."""
    finetune = dict(config.get("finetune") or {})
    rules = finetune.get("rules") or config.get("lr_mult")
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


class _StepBuffer:
    """Step rows kept in memory and written in one transaction per batch.

    Gradient norms stay on the device: each step keeps the per-tensor norms of one
    ``_foreach_norm``; the total norms of the whole batch are computed and copied to the
    host at once when the rows are taken.
    """

    def __init__(
        self, store: Store, run_id: str, params: list[torch.Tensor], size: int = _FLUSH_EVERY
    ) -> None:
        self.store, self.run_id, self.size = store, run_id, size
        self.params = params
        self.head: list[tuple[int, int, list[float], float | None, float]] = []
        self.norms: list[list[torch.Tensor] | tuple[torch.Tensor, ...]] = []

    def add(self, step: int, epoch: int, lrs: list[float], momentum: float | None, loss: float) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        self.norms.append(torch._foreach_norm(grads) if grads else ())
        self.head.append((step, epoch, lrs, momentum, loss))
        if len(self.head) >= self.size:
            self.flush()

    def take(self) -> list[tuple[int, int, list[float], float | None, float, float]]:
        """The buffered rows with their gradient norms; the buffer is emptied."""
        count = len(self.head)
        if not count:
            return []
        widths = {len(norms) for norms in self.norms}
        if len(widths) == 1 and 0 not in widths:
            flat = torch.stack([n for norms in self.norms for n in norms]).view(count, -1)
            totals = torch.linalg.vector_norm(flat.double(), dim=1).tolist()
        else:  # the number of tensors with a gradient changed (gradual unfreezing)
            totals = [
                float(torch.linalg.vector_norm(torch.stack(list(norms)).double())) if norms else 0.0
                for norms in self.norms
            ]
        rows = [(s, e, lrs, m, loss, n) for (s, e, lrs, m, loss), n in zip(self.head, totals)]
        self.head.clear()
        self.norms.clear()
        return rows

    def flush(self) -> None:
        rows = self.take()
        if rows:
            self.store.add_steps(self.run_id, rows)


def _versions() -> tuple[str, str]:
    from lrlab import __version__

    return __version__, torch.__version__


def train_run(
    config: dict[str, Any],
    store: Store,
    run_id: str,
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    sweep: str | None = None,
) -> RunRecord:
    """Train the run ``run_id`` described by ``config``, recording into ``store``.

    The run row is created if missing (status ``queued``) and left ``done``,
    ``diverged`` or ``failed`` (with the error text); an exception raised by the task,
    model or optimizer marks the run failed and is not re-raised. Ctrl-C
    (``KeyboardInterrupt``) puts the run back to ``queued`` and is re-raised. Metrics of
    an earlier attempt of the same run are discarded first.

    Returns the stored :class:`RunRecord`.
    """
    seed = int(config.get("seed", 0))
    pending = RunRecord(id=run_id, sweep=sweep, status="queued", config=dict(config), seed=seed)
    store.start_run(pending, *_versions())
    extras: dict[str, Any] = {}
    try:
        status, error, diverged_step = _train(config, store, run_id, progress, device, extras)
    except KeyboardInterrupt:
        store.set_status(run_id, "queued", error="interrupted")
        raise
    except Exception as exc:
        status, error, diverged_step = "failed", f"{type(exc).__name__}: {exc}", None
        extras["traceback"] = traceback.format_exc(limit=8)
    store.finish_run(run_id, status, error=error, diverged_step=diverged_step, extras=extras)
    record = store.run(run_id)
    if progress is not None:
        epochs = int(config.get("epochs") or extras.get("epochs") or 0)
        progress(RunProgress("end", run_id, epochs, epochs, 0, 0, status=status, error=error))
    return record


def _train(
    config: dict[str, Any],
    store: Store,
    run_id: str,
    progress: ProgressFn | None,
    device_name: str,
    extras: dict[str, Any],
) -> tuple[str, str | None, int | None]:
    from lrlab.experiments.optimizers import make_optimizer
    from lrlab.experiments.tasks import get_task
    from lrlab.schedules import parse
    from lrlab.torch import LRScheduler

    started = time.perf_counter()
    device = resolve_device(device_name)
    task = get_task(config["task"], **dict(config.get("task_options") or {}))
    seed = int(config.get("seed", 0))
    epochs = int(config.get("epochs") or task.default_epochs)
    batch_size = int(config.get("batch_size") or task.default_batch_size)
    lr = float(config["lr"])
    train_loader = task.train_loader(batch_size, seed)
    val_loader = task.val_loader(max(batch_size, 256))
    steps_per_epoch = len(train_loader)
    total_steps = epochs * steps_per_epoch
    spec = config.get("schedule") or f"constant(lr={lr!r})"
    schedule = parse(substitute(spec, lr=lr, total_steps=total_steps, steps_per_epoch=steps_per_epoch))
    momentum_spec = config.get("momentum")
    momentum = (
        parse(substitute(momentum_spec, lr=lr, total_steps=total_steps, steps_per_epoch=steps_per_epoch))
        if momentum_spec
        else None
    )
    factor = config.get("divergence_factor", DEFAULT_DIVERGENCE_FACTOR)

    model = task.make_model(seed).to(device)
    model.train()
    params, unfreezer = _param_groups(model, config, lr)
    optimizer = make_optimizer(config.get("optimizer") or "sgd", params, lr)
    scheduler = LRScheduler(optimizer, schedule, momentum=momentum)
    extras.update(
        device=str(device), epochs=epochs, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        param_groups=len(optimizer.param_groups), task_kind=task.kind,
    )  # fmt: skip
    params = [p for group in optimizer.param_groups for p in group["params"]]
    buffer = _StepBuffer(store, run_id, params)
    report = progress or (lambda _event: None)
    report(RunProgress("start", run_id, 0, epochs, 0, total_steps))

    pending: list[EpochRecord] = []
    last_flush = time.monotonic()

    def flush() -> None:
        # Steps and epochs in one transaction, about once a second at most: a killed process
        # loses only its run in flight, which restarts from scratch anyway.
        store.add_metrics(run_id, buffer.take(), pending)
        pending.clear()

    groups = optimizer.param_groups
    has_momentum = _momentum_of(groups[0]) is not None
    on_accelerator = device.type != "cpu"
    step, initial_loss, last_report = 0, None, time.monotonic()
    try:
        for epoch in range(1, epochs + 1):
            if unfreezer is not None:
                unfreezer.on_epoch_start(epoch)
            loss_sum, loss_count = 0.0, 0
            for inputs, targets in train_loader:
                if on_accelerator:
                    inputs, targets = (
                        inputs.to(device, non_blocking=True),
                        targets.to(device, non_blocking=True),
                    )
                lrs = [group["lr"] for group in groups]
                momentum_now = _momentum_of(groups[0]) if has_momentum else None
                optimizer.zero_grad(set_to_none=True)
                loss_tensor = task.loss_fn(model(inputs), targets)
                loss_tensor.backward()
                loss = loss_tensor.item()
                buffer.add(step, epoch, lrs, momentum_now, loss)
                if initial_loss is None:
                    initial_loss = loss
                if not math.isfinite(loss) or (factor is not None and loss > factor * initial_loss):
                    why = (
                        "non-finite loss"
                        if not math.isfinite(loss)
                        else f"loss {loss:.4g} > {factor:g} x initial {initial_loss:.4g}"
                    )
                    return "diverged", f"{why} at step {step}", step
                optimizer.step()
                scheduler.step()
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
            metrics = task.evaluate(model, val_loader)
            train_loss = loss_sum / loss_count if loss_count else None
            pending.append(
                EpochRecord(run_id, epoch, step, train_loss, metrics.get("val_loss"), metrics.get("val_error"),
                            metrics.get("val_accuracy"), time.perf_counter() - started)
            )  # fmt: skip
            if time.monotonic() - last_flush >= _FLUSH_SECONDS:
                flush()
                last_flush = time.monotonic()
            report(
                RunProgress("epoch", run_id, epoch, epochs, step, total_steps, loss=train_loss,
                            val_loss=metrics.get("val_loss"), val_accuracy=metrics.get("val_accuracy"))
            )  # fmt: skip
            val_loss = metrics.get("val_loss")
            if val_loss is not None and not math.isfinite(val_loss):
                return "diverged", f"non-finite validation loss after epoch {epoch}", step
    finally:
        flush()
    extras["wall_time"] = time.perf_counter() - started
    return "done", None, None
