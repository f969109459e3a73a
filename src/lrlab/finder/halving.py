"""The article's search: start from a large LR and halve it until the loss behaves.

"A good initial LR can be estimated by training on a subset of the data: start from a large
learning rate and halve it successively until the loss behaves" (seed article 002). Each
trial trains from the *same* starting point (the state is restored between trials) for a
few passes over a small fixed subset of batches; the first LR whose per-pass loss falls
steadily (``lrlab.finder.suggest.decreases_steadily``, a pure rule) is the answer.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from lrlab.finder import suggest
from lrlab.finder._state import TrainingState, capture
from lrlab.finder.batches import BatchReader, check_reiterable
from lrlab.finder.stepper import Stepper, check_count

__all__ = ["HalvingResult", "halving_search"]


@dataclass(frozen=True)
class HalvingResult:
    """``lr``: the first LR whose trial decreased steadily (None if none did down to
    ``min_lr``); ``trials``: ``(lr, subset losses)`` in the order tried, the subset's loss
    before training and after each pass."""

    lr: float | None
    trials: list[tuple[float, list[float]]]
    seconds: float

    @property
    def reason(self) -> str:
        if self.lr is None:
            return f"no LR down to {self.trials[-1][0]:.3g} decreased steadily" if self.trials else "no trial"
        return (
            f"halving: {len(self.trials) - 1} halvings from {self.trials[0][0]:.3g}; "
            f"{self.lr:.3g} is the first whose subset loss fell pass after pass"
        )


def halving_search(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    train_loader: Iterable[Any],
    *,
    start_lr: float = 10.0,
    min_lr: float = 1e-6,
    factor: float = 0.5,
    subset_batches: int = 4,
    passes: int = 4,
    min_drop: float = 0.02,
    accumulation_steps: int = 1,
    amp: bool = False,
    progress: Callable[[float, list[float]], None] | None = None,
    reader: BatchReader | None = None,
) -> HalvingResult:
    """Halve the LR from ``start_lr`` until a short trial training decreases steadily.

    A trial trains ``passes`` passes over the first ``subset_batches`` optimizer steps' worth
    of batches of ``train_loader`` (kept in memory), from the state the model and optimizer
    had on entry; the subset's loss before training and after each pass (eval mode) feeds
    ``decreases_steadily``. The search stops
    at the first LR that passes or below ``min_lr``. ``progress(lr, pass_losses)`` is called
    after each trial. Model, optimizer and random generators are restored afterwards, as
    by ``find_lr``.
    """
    _check_search(start_lr, min_lr, factor, subset_batches, passes)
    check_reiterable(train_loader, "train_loader")
    stepper = Stepper(model, optimizer, loss_fn, accumulation_steps, amp, reader)
    saved = capture(model, optimizer, [train_loader])
    started = time.perf_counter()
    trials: list[tuple[float, list[float]]] = []
    try:
        subset = list(itertools.islice(iter(train_loader), subset_batches * accumulation_steps))
        if not subset:
            raise ValueError("train_loader yielded no batches")
        lrs = _halvings(start_lr, min_lr, factor)
        for lr in lrs:
            pass_losses = _trial_from(saved, stepper, lr, subset, passes)
            trials.append((lr, pass_losses))
            if progress is not None:
                progress(lr, pass_losses)
            if suggest.decreases_steadily(pass_losses, min_drop=min_drop):
                break
    finally:
        saved.restore()
    chosen = suggest.halving_pick(trials, min_drop=min_drop)
    return HalvingResult(lr=chosen, trials=trials, seconds=time.perf_counter() - started)


def _check_search(start_lr: float, min_lr: float, factor: float, subset_batches: int, passes: int) -> None:
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"start_lr must be a finite number > 0, got {start_lr}")
    if not (math.isfinite(min_lr) and 0 < min_lr <= start_lr):
        raise ValueError(f"min_lr must be > 0 and <= start_lr ({start_lr}), got {min_lr}")
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    check_count("subset_batches", subset_batches, 1)
    check_count("passes", passes, 1)
    if passes < 2:
        raise ValueError(f"passes must be >= 2 to see a trend, got {passes}")


def _halvings(start_lr: float, min_lr: float, factor: float) -> Iterator[float]:
    """``start_lr``, ``start_lr * factor``, ... down to ``min_lr`` (give or take rounding)."""
    lr = start_lr
    while lr >= min_lr * (1 - 1e-12):
        yield lr
        lr *= factor


def _trial_from(saved: TrainingState, stepper: Stepper, lr: float, subset: list[Any], passes: int) -> list[float]:
    """A trial at ``lr`` from the state the search started from."""
    saved.restore()
    stepper.model.train()
    stepper.set_lr(lr)
    return _trial(stepper, subset, passes, len(subset) // stepper.accumulation_steps or 1)


def _trial(stepper: Stepper, subset: list[Any], passes: int, steps_per_pass: int) -> list[float]:
    """The subset's loss before training and after each pass (eval mode, no gradients).

    Measured on the whole subset rather than averaged during the pass, so that an LR that
    first blows the loss up and then "recovers" from a huge value does not look steady.
    """
    losses = [stepper.evaluate(subset)]
    batches: Iterator[Any] = itertools.cycle(subset)
    for _ in range(passes):
        for _ in range(steps_per_pass):
            if not math.isfinite(stepper.step(batches)):
                # The trial blew up: the remaining passes count as NaN.
                return losses + [math.nan] * (passes + 1 - len(losses))
        losses.append(stepper.evaluate(subset))
        if not math.isfinite(losses[-1]):
            return losses + [math.nan] * (passes + 1 - len(losses))
    return losses
