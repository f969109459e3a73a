"""Vectorised sweeps: train many learning rates of one configuration in a single pass.

Runs whose resolved configs differ only in ``lr``, ``schedule``, ``momentum`` (schedule)
and ``seed`` share the architecture, so they are trained together: their parameters are
stacked (:mod:`lrlab.experiments.vectorized_model`), every member is updated with its own
learning rate and momentum at every step (:mod:`lrlab.experiments.vectorized_optim`), and
all members see the same batches. That makes the comparison *paired*: every learning
rate sees the same data in the same order. The group uses one data seed, the smallest
seed of its members (``RunRecord.extras["data_seed"]``); the ``seed`` of a member still
initialises its weights. A member whose seed is the data seed therefore gives the same
numbers as the same run trained alone by :func:`lrlab.experiments.loop.train_run`; a
member with another seed matches a lone run with its weights and the group's batch order.

Each member is an ordinary run in the store: same id, same step and epoch records, same
statuses and divergence rule (NaN/inf loss, or a loss above ``divergence_factor`` times
its first loss). A diverging member is frozen at that step (its update masked out),
marked ``diverged``, and dropped from the stack at the end of the epoch; the others go
on. ``extras["vectorized"]`` is the group's size.

Example:
    >>> from lrlab.experiments.store import Store
    >>> base = {"task": "digits-linear", "task_options": {"train_size": 64, "val_size": 32},
    ...         "optimizer": "sgd(momentum=0.9)", "epochs": 1, "batch_size": 32, "seed": 0}
    >>> configs = [{**base, "lr": lr, "schedule": f"constant(lr={lr})"} for lr in (0.01, 0.1)]
    >>> records = train_vectorized(configs, Store(":memory:"), ["a", "b"])
    >>> [(r.status, r.extras["vectorized"]) for r in records]
    [('done', 2), ('done', 2)]
"""

from __future__ import annotations

import json
import math
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lrlab.experiments.loop import DEFAULT_DIVERGENCE_FACTOR, RunProgress, resolve_device, substitute
from lrlab.experiments.records import EpochRecord, RunRecord
from lrlab.experiments.store import Store
from lrlab.experiments.vectorized_model import StackedModel
from lrlab.experiments.vectorized_optim import StackedOptimizer, stacked_optimizer, supports

__all__ = [
    "DEFAULT_MAX_GROUP",
    "GROUP_AXES",
    "group_key",
    "plan_groups",
    "run_vectorized",
    "train_vectorized",
    "why_not_vectorized",
]

GROUP_AXES = ("lr", "schedule", "momentum", "seed")
DEFAULT_MAX_GROUP = 32
# Config keys the vectorised trainer honours; a run with any other (truthy) key, such
# as lr_mult or finetune, is trained alone by the ordinary loop.
_KNOWN_KEYS = {"task", "task_options", "optimizer", "epochs", "batch_size", "divergence_factor", *GROUP_AXES}
_FLUSH_EVERY = 1000
_PROGRESS_EVERY_S = 0.5

ProgressFn = Callable[[RunProgress], None]


class _NotVectorizable(Exception):
    """The group's model cannot be run stacked (vmap or autograd refused it)."""


class _Plan(Protocol):
    id: str
    config: dict[str, Any]


# ---------------------------------------------------------------- grouping


def why_not_vectorized(config: dict[str, Any]) -> str | None:
    """``None`` when the run config can join a vectorised group, else the reason."""
    extra = sorted(k for k, v in config.items() if k not in _KNOWN_KEYS and v)
    if extra:
        return f"config key {extra[0]!r} is not vectorised"
    return supports(config.get("optimizer") or "sgd")


def group_key(config: dict[str, Any]) -> str | None:
    """What members of a group share: the config without ``lr``, ``schedule``,
    ``momentum`` and ``seed``, as a string (``None``: the run cannot be vectorised)."""
    if why_not_vectorized(config) is not None:
        return None
    shared = {k: v for k, v in config.items() if k not in GROUP_AXES}
    # Spell the loop's defaults out, so that "missing" and "default" group together.
    shared["optimizer"] = shared.get("optimizer") or "sgd"
    shared["task_options"] = shared.get("task_options") or {}
    shared["epochs"] = shared.get("epochs") or None
    shared["batch_size"] = shared.get("batch_size") or None
    shared["divergence_factor"] = config.get("divergence_factor", DEFAULT_DIVERGENCE_FACTOR)
    return json.dumps(shared, sort_keys=True, default=str)


