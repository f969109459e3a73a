"""Lightning callbacks: :class:`Recorder` (a run into the lrlab store) and :class:`LRFinder`.

Example::

    import lightning as L
    from lrlab.lightning import LRFinder, Recorder

    trainer = L.Trainer(max_epochs=3, callbacks=[LRFinder(), Recorder(name="my-model", sweep="mine")])
    trainer.fit(model, train_loader, val_loader)

Importing this module imports Lightning (``pip install lightning``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lrlab.schedules.plateau import find_plateaus
from lrlab.store.sqlite import DEFAULT_DB, Store
from lrlab.torch import LRScheduler, group_momentum
from lrlab.track import Run

__all__ = ["LRFinder", "Recorder", "scheduler_config"]

log = logging.getLogger("lrlab.lightning")


def scheduler_config(scheduler: LRScheduler, *, monitor: str = "val_loss") -> dict[str, Any]:
    """The ``lr_scheduler`` entry for ``configure_optimizers`` that drives an lrlab
    :class:`~lrlab.torch.LRScheduler` as it expects.

    Without a ``plateau(...)`` node: stepped after every optimizer step
    (``{"scheduler": s, "interval": "step"}``). With one: stepped once per epoch with the
    metric the module logs as ``monitor`` (``"reduce_on_plateau": True``, ``"monitor"``,
    ``"interval": "epoch"``), as Lightning steps torch's ``ReduceLROnPlateau``; the
    schedule's steps then count epochs (``warmup(plateau(...), steps=2)`` warms up over two).

    Example::

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            scheduler = LRScheduler(optimizer, "plateau(lr=0.1, factor=0.5, patience=3)")
            return {"optimizer": optimizer, "lr_scheduler": scheduler_config(scheduler)}
    """
    if not isinstance(scheduler, LRScheduler):
        raise TypeError(f"scheduler must be an lrlab.torch.LRScheduler, got {type(scheduler).__name__}")
    if not find_plateaus(scheduler.schedule):
        return {"scheduler": scheduler, "interval": "step"}
    return {"scheduler": scheduler, "interval": "epoch", "frequency": 1, "reduce_on_plateau": True,
            "monitor": monitor}  # fmt: skip


def _group_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        return float(value.detach()) if value.numel() == 1 else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class Recorder(pl.Callback):
    """Stream a Lightning run into the lrlab store (see :func:`lrlab.track` for the options).

    Per optimizer step: every param group's LR, the momentum or beta1 and the gradient norm
    (read in ``on_before_optimizer_step``: after all accumulated micro-batches, before
    Lightning's ``gradient_clip_val`` clipping, so it is the norm the clipping acts on) and
    the training loss (kept a tensor until a batch of steps is read at once); per epoch the validation metrics logged
    with ``self.log`` (names starting ``val``; ``val_acc`` is also stored as ``val_accuracy``).
    """

    def __init__(self, name: str, *, db: str | Path | Store = DEFAULT_DB, **options: Any) -> None:
        self.name, self.db, self.options = name, db, options
        self.run: Run | None = None
        self._pending: tuple[list[float], float | None, tuple[torch.Tensor, ...]] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        same = [c for c in trainer.callbacks if isinstance(c, Recorder)]
        if len(same) > 1:
            raise RuntimeError(
                f"{len(same)} lrlab Recorder callbacks are attached to this Trainer: attach one (each would record the run again)"
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.optimizers:
            raise RuntimeError(
                "lrlab.lightning.Recorder needs an optimizer (configure_optimizers returned none)"
            )
        optimizer = trainer.optimizers[0]
        options = dict(self.options)
        options.setdefault("epochs", trainer.max_epochs if (trainer.max_epochs or 0) > 0 else None)
        total = trainer.estimated_stepping_batches
        if isinstance(total, int) or (isinstance(total, float) and total != float("inf")):
            options.setdefault("total_steps", int(total))
        options.setdefault("model", pl_module)  # the instruments' schedule-free evaluation check
        self.run = Run(optimizer, name=self.name, db=self.db, **options).begin()

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.run is None:
            return
        params = self.run.params
        grads = [p.grad for p in params if p.grad is not None]
        norms = tuple(torch._foreach_norm(grads)) if grads else ()
        self._pending = (_group_lrs(optimizer), group_momentum(optimizer.param_groups[0]), norms)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        if self.run is None or self._pending is None:
            return  # no optimizer step this batch (gradient accumulation)
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:
            return
        lrs, momentum, norms = self._pending
        self._pending = None
        self.run.record(loss, trainer.global_step, lrs, momentum, norms if norms else 0.0)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is None or trainer.sanity_checking:
            return
        metrics: dict[str, float] = {}
        for key, value in trainer.callback_metrics.items():
            number = _scalar(value)
            if number is None:
                continue
            if key.startswith("val") or key == "train_loss":
                metrics[key] = number
        if "val_acc" in metrics and "val_accuracy" not in metrics:
            metrics["val_accuracy"] = metrics["val_acc"]
        self.run.epoch(**metrics)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is not None:
            self.run.end()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.run is not None:
            self.run.end(error=f"{type(exception).__name__}: {exception}")


class _StepModule(torch.nn.Module):
    """The LightningModule's ``training_step`` as a model whose forward returns the loss."""

    def __init__(self, module: pl.LightningModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: Any) -> torch.Tensor:
        out = self.module.training_step(batch, 0)
        return out["loss"] if isinstance(out, Mapping) else out


class LRFinder(pl.Callback):
    """Run lrlab's range test (:func:`lrlab.find_lr`) at fit start and train with its LR.

    The test runs on the LightningModule's own ``training_step`` over the training loader
    (or ``train_loader``); the model, optimizer and random generators are restored
    afterwards (``find_lr`` leaves no trace), then every param group's LR is set to the
    recommendation (scaled by each group's ratio to the first). ``figure`` (a ``.png``,
    ``.svg`` or ``.html`` path) saves the curve; ``self.result`` keeps the
    :class:`lrlab.finder.result.FinderResult`, ``self.lr`` the LR set. Keyword options go to
    ``find_lr`` (``num_iter``, ``start_lr``, ``end_lr``, ``confirm``...). An untrustworthy
    curve leaves the LR as it was and logs why.
    """

    def __init__(self, *, figure: str | Path | None = None, train_loader: Iterable[Any] | None = None,
                 on_result: Callable[[Any], None] | None = None, **find_lr_options: Any) -> None:  # fmt: skip
        self.figure = None if figure is None else Path(figure)
        self.train_loader = train_loader
        self.on_result = on_result
        self.options = find_lr_options
        self.result: Any = None
        self.lr: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lrlab.finder import find_lr

        optimizer = trainer.optimizers[0]
        loader = self.train_loader
        if loader is None:
            source = trainer.fit_loop._data_source
            loader = source.dataloader() if source.is_defined() else None
        if loader is None:
            raise RuntimeError("lrlab.lightning.LRFinder needs a training loader: pass train_loader=...")
        log_fn = pl_module.log
        pl_module.log = lambda *a, **k: None  # type: ignore[method-assign]  # self.log outside a loop
        try:
            self.result = find_lr(_StepModule(pl_module), optimizer, None, loader,
                                  batch_fn=lambda b: ({"batch": b}, None), **self.options)  # fmt: skip
        finally:
            pl_module.log = log_fn  # type: ignore[method-assign]
        result = self.result
        if self.figure is not None:
            result.plot(self.figure)
        if self.on_result is not None:
            self.on_result(result)
        if not result.trustworthy:
            log.warning("lrlab LRFinder: the LR is left as it was: %s", result.problem)
            return
        base = float(optimizer.param_groups[0]["lr"]) or 1.0
        for group in optimizer.param_groups:
            ratio = float(group["lr"]) / base if base else 1.0
            _set_lr(group, result.lr * ratio)
            if "initial_lr" in group:
                group["initial_lr"] = result.lr * ratio
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.lr = result.lr
        log.info("lrlab LRFinder: lr=%.4g (%s)%s", result.lr, result.reason,
                 f"; figure {self.figure}" if self.figure else "")  # fmt: skip


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr
