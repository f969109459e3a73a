"""How the finder turns one batch of a user's loader into a loss: any batch shape.

A batch may be an ``(inputs, targets)`` pair, an ``(inputs, targets, *extra)`` tuple (the
extras are ignored), a dict (the Hugging Face style, ``{"input_ids": ..., "labels": ...}``)
read by key names, or anything a ``batch_fn(batch) -> (inputs, targets)`` understands. With
``loss_fn=None`` the model computes its own loss: ``model(**batch)`` for a dict (or
``model(inputs)`` otherwise) returns a scalar tensor, an object with ``.loss`` (a Hugging
Face ``ModelOutput``) or a mapping with a ``"loss"`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lrlab.torch_utils import to_device

__all__ = ["BatchReader", "check_reiterable"]

Keys = str | Sequence[str] | None


def check_reiterable(loader: Any, name: str) -> None:
    """Refuse a one-shot iterator (a generator, ``iter(loader)``): the finder reads its
    loader more than once, and restoring it afterwards needs a loader it did not consume."""
    if loader is None:
        return
    if isinstance(loader, (str, bytes)) or not isinstance(loader, Iterable):
        raise ValueError(f"{name} must be an iterable of batches (a DataLoader, a list), got {type(loader).__name__}")
    # An Iterator has __next__: iterating it again yields nothing new. (Not iter(loader): a
    # DataLoader's iter() draws a seed from its generator.)
    if isinstance(loader, Iterator):
        raise ValueError(
            f"{name} is a one-shot iterator ({type(loader).__name__}): the finder reads it more than once; "
            "pass a DataLoader, a list of batches or another re-iterable instead"
        )


def _pick(batch: Mapping[str, Any], keys: str | Sequence[str], role: str) -> Any:
    names = [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in names if k not in batch]
    if missing:
        raise ValueError(
            f"{role}={keys!r}: the batch has no key {missing[0]!r} (its keys: {', '.join(map(str, batch))})"
        )
    return batch[names[0]] if isinstance(keys, str) else {k: batch[k] for k in names}


def _call(model: torch.nn.Module, inputs: Any) -> Any:
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


def _loss_of(output: Any) -> torch.Tensor:
    loss = output
    if not isinstance(output, torch.Tensor):
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            "with loss_fn=None the model must return its loss: a scalar tensor, an object with .loss "
            f"or a mapping with 'loss'; it returned {type(output).__name__}"
            + (" without a loss (are the labels in the batch?)" if loss is None else "")
        )
    return loss.reshape(())


@dataclass(frozen=True)
class BatchReader:
    """Turns a batch into ``(loss, size)``; ``size`` weighs a batch in a mean over batches.

    ``inputs`` / ``targets`` name the keys of a dict batch (``targets`` may be None when the
    model computes its loss); ``batch_fn`` splits any batch itself.
    """

    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    batch_fn: Callable[[Any], tuple[Any, Any]] | None = None
    inputs: Keys = None
    targets: Keys = None

    def __post_init__(self) -> None:
        if self.batch_fn is not None and (self.inputs is not None or self.targets is not None):
            raise ValueError("give either batch_fn or inputs=/targets= key names, not both")
        if self.batch_fn is not None and not callable(self.batch_fn):
            raise ValueError(f"batch_fn must be callable, got {type(self.batch_fn).__name__}")
        if self.loss_fn is not None and not callable(self.loss_fn):
            raise ValueError(f"loss_fn must be callable or None, got {type(self.loss_fn).__name__}")
        if self.loss_fn is not None and self.inputs is not None and self.targets is None:
            raise ValueError("inputs= without targets=: a loss_fn needs the targets' key (or pass loss_fn=None)")

    def split(self, batch: Any) -> tuple[Any, Any]:
        """``(inputs, targets)`` of ``batch`` (targets None when the model computes the loss)."""
        if self.batch_fn is not None:
            parts = self.batch_fn(batch)
            if not (isinstance(parts, (tuple, list)) and len(parts) == 2):
                raise ValueError(
                    f"batch_fn must return an (inputs, targets) pair, it returned {type(parts).__name__}"
                )
            return parts[0], parts[1]
        if isinstance(batch, Mapping):
            if self.inputs is not None:
                targets = None if self.targets is None else _pick(batch, self.targets, "targets")
                return _pick(batch, self.inputs, "inputs"), targets
            if self.loss_fn is None:
                return batch, None
            raise ValueError(
                f"a dict batch (keys: {', '.join(map(str, batch))}) needs inputs= and targets= key names, "
                "a batch_fn, or loss_fn=None with a model whose forward returns the loss"
            )
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return batch[0], batch[1]
        if self.loss_fn is None and isinstance(batch, torch.Tensor):
            return batch, None
        raise ValueError(
            f"a batch must be an (inputs, targets, *extra) tuple or a dict, got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            + "; pass batch_fn=... to split it"
        )

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, float]:
        inputs, targets = self.split(batch)
        inputs = to_device(inputs, device)
        output = _call(model, inputs)
        if self.loss_fn is None:
            return _loss_of(output), _size(inputs if targets is None else targets)
        if targets is None:
            raise ValueError("the batch has no targets for loss_fn; name them with targets=... or pass batch_fn")
        targets = to_device(targets, device)
        return self.loss_fn(output, targets), _size(targets)


def _size(obj: Any) -> float:
    if isinstance(obj, torch.Tensor):
        return float(obj.shape[0]) if obj.ndim else 1.0
    if isinstance(obj, Mapping):
        for value in obj.values():
            return _size(value)
    if isinstance(obj, (tuple, list)) and obj:
        return _size(obj[0])
    return 1.0
