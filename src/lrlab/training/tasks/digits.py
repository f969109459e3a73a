"""Handwritten digits (scikit-learn's 8x8 images, 1797 of them): linear, MLP and CNN.

``digits-linear`` is a single-layer softmax network, the setting of the article's MNIST
curves. The split is fixed (80 % train, 20 % validation, permutation with seed 0).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from lrlab.training.tasks._base import Task, TensorPairs

__all__ = ["digits_cnn", "digits_linear", "digits_mlp", "load_digits_split"]

_VAL_FRACTION = 0.2


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def load_digits_split(
    train_size: int | None = None, val_size: int | None = None
) -> tuple[TensorPairs, TensorPairs]:
    """The fixed train/validation split, optionally cut to the first ``train_size`` /
    ``val_size`` examples (to make tiny runs). Inputs are flat 64-vectors in [0, 1]."""
    x, y = _digits()
    order = np.random.default_rng(0).permutation(len(x))
    n_val = round(len(x) * _VAL_FRACTION)
    val_idx, train_idx = order[:n_val], order[n_val:]
    train_idx = train_idx[: _size("train_size", train_size, len(train_idx))]
    val_idx = val_idx[: _size("val_size", val_size, len(val_idx))]
    return (
        TensorPairs(torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx])),
        TensorPairs(torch.from_numpy(x[val_idx]), torch.from_numpy(y[val_idx])),
    )


def _size(name: str, value: int | None, available: int) -> int:
    if value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return min(value, available)


def digits_linear(train_size: int | None = None, val_size: int | None = None) -> Task:
    """Softmax regression: one linear layer, 64 pixels -> 10 classes."""
    train, val = load_digits_split(train_size, val_size)
    return Task("digits-linear", "classification", 10, 64, lambda: nn.Linear(64, 10), train, val,
                {"train_size": train_size, "val_size": val_size})  # fmt: skip


def digits_mlp(train_size: int | None = None, val_size: int | None = None, hidden: int = 256) -> Task:
    """Two hidden ReLU layers of ``hidden`` units."""
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
    train, val = load_digits_split(train_size, val_size)

    def model() -> nn.Module:
        return nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )

    return Task("digits-mlp", "classification", 20, 64, model, train, val,
                {"train_size": train_size, "val_size": val_size, "hidden": hidden})  # fmt: skip


class _DigitsCNN(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(2 * channels * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


def digits_cnn(train_size: int | None = None, val_size: int | None = None, channels: int = 16) -> Task:
    """Two 3x3 convolutions, a 2x2 max-pool and a linear head."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    train, val = load_digits_split(train_size, val_size)
    return Task("digits-cnn", "classification", 10, 64, lambda: _DigitsCNN(channels), train, val,
                {"train_size": train_size, "val_size": val_size, "channels": channels})  # fmt: skip
