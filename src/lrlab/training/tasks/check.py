"""A task checked before anything trains or is stored: data that is there, and a model and a
loss that run on one batch.

``check_task`` reads one training batch and one validation batch, builds the model and runs
it forward and through the loss on that batch (no step, no backward; the global random
generators are put back). What a first run would die of deep inside torch (``Target 4 is out
of bounds``, ``mat1 and mat2 shapes cannot be multiplied``, ``num_samples should be a
positive integer value``, a loss that is not one number) is one ``ValueError`` here, naming
the task, the shapes and what to change.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lrlab.training.tasks._base import Task

__all__ = ["check_task", "first_line", "user_frame"]

_CHECK_BATCH = 16  # examples of the dry forward: the shapes are what is checked, not the numbers


def first_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` (just the type name for an empty message)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def user_frame(exc: BaseException) -> str:
    """`` (file.py line N)``: the innermost frame of the user's own code that raised (not
    lrlab's, the standard library's or an installed package's); ``""`` when there is none."""
    skip = [str(Path(__file__).resolve().parents[2])]
    skip += [sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")]
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<") and not any(f.filename.startswith(d) for d in skip)]  # fmt: skip
    return f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames else ""


def _shape(value: Any) -> str:
    if isinstance(value, Tensor):
        dims = ", ".join(str(d) for d in value.shape)
        kind = str(value.dtype).removeprefix("torch.")
        return f"({dims}{',' if value.ndim == 1 else ''}) {kind}"
    return type(value).__name__


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:  # an iterable dataset: no length to check
        return None


def check_task(task: Task, ref: str | None = None, batch_size: int | None = None) -> str | None:
    """``ValueError`` (one line naming the task, what is wrong and what to do) unless
    ``task``'s training and validation data each give a batch and its model's output on a
    training batch goes through its loss to one finite-shaped number with a gradient.

    A trainable function (``@lrlab.trainable``) has no batch to try: only its options are
    checked, and the one line returned says that it was not run.

    >>> from lrlab.training.tasks import get_task
    >>> check_task(get_task("digits-linear", train_size=32, val_size=16))
    """
    if getattr(task, "range_test", True) is False and callable(getattr(task, "check", None)):
        return str(task.check(ref))  # type: ignore[attr-defined]
    label = f"task {ref or task.name!r}"
    for role, data in (("training", task.train_data), ("validation", task.val_data)):
        if _length(data) == 0:
            raise ValueError(f"{label} has an empty {role} set: give it at least one example")
    size = min(batch_size or task.default_batch_size, _CHECK_BATCH)
    with torch.random.fork_rng(devices=[]):
        batch = _first_batch(label, "training", lambda: task.train_loader(size, 0))
        _first_batch(label, "validation", lambda: task.val_loader(size))
        try:
            model = task.make_model(0)
        except Exception as exc:
            raise ValueError(f"{label}: building its model raised {first_line(exc)}{user_frame(exc)}") from None
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"{label}: its model factory returned {type(model).__name__}, not a torch.nn.Module")
        inputs, targets = batch
        try:
            output = model(inputs)
        except Exception as exc:
            raise ValueError(
                f"{label}: the model fails on a batch of inputs {_shape(inputs)}: {first_line(exc)}{user_frame(exc)}; "
                "make the model's first layer take inputs of that shape"
            ) from None
        _check_fit(label, task, output, targets)
        try:
            loss = task.loss_fn(output, targets)
        except Exception as exc:
            raise ValueError(
                f"{label}: the loss fails on the model's output {_shape(output)} and targets {_shape(targets)}: "
                f"{first_line(exc)}{user_frame(exc)}"
            ) from None
        _check_loss(label, loss, model)
    return None


def _first_batch(label: str, role: str, loader: Any) -> tuple[Any, Any]:
    try:
        batch = next(iter(loader()))
    except StopIteration:
        raise ValueError(f"{label} has an empty {role} set (its loader gives no batch): give it at least one "
                         "example") from None  # fmt: skip
    except Exception as exc:
        raise ValueError(f"{label}: reading a {role} batch raised {first_line(exc)}{user_frame(exc)}") from None
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(
            f"{label}: a {role} batch must be an (inputs, targets) pair, got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, tuple | list) else "")
        )
    return batch[0], batch[1]


def _stock_loss(task: Task) -> bool:
    return task.custom_loss is None and type(task).loss_fn is Task.loss_fn


def _check_fit(label: str, task: Task, output: Any, targets: Any) -> None:
    """The model's output against the targets, for the kind's own loss: what torch would
    refuse with a traceback, or broadcast into a wrong number without a word."""
    if not _stock_loss(task) or not isinstance(output, Tensor) or not isinstance(targets, Tensor):
        return
    shapes = f"the model's output {_shape(output)} against targets {_shape(targets)}"
    if task.kind == "regression":
        if output.numel() != targets.numel():
            raise ValueError(
                f"{label}: {shapes}: a regression model gives one output per target value; make its last layer "
                f"give {tuple(targets.shape[1:]) or 1} output(s) per example, or kind='classification' with "
                "integer class labels"
            )
        return
    if targets.is_floating_point():
        if targets.shape == output.shape:
            return  # class probabilities (soft labels): cross-entropy takes them
        raise ValueError(
            f"{label}: {shapes}: float targets make a regression; use kind='regression' (one output per target "
            "value), or integer class labels (targets.long()) for a classification"
        )
    if targets.dtype == torch.bool or targets.is_complex():
        raise ValueError(f"{label}: {shapes}: targets must be integer class labels (torch.long)")
    if output.ndim < 1 or targets.numel() == 0:
        return
    classes = output.shape[-1] if task.kind == "language_model" else (output.shape[1] if output.ndim > 1 else 0)
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"{label}: {shapes}: the targets hold class {high if high >= classes else low} but the model gives "
            f"{classes} output(s) per example; a classification model gives one output per class (at least "
            f"{max(high + 1, 2)} here), and labels run from 0"
        )


def _check_loss(label: str, loss: Any, model: torch.nn.Module) -> None:
    if not isinstance(loss, Tensor):
        raise ValueError(
            f"{label}: the loss must be a torch tensor computed from the model's output, got {type(loss).__name__}"
        )
    if loss.numel() != 1:
        raise ValueError(
            f"{label}: the loss must be one number per batch (a mean), got a tensor of shape "
            f"{tuple(loss.shape)}: reduce it, e.g. with .mean()"
        )
    trainable = any(p.requires_grad for p in model.parameters())
    if trainable and not loss.requires_grad:
        raise ValueError(
            f"{label}: the loss has no gradient (it does not come from the model's output through torch "
            "operations: no .item(), float() or numpy on the way)"
        )