def _split(items: list[Any], max_group: int) -> list[list[Any]]:
    """Near-equal chunks of at most ``max_group`` (17 by 16 -> 9 + 8, not 16 + 1)."""
    chunks = math.ceil(len(items) / max_group)
    size, extra = divmod(len(items), chunks)
    out, start = [], 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def plan_groups(
    plans: Sequence[_Plan], max_group: int | None = DEFAULT_MAX_GROUP
) -> tuple[list[tuple[int, list[_Plan]]], list[_Plan]]:
    """Split runs into vectorised groups and runs trained alone.

    Returns ``(groups, alone)``: each group is ``(data_seed, members)`` with at least two
    members and at most ``max_group`` (a larger group is split into near-equal parts that
    keep the whole group's data seed, so every part sees the same batches); ``alone`` keeps
    the input order.
    """
    if max_group is not None and (
        isinstance(max_group, bool) or not isinstance(max_group, int) or max_group < 1
    ):
        raise ValueError(f"max_group must be an integer >= 1 or None, got {max_group!r}")
    by_key: dict[str, list[_Plan]] = {}
    alone: list[_Plan] = []
    for plan in plans:
        key = group_key(plan.config)
        if key is None:
            alone.append(plan)
        else:
            by_key.setdefault(key, []).append(plan)
    groups: list[tuple[int, list[_Plan]]] = []
    for members in by_key.values():
        data_seed = min(int(p.config.get("seed", 0)) for p in members)
        parts = _split(members, max_group) if max_group else [members]
        for part in parts:
            if len(part) >= 2:
                groups.append((data_seed, part))
            else:
                alone.extend(part)
    order = {id(p): i for i, p in enumerate(plans)}
    alone.sort(key=lambda p: order[id(p)])
    return groups, alone


# ---------------------------------------------------------------- losses and metrics


def _member_losses(task: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """``(K, batch, ...)`` outputs and shared targets -> ``(K,)`` mean losses."""
    from lrlab.experiments.tasks import Task

    if type(task).loss_fn is Task.loss_fn:
        # The base task's mean cross-entropy, for all members in one call.
        def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
            members, classes = outputs.shape[0], outputs.shape[-1]
            per_item = F.cross_entropy(
                outputs.reshape(-1, classes), targets.reshape(-1).repeat(members), reduction="none"
            )
            return per_item.view(members, -1).mean(dim=1)

        return cross_entropy
    return torch.func.vmap(task.loss_fn, in_dims=(0, None))


def _member_norms(grads: Sequence[Tensor]) -> Tensor:
    """Each member's gradient norm over all its parameters: ``(K,)``."""
    per_param = [
        torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim()))) if g.dim() > 1 else g.abs() for g in grads
    ]
    return torch.linalg.vector_norm(torch.stack(per_param), dim=0)


# ---------------------------------------------------------------- one group


