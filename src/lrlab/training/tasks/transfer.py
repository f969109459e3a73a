"""Transfer learning offline: a digits CNN pre-trained on digits 0-4, fine-tuned on 5-9.

The backbone is ``digits-cnn``'s (two 3x3 convolutions, a 2x2 max-pool), trained on the
digits 0-4 of the fixed training split. Fine-tuning sees only ``shots`` examples of each
of the digits 5-9 and is validated on every 5-9 digit of the validation split. The model's
top-level children are three layer groups, input side first: ``conv1``, ``conv2`` (the
pretrained backbone) and ``head`` (new, 5-way, labels ``digit - 5``), so rules such as
``{"head.*": 10.0}``, ``freeze = ["conv*"]``, layer decay and gradual unfreezing apply
directly.

The pre-trained weights are deterministic given ``pretrain_seed``; they are computed
once per process (a second or two on a CPU) and, with ``cache_dir``, saved there.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrlab.torch_utils import torch_threads
from lrlab.training.tasks._base import Task, TensorPairs
from lrlab.training.tasks.digits import load_digits_split

__all__ = ["TransferCNN", "TransferTask", "digits_transfer", "pretrained_backbone"]

_SOURCE_CLASSES = (0, 1, 2, 3, 4)
_TARGET_CLASSES = (5, 6, 7, 8, 9)


class TransferCNN(nn.Module):
    """digits-cnn split into layer groups: ``conv1``, ``conv2`` and a ``head``."""

    def __init__(self, channels: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(2 * channels * 16, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv2(self.conv1(x.view(-1, 1, 8, 8))).flatten(1))

    def backbone_state(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items() if not k.startswith("head.")}


def _subset(data: TensorPairs, classes: tuple[int, ...], per_class: int | None = None) -> TensorPairs:
    """The examples of ``classes`` (the first ``per_class`` of each), labels renumbered 0.."""
    keep = []
    for label in classes:
        index = torch.nonzero(data.targets == label).flatten()
        keep.append(index if per_class is None else index[:per_class])
    index = torch.sort(torch.cat(keep)).values
    return TensorPairs(data.inputs[index], data.targets[index] - min(classes))


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@lru_cache(maxsize=8)
def _pretrain(seed: int, channels: int, epochs: int) -> tuple[dict[str, Tensor], float]:
    train, val = load_digits_split()
    train, val = _subset(train, _SOURCE_CLASSES), _subset(val, _SOURCE_CLASSES)
    # One thread: this small network trains ~10x faster than with contended threads.
    with torch_threads(1):
        return _train_backbone(train, val, seed, channels, epochs)


def _train_backbone(
    train: TensorPairs, val: TensorPairs, seed: int, channels: int, epochs: int
) -> tuple[dict[str, Tensor], float]:
    # fork_rng: pretraining on first use must not change what the caller's seed gives.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TransferCNN(channels)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        order = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for batch in torch.randperm(len(train), generator=order).split(32):
                optimizer.zero_grad()
                F.cross_entropy(model(train.inputs[batch]), train.targets[batch]).backward()
                optimizer.step()
        with torch.no_grad():
            accuracy = float((model(val.inputs).argmax(1) == val.targets).float().mean())
    return model.backbone_state(), accuracy


def pretrained_backbone(
    seed: int = 0, channels: int = 16, epochs: int = 8, cache_dir: str | Path | None = None
) -> tuple[dict[str, Tensor], float]:
    """``(state_dict of conv1 and conv2, validation accuracy on digits 0-4)`` of the CNN
    pre-trained on digits 0-4 (SGD, momentum 0.9, LR 0.05, batch 32, ``epochs`` epochs).

    Memoised per process; with ``cache_dir`` it is also read from / written to
    ``<cache_dir>/digits-transfer-s<seed>-c<channels>-e<epochs>.pt``.
    """
    seed = _check_int("pretrain_seed", seed, 0)
    channels = _check_int("channels", channels, 1)
    epochs = _check_int("pretrain_epochs", epochs, 1)
    if cache_dir is None:
        return _pretrain(seed, channels, epochs)
    path = Path(cache_dir) / f"digits-transfer-s{seed}-c{channels}-e{epochs}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return saved["state"], float(saved["accuracy"])
    state, accuracy = _pretrain(seed, channels, epochs)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so parallel runs never read half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save({"state": state, "accuracy": accuracy}, tmp)
    os.replace(tmp, path)
    return state, accuracy


class TransferTask(Task):
    """A :class:`Task` whose models start from the pre-trained backbone."""

    def make_model(self, seed: int) -> nn.Module:
        """The pre-trained ``conv1``/``conv2`` and a fresh ``head`` initialised by ``seed``."""
        state, _ = pretrained_backbone(
            self.options["pretrain_seed"],
            self.options["channels"],
            self.options["pretrain_epochs"],
            self.options["cache_dir"],
        )
        torch.manual_seed(seed)
        model = TransferCNN(self.options["channels"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("head.") for k in missing):
            raise RuntimeError(
                f"pretrained backbone does not fit: missing {missing}, unexpected {unexpected}"
            )
        return model


def digits_transfer(
    shots: int = 20,
    channels: int = 16,
    pretrain_seed: int = 0,
    pretrain_epochs: int = 8,
    cache_dir: str | None = None,
    pretrained: bool = True,
) -> Task:
    """Fine-tune on digits 5-9 with ``shots`` training examples per class.

    ``pretrained=False`` gives the same network from random weights (the from-scratch
    baseline).
    """
    shots = _check_int("shots", shots, 1)
    channels = _check_int("channels", channels, 1)
    _check_int("pretrain_seed", pretrain_seed, 0)
    _check_int("pretrain_epochs", pretrain_epochs, 1)
    if not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be true or false, got {pretrained!r}")
    train, val = load_digits_split()
    train, val = _subset(train, _TARGET_CLASSES, shots), _subset(val, _TARGET_CLASSES)
    options = {"shots": shots, "channels": channels, "pretrain_seed": pretrain_seed,
               "pretrain_epochs": pretrain_epochs, "cache_dir": cache_dir, "pretrained": pretrained}  # fmt: skip
    if not pretrained:
        return Task(
            "digits-transfer", "classification", 20, 20, lambda: TransferCNN(channels), train, val, options
        )
    return TransferTask(
        "digits-transfer", "classification", 20, 20, lambda: TransferCNN(channels), train, val, options
    )
