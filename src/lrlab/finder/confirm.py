"""A short confirmation: train a few candidate LRs briefly, keep the best on held-back batches.

Every candidate starts from the same state (the caller's model and optimizer, restored in
between) and trains ``steps`` optimizer steps at its constant LR on the *same* batches; its
score is the mean loss, in eval mode, on batches it did not train on (the first
``eval_batches`` batches of ``val_loader`` when one is given, else the first batches of
``train_loader``, held back from the candidates' training). A candidate whose loss stops
being finite scores +inf. The lowest score wins (``suggest.confirm_pick``, a pure rule).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lrlab.finder import suggest
from lrlab.finder._state import capture
from lrlab.finder.batches import BatchReader, check_reiterable
from lrlab.finder.stepper import Stepper, check_count
from lrlab.torch_utils import cycle

__all__ = ["ConfirmResult", "confirm_lrs"]


@dataclass(frozen=True)
class ConfirmResult:
    """``lrs`` tried (in order); ``losses[i][j]``: held-back loss of ``lrs[i]`` after
    ``checkpoints[j]`` steps (+inf once it blew up); ``lr``: the winner at the last
    checkpoint (None when every candidate blew up)."""

    lrs: list[float]
    checkpoints: list[int]
    losses: list[list[float]]
    lr: float | None
    seconds: float
    steps_trained: int


def confirm_lrs(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    train_loader: Iterable[Any],
    lrs: Sequence[float],
    *,
    steps: int = 20,
    checkpoints: Sequence[int] | None = None,
    eval_batches: int = 4,
    val_loader: Iterable[Any] | None = None,
    accumulation_steps: int = 1,
    amp: bool = False,
    reader: BatchReader | None = None,
) -> ConfirmResult:
    """Train each of ``lrs`` for ``steps`` steps from the caller's state; score each on
    held-back batches after every step count in ``checkpoints`` (default: ``steps`` only).
    Model, optimizer and random generators are restored afterwards, as by ``find_lr``."""
    check_count("confirm steps", steps, 1)
    check_count("eval_batches", eval_batches, 1)
    marks = _checkpoints(checkpoints, steps)
    candidates = [float(lr) for lr in lrs]
    if not candidates or not all(math.isfinite(lr) and lr > 0 for lr in candidates):
        raise ValueError(f"candidate LRs must be finite and > 0, got {candidates!r}")
    check_reiterable(train_loader, "train_loader")
    check_reiterable(val_loader, "val_loader")
    stepper = Stepper(model, optimizer, loss_fn, accumulation_steps, amp, reader)
    loaders = [train_loader] + ([val_loader] if val_loader is not None else [])
    saved = capture(model, optimizer, loaders)
    started = time.perf_counter()
    losses: list[list[float]] = []
    try:
        held, train_batches = _batches(train_loader, val_loader, eval_batches, steps * accumulation_steps)
        for lr in candidates:
            saved.restore()
            model.train()
            stepper.set_lr(lr)
            losses.append(_train(stepper, train_batches, held, marks))
    finally:
        saved.restore()
    chosen = suggest.confirm_pick(candidates, [row[-1] for row in losses])
    return ConfirmResult(
        lrs=candidates,
        checkpoints=marks,
        losses=losses,
        lr=chosen,
        seconds=time.perf_counter() - started,
        steps_trained=steps * len(candidates),
    )


def _checkpoints(checkpoints: Sequence[int] | None, steps: int) -> list[int]:
    """The step counts to score at, ascending, the last one ``steps``."""
    marks = sorted({int(c) for c in (checkpoints or [steps])})
    if not marks or marks[0] < 1 or marks[-1] != steps:
        raise ValueError(f"checkpoints must be step counts from 1 up to steps ({steps}), got {checkpoints!r}")
    return marks


def _batches(
    train_loader: Iterable[Any], val_loader: Iterable[Any] | None, eval_batches: int, count: int
) -> tuple[list[Any], list[Any]]:
    """The held-back batches and the ``count`` training batches, read once and kept."""
    source: Iterator[Any] = cycle(train_loader)
    if val_loader is not None:
        held = list(itertools.islice(iter(val_loader), eval_batches))
        if not held:
            raise ValueError("val_loader yielded no batches")
    else:
        held = list(itertools.islice(source, eval_batches))
    return held, list(itertools.islice(source, count))


def _train(stepper: Stepper, batches: list[Any], held: list[Any], marks: list[int]) -> list[float]:
    out: list[float] = []
    feed = iter(batches)
    done = 0
    for mark in marks:
        while done < mark:
            if not math.isfinite(stepper.step(feed)):
                return out + [math.inf] * (len(marks) - len(out))
            done += 1
        value = stepper.evaluate(held)
        if not math.isfinite(value):
            return out + [math.inf] * (len(marks) - len(out))
        out.append(value)
    return out