class _Group:
    """A group's task, stacked model, optimizer and per-member schedules (no store writes)."""

    def __init__(
        self, configs: Sequence[dict[str, Any]], device: torch.device, data_seed: int, mode: str
    ) -> None:
        from lrlab.experiments.tasks import Task, get_task
        from lrlab.schedules import parse

        first = configs[0]
        self.device = device
        self.task = task = get_task(first["task"], **dict(first.get("task_options") or {}))
        self.epochs = int(first.get("epochs") or task.default_epochs)
        batch_size = int(first.get("batch_size") or task.default_batch_size)
        self.train_loader = task.train_loader(batch_size, data_seed)
        self.val_loader = task.val_loader(max(batch_size, 256))
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = self.epochs * self.steps_per_epoch
        self.factor = first.get("divergence_factor", DEFAULT_DIVERGENCE_FACTOR)
        numbers = {"total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch}
        steps = np.arange(self.total_steps + 1, dtype=np.float64)
        lr_rows, momentum_rows = [], []
        for config in configs:
            lr = float(config["lr"])
            spec = config.get("schedule") or f"constant(lr={lr!r})"
            lr_rows.append(np.asarray(parse(substitute(spec, lr=lr, **numbers))(steps), dtype=np.float64))
            momentum_spec = config.get("momentum")
            momentum_rows.append(
                np.asarray(parse(substitute(momentum_spec, lr=lr, **numbers))(steps), dtype=np.float64)
                if momentum_spec
                else None
            )
        models = [task.make_model(int(c.get("seed", 0))).to(device) for c in configs]
        try:
            self.model = StackedModel(models, mode)
        except ValueError as exc:
            raise _NotVectorizable(str(exc)) from None
        self.model.train(True)
        self.optimizer: StackedOptimizer = stacked_optimizer(
            first.get("optimizer") or "sgd", self.model.params
        )
        default = self.optimizer.momentum
        self.scheduled_momentum = any(row is not None for row in momentum_rows)
        self.lr_table = torch.tensor(np.stack(lr_rows), dtype=torch.float64)
        self.momentum_table = torch.tensor(
            np.stack([row if row is not None else np.full_like(steps, default) for row in momentum_rows]),
            dtype=torch.float64,
        )
        self.lr_device = self.lr_table.to(device)
        self.momentum_device = self.momentum_table.to(device)
        self.loss = _member_losses(task)
        self.stacked_eval = type(task).evaluate is Task.evaluate and type(task).loss_fn is Task.loss_fn
        self._probe()

    def _probe(self) -> None:
        # A validation batch, so that the training loader's shuffling stays untouched.
        inputs, targets = next(iter(self.val_loader))
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        try:
            self.model.probe(inputs, lambda out: self.loss(out, targets))
        except Exception as exc:
            raise _NotVectorizable(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None

    @torch.no_grad()
    def evaluate(self, alive: Sequence[int]) -> list[dict[str, float | None]]:
        """The task's validation metrics for the stacked members ``alive`` (local order)."""
        if not self.stacked_eval:
            return [self.task.evaluate(self.model.member(j), self.val_loader) for j in range(len(alive))]
        self.model.train(False)
        members = self.model.members
        total = torch.zeros(members, dtype=torch.float64, device=self.device)
        correct = torch.zeros(members, dtype=torch.int64, device=self.device)
        count = 0
        try:
            for inputs, targets in self.val_loader:
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                outputs = self.model(inputs)
                n = targets.numel()
                total += self.loss(outputs, targets).double() * n
                count += n
                if self.task.kind == "classification":
                    correct += (outputs.argmax(dim=-1) == targets).flatten(1).sum(dim=1)
        finally:
            self.model.train(True)
        if count == 0:
            raise ValueError(f"task {self.task.name!r} has an empty validation set")
        losses = (total / count).tolist()
        if self.task.kind == "language_model":
            return [{"val_loss": v, "val_error": None, "val_accuracy": None} for v in losses]
        accuracy = (correct.double() / count).tolist()
        return [{"val_loss": v, "val_error": 1.0 - a, "val_accuracy": a} for v, a in zip(losses, accuracy)]


class _Trainer:
    """Trains a :class:`_Group` and records every member into the store."""

    def __init__(
        self, group: _Group, store: Store, run_ids: Sequence[str], progress: ProgressFn | None
    ) -> None:
        self.group, self.store, self.run_ids = group, store, list(run_ids)
        self.report = progress or (lambda _event: None)
        self.has_progress = progress is not None
        self.alive = list(range(len(run_ids)))  # global member index of each stacked slot
        self.finished: dict[int, str] = {}  # global index -> final status
        self.initial = np.full(len(run_ids), np.nan)  # host copy of each member's first loss
        self.pending: list[tuple[int, int, Tensor, Tensor]] = []  # step, epoch, losses, norms

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
                g.optimizer.step(list(grads), g.lr_device[:, step], momentum, active)
                self.pending.append((step, epoch, losses, norms))
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
            self._finish(index, "done", None, None, {"wall_time": time.perf_counter() - started})

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
            self.store.add_steps(self.run_ids[index], rows)
            applied = count - 1 if stop[slot] >= 0 else count
            self.loss_sum[index] += float(losses[:applied, slot].sum())
            self.loss_count[index] += applied
            if stop[slot] >= 0:
                loss, first = float(losses[count - 1, slot]), float(self.initial[index])
                why = "non-finite loss" if not math.isfinite(loss) else (
                    f"loss {loss:.4g} > {g.factor:g} x initial {first:.4g}"
                )  # fmt: skip
                self._finish(index, "diverged", f"{why} at step {stop[slot]}", stop[slot])

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
            self.store.add_epoch(
                EpochRecord(rid, epoch, step, train_loss, m.get("val_loss"), m.get("val_error"),
                            m.get("val_accuracy"), wall)
            )  # fmt: skip
            self.report(
                RunProgress("epoch", rid, epoch, g.epochs, step, g.total_steps, loss=train_loss,
                            val_loss=m.get("val_loss"), val_accuracy=m.get("val_accuracy"))
            )  # fmt: skip
            val_loss = m.get("val_loss")
            if val_loss is not None and not math.isfinite(val_loss):
                self._finish(index, "diverged", f"non-finite validation loss after epoch {epoch}", step)
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

    def _finish(
        self,
        index: int,
        status: str,
        error: str | None,
        diverged_step: int | None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        rid = self.run_ids[index]
        self.finished[index] = status
        if extras:
            self.store.update_extras(rid, extras)
        self.store.set_status(rid, status, error=error, diverged_step=diverged_step)
        g = self.group
        self.report(RunProgress("end", rid, g.epochs, g.epochs, 0, 0, status=status, error=error))


# ---------------------------------------------------------------- entry points


def _versions() -> tuple[str, str]:
    from lrlab import __version__

    return __version__, torch.__version__


def train_vectorized(
    configs: Sequence[dict[str, Any]],
    store: Store,
    run_ids: Sequence[str],
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    sweep: str | None = None,
    data_seed: int | None = None,
    mode: str = "auto",
    fallback: bool = True,
) -> list[RunRecord]:
    """Train the runs ``run_ids`` (configs of one group) together, recording each into ``store``.

    The configs must differ only in ``lr``, ``schedule``, ``momentum`` and ``seed`` (see
    :func:`group_key`). The batches come from ``data_seed`` (default: the smallest seed).
    ``mode`` is ``"auto"``, ``"bmm"`` or ``"vmap"`` (see
    :mod:`lrlab.experiments.vectorized_model`). When the model cannot be stacked, the
    runs are trained one by one with :func:`~lrlab.experiments.loop.train_run` if
    ``fallback`` (the reason goes to ``extras["vectorized_fallback"]``), else ``ValueError``.

    Runs are created if missing and left ``done``, ``diverged`` or ``failed``, as
    ``train_run`` leaves them; Ctrl-C puts the unfinished ones back to ``queued`` and is
    re-raised. Returns the stored records, in the order of ``run_ids``.
    """
    configs, run_ids = [dict(c) for c in configs], list(run_ids)
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
    seeds = [int(c.get("seed", 0)) for c in configs]
    data_seed = min(seeds) if data_seed is None else int(data_seed)
    resolved = resolve_device(device)
    store.create_runs(
        [RunRecord(id=rid, sweep=sweep, status="queued", config=c, seed=s)
         for rid, c, s in zip(run_ids, configs, seeds) if not store.has_run(rid)]
    )  # fmt: skip
    try:
        group = _Group(configs, resolved, data_seed, mode)
    except _NotVectorizable as exc:
        if not fallback:
            raise ValueError(f"runs cannot be vectorised: {exc}") from None
        return _train_alone(configs, store, run_ids, progress, device, sweep, str(exc))
    versions = _versions()
    for rid in run_ids:
        store.reset_run(rid)
        store.set_versions(rid, *versions)
        store.update_extras(
            rid,
            {"device": str(resolved), "steps_per_epoch": group.steps_per_epoch, "total_steps": group.total_steps,
             "param_groups": 1, "task_kind": group.task.kind, "vectorized": len(run_ids),
             "vectorized_mode": group.model.mode, "data_seed": data_seed},
        )  # fmt: skip
        store.set_status(rid, "running")
    trainer = _Trainer(group, store, run_ids, progress)
    try:
        with warnings.catch_warnings():
            # vmap's per-member fallback for a missing batching rule is correct, only slower.
            warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
            trainer.run()
    except KeyboardInterrupt:
        for index, rid in enumerate(run_ids):
            if index not in trainer.finished:
                store.set_status(rid, "queued", error="interrupted")
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        for index in range(len(run_ids)):
            if index not in trainer.finished:
                trainer._finish(index, "failed", error, None, {"traceback": traceback.format_exc(limit=8)})
    return [store.run(rid) for rid in run_ids]


def _train_alone(
    configs: list[dict[str, Any]],
    store: Store,
    run_ids: list[str],
    progress: ProgressFn | None,
    device: str,
    sweep: str | None,
    reason: str,
) -> list[RunRecord]:
    from lrlab.experiments.loop import train_run

    records = []
    for config, rid in zip(configs, run_ids):
        train_run(config, store, rid, progress, device=device, sweep=sweep)
        store.update_extras(rid, {"vectorized_fallback": reason})
        records.append(store.run(rid))
    return records


def run_vectorized(
    plans: Sequence[_Plan],
    store: Store,
    sweep: str | None = None,
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    max_group: int | None = None,
) -> list[_Plan]:
    """Train every group of two or more runs of ``plans`` (objects with ``id`` and
    ``config``, such as a sweep's ``RunPlan``); return the runs left to train alone.

    ``max_group`` (default ``DEFAULT_MAX_GROUP``) bounds a group's size: memory grows
    with it, and bigger groups are split into near-equal parts.
    """
    groups, alone = plan_groups(plans, max_group or DEFAULT_MAX_GROUP)
    for data_seed, members in groups:
        train_vectorized([p.config for p in members], store, [p.id for p in members], progress,
                         device=device, sweep=sweep, data_seed=data_seed)  # fmt: skip
    return alone
