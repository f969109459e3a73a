"""The one bias-corrected exponential moving average, for the range test's loss curve (the
finder) and the per-step lines of the report.

After ``k`` finite points ``x_1..x_k`` the average is ``a_k = decay * a_(k-1) + (1 - decay) * x_k``
(``a_0 = 0``) and the smoothed value ``a_k / (1 - decay**k)`` (the bias correction of Adam
and fastai, so the first point is itself, not pulled towards 0). A point that is NaN or
infinite is never averaged in; what is shown there is a choice, ``nonfinite``:

- ``"carry"``: the previous smoothed value is carried forward (NaN before the first finite
  point): a skipped batch does not break the finder's curve.
- ``"keep"``: the point is kept as it is: a figure shows the gap or the blow-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["NONFINITE_POLICIES", "bias_corrected_ema", "ema"]

NONFINITE_POLICIES = ("carry", "keep")


def bias_corrected_ema(
    values: Sequence[float] | np.ndarray, decay: float, *, nonfinite: Literal["carry", "keep"]
) -> np.ndarray:
    """The bias-corrected EMA of ``values``; ``decay`` in [0, 1) is the weight of the old
    average (0: no smoothing), ``nonfinite`` what a NaN or infinite point shows.

    >>> bias_corrected_ema([4.0, 2.0, float("nan"), 2.0], 0.5, nonfinite="carry").round(3).tolist()
    [4.0, 2.667, 2.667, 2.286]
    >>> bias_corrected_ema([4.0, 2.0, float("inf"), 2.0], 0.5, nonfinite="keep").round(3).tolist()
    [4.0, 2.667, inf, 2.286]
    >>> bias_corrected_ema([float("nan"), 1.0], 0.9, nonfinite="carry").tolist()
    [nan, 1.0]
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    keep = nonfinite == "keep"
    y = np.asarray(values, dtype=np.float64)
    out = np.empty(len(y), dtype=np.float64)
    average, count, last = 0.0, 0, np.nan
    for i, value in enumerate(y):
        if np.isfinite(value):
            count += 1
            average = decay * average + (1.0 - decay) * value
            last = average / (1.0 - decay**count)
            out[i] = last
        else:
            out[i] = value if keep else last
    return out


def ema(values: Sequence[float] | np.ndarray, span: float, *, log: bool = False) -> np.ndarray:
    """The report's smoothing: :func:`bias_corrected_ema` with weight ``2 / (span + 1)`` on the
    newest point (``span`` >= 1; less counts as 1, no smoothing) and non-finite points kept
    as they are; ``log=True`` averages ``log(values)`` (a geometric mean, for a log axis;
    values <= 0 count as not finite and are kept as they are).

    >>> ema(np.array([1.0, 3.0, np.nan, 3.0]), 1.0).tolist()
    [1.0, 3.0, nan, 3.0]
    >>> ema(np.array([1.0, 3.0]), 3.0).round(3).tolist()
    [1.0, 2.333]
    >>> ema(np.array([1.0, 100.0, -1.0]), 3.0, log=True).round(3).tolist()
    [1.0, 21.544, -1.0]
    """
    y = np.asarray(values, dtype=np.float64)
    decay = 1.0 - 2.0 / (max(1.0, float(span)) + 1.0)
    if not log:
        return bias_corrected_ema(y, decay, nonfinite="keep")
    positive = y > 0
    smoothed = bias_corrected_ema(np.log(np.where(positive, y, np.nan)), decay, nonfinite="keep")
    return np.where(positive & np.isfinite(y), np.exp(smoothed), y)
