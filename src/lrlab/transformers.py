"""Hugging Face ``Trainer`` bindings: :class:`Recorder` (a ``TrainerCallback``) and :func:`find_lr`.

Example::

    from transformers import Trainer, TrainingArguments
    import lrlab.transformers

    args = TrainingArguments("out", logging_steps=1, eval_strategy="epoch", ...)
    trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
                      callbacks=[lrlab.transformers.Recorder(name="my-model", sweep="mine")])
    lrlab.transformers.find_lr(trainer)  # sets args.learning_rate to lrlab's recommendation
    trainer.train()

Importing this module imports ``transformers``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from lrlab.schedules import Schedule, constant, cosine, linear, polynomial, warmup
from lrlab.schedules.plateau import PlateauState, find_plateaus, observe
from lrlab.store.sqlite import DEFAULT_DB, Store
from lrlab.torch import LRScheduler, group_momentum
from lrlab.track import Run, end_left_open

__all__ = ["UNKNOWN_SCHEDULE", "PlateauCallback", "Recorder", "find_lr", "trainer_schedule"]

log = logging.getLogger("lrlab.transformers")
_SKIP = ("runtime", "per_second", "epoch")
_RECORDERS = "_lrlab_recorders"  # on the optimizer: the Recorders recording with it
_TWICE = "two lrlab Recorder callbacks on one Trainer: attach one (each would record the run again)"


class Recorder(TrainerCallback):
    """Stream a ``Trainer`` run into the lrlab store (options as for :func:`lrlab.track`).

    A row per logged step (every step with ``logging_steps=1``): every param group's LR and
    the momentum or beta1 of that step (read before the optimizer step), the logged loss and
    the gradient norm of the parameters as the optimizer sees them (after clipping). Each
    evaluation is an epoch; ``eval_loss``, ``eval_accuracy`` and any ``eval_X`` are stored as
    ``val_loss``, ``val_accuracy``, ``val_X``.
    """

    def __init__(self, name: str, *, db: str | Path | Store = DEFAULT_DB, **options: Any) -> None:
        self.name, self.db, self.options = name, db, options
        self.run: Run | None = None
        self._last: tuple[list[float], float | None, Any] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        end_left_open(self.run)  # the last training raised
        optimizer = kwargs.get("optimizer")
        if optimizer is None:
            raise RuntimeError(
                "lrlab.transformers.Recorder: the Trainer handed no optimizer to its callbacks"
            )
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer
        others = [r for r in getattr(optimizer, _RECORDERS, []) if r is not self and r.run is not None
                  and r.run.status == "running"]  # fmt: skip
        if others:  # the first one's run ends failed with this line, its rows kept
            for other in others:
                other.run.end(error=_TWICE)
            setattr(optimizer, _RECORDERS, [])
            raise RuntimeError(_TWICE)
        options = dict(self.options)
        options.setdefault("total_steps", int(state.max_steps) if state.max_steps else None)
        options.setdefault("epochs", int(args.num_train_epochs) if args.num_train_epochs >= 1 else None)
        options.setdefault("seed", int(args.seed))
        options.setdefault("batch_size", int(args.per_device_train_batch_size))
        scheduler = kwargs.get("lr_scheduler")
        if isinstance(scheduler, LRScheduler) and scheduler.momentum is not None:  # the momentum it drives
            options.setdefault("momentum", scheduler.momentum)
        if "schedule" not in options:  # the schedule that runs, not the constant first LR
            ran = trainer_schedule(kwargs.get("lr_scheduler"))
            if ran is None:
                options["config"] = {**dict(options.get("config") or {}), "schedule": UNKNOWN_SCHEDULE}
            else:
                options["schedule"] = ran
        if isinstance(kwargs.get("model"), torch.nn.Module):  # the schedule-free evaluation check
            options.setdefault("model", kwargs["model"])
        self.run = Run(optimizer, name=self.name, db=self.db, **options).begin()
        setattr(optimizer, _RECORDERS, [self])

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self.run
        if run is None or run.optimizer is None:
            return
        grads = [p.grad for p in run.params if p.grad is not None]
        norms = tuple(torch._foreach_norm(grads)) if grads else 0.0
        groups = run.optimizer.param_groups
        self._last = ([float(g["lr"]) for g in groups], group_momentum(groups[0]), norms)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if self.run is None or not logs or "loss" not in logs or self._last is None:
            return
        lrs, momentum, norms = self._last
        if state.global_step <= self.run.last_step:
            return  # logged twice for one step
        self.run.record(logs["loss"], int(state.global_step), lrs, momentum, norms)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                    **kwargs: Any) -> None:  # fmt: skip
        if self.run is None or not metrics:
            return
        values = {}
        for key, value in metrics.items():
            name = f"val_{key[5:]}" if key.startswith("eval_") else key
            if any(part in name for part in _SKIP) or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                values[name] = float(value)
        self.run.epoch(**values)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is not None:
            self.run.end()


UNKNOWN_SCHEDULE = "unknown (LR recorded per step)"
"""What a :class:`Recorder` stores (in the run's ``config``) for a scheduler it cannot read
as an lrlab schedule; the LRs of every step are recorded all the same."""


def trainer_schedule(scheduler: Any) -> Schedule | None:
    """The lrlab schedule a ``Trainer``'s ``lr_scheduler`` runs (for its first param group),
    read off the scheduler itself: an lrlab :class:`~lrlab.torch.LRScheduler`'s own; for
    the schedulers ``transformers.get_scheduler`` makes (``lr_scheduler_type`` ``constant``,
    ``constant_with_warmup``, ``linear``, ``cosine`` with half a cycle (and ``min_lr_rate``),
    ``polynomial``), their warmup and decay, as their lambdas compute them; None for any
    other (its LR is recorded per step all the same).

    >>> import torch
    >>> from transformers import get_scheduler
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    >>> str(trainer_schedule(get_scheduler("linear", opt, num_warmup_steps=10, num_training_steps=100)))
    'warmup(linear(start_lr=0.1, end_lr=0.0, total_steps=90), steps=10)'
    """
    if isinstance(scheduler, LRScheduler):
        return scheduler.schedule
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas or not getattr(scheduler, "base_lrs", None):
        return None
    rule_fn, kw = (lambdas[0].func, lambdas[0].keywords) if isinstance(lambdas[0], functools.partial) else (
        lambdas[0], {})  # fmt: skip
    if getattr(rule_fn, "__module__", "") != "transformers.optimization":
        return None
    rule = getattr(rule_fn, "__name__", "")
    lr = float(scheduler.base_lrs[0])
    if rule == "_get_constant_lambda":
        return constant(lr)
    warm = int(kw.get("num_warmup_steps", 0) or 0)
    total = kw.get("num_training_steps")
    if rule == "_get_constant_schedule_with_warmup_lr_lambda":
        return warmup(constant(lr), steps=warm) if warm > 0 else constant(lr)
    if not isinstance(total, int) or total - warm < 1 or warm < 0:
        return None
    decay: Schedule | None = None
    if rule == "_get_linear_schedule_with_warmup_lr_lambda":
        decay = linear(lr, 0.0, total_steps=total - warm)
    elif rule == "_get_cosine_schedule_with_warmup_lr_lambda" and float(kw.get("num_cycles", 0.5)) == 0.5:
        decay = cosine(lr, total_steps=total - warm, final_lr=lr * float(kw.get("min_lr_rate") or 0.0))
    elif rule == "_get_polynomial_decay_schedule_with_warmup_lr_lambda" and float(kw.get("lr_init", lr)) == lr:
        decay = polynomial(lr, total_steps=total - warm, final_lr=float(kw["lr_end"]), power=float(kw["power"]))
    if decay is None:
        return None
    return warmup(decay, steps=warm) if warm > 0 else decay


class PlateauCallback(TrainerCallback):
    """Drive the ``plateau(...)`` node of an lrlab scheduler with the ``Trainer``'s evaluations.

    The Trainer steps the scheduler after every optimizer step, as any scheduler; at each
    evaluation this callback gives the metric (``args.metric_for_best_model`` when set, else
    ``eval_loss``) to the plateau node in effect, as ``LRScheduler.step(metric)`` does, but
    without a step of its own: the scheduler's steps stay the optimizer's. So
    ``warmup(plateau(...), steps=500)`` warms up per step and reduces per evaluation.

    Example::

        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        scheduler = LRScheduler(optimizer, "warmup(plateau(lr=3e-4, patience=2), steps=500)")
        trainer = Trainer(model, TrainingArguments("out", eval_strategy="epoch", ...),
                          optimizers=(optimizer, scheduler), callbacks=[PlateauCallback()], ...)
    """

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        scheduler = _plateau_scheduler(kwargs.get("lr_scheduler"))
        if scheduler is None:
            return
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            raise ValueError(
                "lrlab.transformers.PlateauCallback: the schedule's plateau(...) is driven by evaluations, "
                "but eval_strategy is 'no': set eval_strategy='epoch' (or 'steps') and an eval_dataset"
            )
        metric, higher = _metric(args)
        wanted = "max" if higher else "min"
        for node in find_plateaus(scheduler.schedule):
            if node.mode != wanted:
                direction = "higher" if higher else "lower"
                raise ValueError(
                    f"plateau(mode={node.mode!r}) is driven by {metric}, where {direction} is better "
                    f"(greater_is_better={higher}): use mode={wanted!r}"
                )
        # The metrics come at evaluations: the scheduler's reminder that none came is not for us.
        state = scheduler.state_dict()
        state["_awaiting_metric"] = False
        scheduler.load_state_dict(state)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                    **kwargs: Any) -> None:  # fmt: skip
        scheduler = _plateau_scheduler(kwargs.get("lr_scheduler"))
        if scheduler is None or not metrics:
            return
        metric, _ = _metric(args)
        if metric not in metrics:
            raise ValueError(
                f"lrlab.transformers.PlateauCallback: the evaluation has no {metric!r} (it has: "
                f"{', '.join(sorted(metrics))}); set metric_for_best_model to one of them"
            )
        feed_metric(scheduler, float(metrics[metric]))


def _plateau_scheduler(scheduler: Any) -> LRScheduler | None:
    """The lrlab scheduler the Trainer steps, when its schedule has a plateau node."""
    if isinstance(scheduler, LRScheduler) and find_plateaus(scheduler.schedule):
        return scheduler
    return None


def _metric(args: Any) -> tuple[str, bool]:
    """The evaluation metric that drives the plateau and whether higher is better: the
    Trainer's ``metric_for_best_model`` (with its ``eval_`` prefix and ``greater_is_better``),
    else ``eval_loss``."""
    name = getattr(args, "metric_for_best_model", None)
    if not name:
        return "eval_loss", False
    name = name if name.startswith("eval_") else f"eval_{name}"
    higher = args.greater_is_better
    return name, bool(higher) if higher is not None else not name.endswith("loss")


def feed_metric(scheduler: LRScheduler, metric: float) -> None:
    """Give ``metric`` to the plateau node of ``scheduler`` in effect at its last step, without
    advancing it (the Trainer has stepped it for that optimizer step already); the optimizer's
    LR is set to the result, through the scheduler's own state dict."""
    state = scheduler.state_dict()
    saved = state.get("_plateau_states") or []
    states = [PlateauState.from_dict(s) for s in saved] if saved else None
    schedule, new_states = observe(scheduler.schedule, max(scheduler.last_epoch - 1, 0), metric, states)
    state["schedule"] = schedule.to_dict()
    state["_plateau_states"] = [s.to_dict() for s in new_states]
    state["_awaiting_metric"] = False  # a metric came: no reminder that none did
    scheduler.load_state_dict(state)


def find_lr(trainer: Trainer, *, figure: str | Path | None = None, **options: Any) -> Any:
    """Run lrlab's range test on ``trainer``'s model and training data, then set
    ``trainer.args.learning_rate`` to the recommendation (when the curve is trustworthy).

    The model's own loss is used (``model(**batch).loss``: the labels must be in the batch).
    The model and any optimizer the trainer already has are restored afterwards; an
    optimizer made here for the test is dropped, so ``trainer.train()`` builds its own at the
    new LR. ``figure`` saves the curve (``.png``, ``.svg``, ``.html``); ``options`` go to
    :func:`lrlab.find_lr`. Returns the :class:`lrlab.finder.result.FinderResult`.
    """
    from lrlab.finder import find_lr as range_test

    made = trainer.optimizer is None
    optimizer = trainer.create_optimizer() if made else trainer.optimizer
    optimizer = getattr(optimizer, "optimizer", optimizer)
    loader = trainer.get_train_dataloader()
    model = trainer.model
    try:
        result = range_test(model, optimizer, None, loader, **options)
    finally:
        if made:
            trainer.optimizer = None
    if figure is not None:
        result.plot(figure)
    if result.trustworthy:
        trainer.args.learning_rate = float(result.lr)
        if not made:
            for group in optimizer.param_groups:
                group["lr"] = float(result.lr)
        log.info("lrlab find_lr: learning_rate=%.4g (%s)", result.lr, result.reason)
    else:
        log.warning("lrlab find_lr: learning_rate left at %g: %s", trainer.args.learning_rate, result.problem)
    return result
