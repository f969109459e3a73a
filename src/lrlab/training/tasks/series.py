"""Forecasting a real series with a recurrent network: yearly sunspot numbers, LSTM or GRU.

The series is statsmodels' bundled yearly sunspot activity (1700-2008, 309 values: offline,
always the same). The split is chronological: the last ``VAL_FRACTION`` of the years is the
validation span, the years before it the training span. The series is standardised with the
mean and standard deviation of the training span only, so nothing of the validation span
leaks into training. An example is a window of ``window`` consecutive years (the input) and
the ``horizon`` years that follow it (the target): a training example's target lies wholly in
the training span; a validation example's target lies in the validation span, and its input
may reach back into the training span (those years are known when forecasting).

Regression: the objective is the validation mean squared error on the standardised series
(``val_loss``; multiply by ``SeriesSplit.std ** 2`` for squared sunspot numbers), with the
mean absolute error (``val_mae``) and R² beside it. :func:`sunspots_split` gives the split as
plain arrays, for classical baselines on the very same targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import nn

from lrlab.training.tasks._base import Task, TensorPairs

__all__ = ["CELLS", "VAL_FRACTION", "SeriesSplit", "load_sunspots", "sunspots", "sunspots_gru", "sunspots_lstm",
           "sunspots_split"]  # fmt: skip

VAL_FRACTION = 0.2  # the last 62 of 309 years (1947-2008): more than five solar cycles
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
_DEFAULT_EPOCHS = 40
_DEFAULT_BATCH = 32


@lru_cache(maxsize=1)
def load_sunspots() -> tuple[np.ndarray, np.ndarray]:
    """``(years, values)``: statsmodels' yearly sunspot numbers, 1700-2008, float64 (statsmodels
    is the ``series`` extra: without it, one ``ValueError`` saying how to install it)."""
    try:
        from statsmodels.datasets import sunspots as dataset
    except ImportError as exc:
        raise ValueError(
            f"the sunspot series ships with statsmodels: pip install 'lrlab[series]' ({exc})"
        ) from None

    frame = dataset.load_pandas().data
    return frame["YEAR"].to_numpy(dtype=np.float64), frame["SUNACTIVITY"].to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class SeriesSplit:
    """A chronological split of a series into windows, standardised with training statistics.

    ``train_inputs``/``val_inputs`` are ``(examples, window)`` and the targets
    ``(examples, horizon)``, all standardised; ``val_origin[i]`` is the index in ``values`` of
    validation example ``i``'s first target year. ``train_end`` is the first index of the
    validation span; ``mean`` and ``std`` are the training span's.
    """

    years: np.ndarray
    values: np.ndarray
    train_end: int
    window: int
    horizon: int
    mean: float
    std: float
    train_inputs: np.ndarray
    train_targets: np.ndarray
    val_inputs: np.ndarray
    val_targets: np.ndarray
    val_origin: np.ndarray

    def standardise(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def restore(self, standardised: np.ndarray) -> np.ndarray:
        """Standardised numbers back in the series' own units."""
        return np.asarray(standardised, dtype=np.float64) * self.std + self.mean


def _windows(z: np.ndarray, origins: range, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    inputs = np.stack([z[t - window : t] for t in origins])
    targets = np.stack([z[t : t + horizon] for t in origins])
    return inputs, targets


def _positive(name: str, value: object, at_most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if at_most is not None and value > at_most:
        raise ValueError(f"{name} must be at most {at_most} for the sunspot series, got {value}")
    return value


def sunspots_split(window: int = 24, horizon: int = 1) -> SeriesSplit:
    """The sunspot series cut into ``window``-year inputs and ``horizon``-year targets (see
    the module doc); the same split whatever the model, so baselines compare on the very
    same validation targets.

    >>> split = sunspots_split(window=24, horizon=1)
    >>> split.train_inputs.shape, split.val_targets.shape, int(split.years[split.train_end])
    ((223, 24), (62, 1), 1947)
    """
    years, values = load_sunspots()
    train_end = len(values) - round(len(values) * VAL_FRACTION)
    horizon = _positive("horizon", horizon, at_most=len(values) - train_end)
    window = _positive("window", window, at_most=train_end - horizon - 1)
    mean, std = float(values[:train_end].mean()), float(values[:train_end].std())
    z = (values - mean) / std
    train_x, train_y = _windows(z, range(window, train_end - horizon + 1), window, horizon)
    origins = np.arange(train_end, len(values) - horizon + 1)
    val_x, val_y = _windows(z, range(train_end, len(values) - horizon + 1), window, horizon)
    return SeriesSplit(
        years, values, train_end, window, horizon, mean, std, train_x, train_y, val_x, val_y, origins
    )


class Forecaster(nn.Module):
    """A recurrent cell over the window (one input feature per year), then a linear head from
    the last hidden state to the ``horizon`` years ahead."""

    def __init__(self, cell: str, hidden: int, layers: int, horizon: int) -> None:
        super().__init__()
        self.rnn = CELLS[cell](input_size=1, hidden_size=hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(-1))
        return self.head(out[:, -1])


def sunspots(
    cell: Literal["lstm", "gru"] = "lstm",
    window: int = 24,
    horizon: int = 1,
    hidden: int = 32,
    layers: int = 1,
) -> Task:
    """Forecast the next ``horizon`` years of sunspot activity from the last ``window`` years
    with an LSTM or a GRU (``cell``) of ``layers`` layers of ``hidden`` units."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    hidden, layers = _positive("hidden", hidden), _positive("layers", layers, at_most=8)
    split = sunspots_split(window, horizon)

    def tensors(inputs: np.ndarray, targets: np.ndarray) -> TensorPairs:
        return TensorPairs(
            torch.tensor(inputs, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)
        )

    options = {"cell": cell, "window": window, "horizon": horizon, "hidden": hidden, "layers": layers}
    return Task(
        f"sunspots-{cell}", "regression", _DEFAULT_EPOCHS, _DEFAULT_BATCH,
        lambda: Forecaster(cell, hidden, layers, horizon),
        tensors(split.train_inputs, split.train_targets), tensors(split.val_inputs, split.val_targets),
        options, loss_unit="standardised",
    )  # fmt: skip


def sunspots_lstm(window: int = 24, horizon: int = 1, hidden: int = 32, layers: int = 1) -> Task:
    """``sunspots`` with an LSTM."""
    return sunspots("lstm", window, horizon, hidden, layers)


def sunspots_gru(window: int = 24, horizon: int = 1, hidden: int = 32, layers: int = 1) -> Task:
    """``sunspots`` with a GRU."""
    return sunspots("gru", window, horizon, hidden, layers)
