"""Downsampling of long step series that keeps spikes and the divergence point.

A run of 10^4 steps drawn as 10^4 points per trace makes a 100-run page far too heavy;
an even stride would hide exactly what a reader looks for (a loss spike, the step where
training blew up). :func:`downsample_indices` keeps, per bucket of consecutive points,
the minimum and the maximum, plus the first and last point, the first non-finite point
and any index the caller insists on.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_MAX_POINTS = 800


def downsample_indices(
    values: np.ndarray, max_points: int = DEFAULT_MAX_POINTS, keep: Iterable[int] = ()
) -> np.ndarray:
    """Indices (sorted, unique) of the points of ``values`` worth drawing.

    Every point is kept when there are at most ``max_points``. Otherwise the series is
    cut into equal buckets and each bucket contributes the index of its smallest and its
    largest finite value; the first point, the last point, the first non-finite point
    (where a run diverged) and every index in ``keep`` are always kept. The result never
    has more than ``max_points`` indices unless ``keep`` itself asks for more.

    >>> y = np.zeros(1000); y[517] = 9.0
    >>> idx = downsample_indices(y, max_points=20)
    >>> len(idx) <= 20, 517 in idx, int(idx[0]), int(idx[-1])
    (True, True, 0, 999)
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {y.shape}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 8:
        raise ValueError(f"max_points must be a whole number >= 8, got {max_points!r}")
    n = len(y)
    forced = {int(i) for i in keep}
    bad = [i for i in forced if not 0 <= i < n]
    if bad:
        raise ValueError(f"keep holds indices outside 0..{n - 1}: {sorted(bad)[:5]}")
    if n <= max_points:
        return np.arange(n)
    finite = np.isfinite(y)
    forced |= {0, n - 1}
    if not finite.all():
        forced.add(int(np.argmin(finite)))
    buckets = max(1, (max_points - len(forced)) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    window = _bucket_windows(edges)
    inside = window < edges[1:, None]  # buckets differ in length by at most one point
    window = np.minimum(window, n - 1)
    values = y[window]
    usable = inside & finite[window]
    # +inf/-inf sentinels make non-finite points (and the padding) lose both contests.
    rows = np.arange(buckets)
    mins = window[rows, np.argmin(np.where(usable, values, np.inf), axis=1)]
    maxs = window[rows, np.argmax(np.where(usable, values, -np.inf), axis=1)]
    has_finite = usable.any(axis=1)
    chosen = np.concatenate([mins[has_finite], maxs[has_finite], np.fromiter(forced, dtype=np.int64)])
    return sorted_unique(chosen)


def sorted_unique(indices: np.ndarray) -> np.ndarray:
    """``np.unique`` of a small integer array, by a sort (several times faster than numpy's
    hash-based unique at a few hundred elements)."""
    out = np.sort(indices)
    return out[np.concatenate(([True], out[1:] != out[:-1]))] if len(out) else out


def _bucket_windows(edges: np.ndarray) -> np.ndarray:
    """A (buckets, longest bucket) matrix of indices: row i starts at ``edges[i]``; entries at
    or past ``edges[i + 1]`` belong to the next bucket and are masked by the caller. One
    gather and one arg-reduction along rows pick every bucket's extreme at once (argmin and
    argmax return the first of equal extremes)."""
    width = int(np.diff(edges).max())
    return edges[:-1, None] + np.arange(width)[None, :]


def downsample(
    x: np.ndarray, y: np.ndarray, max_points: int = DEFAULT_MAX_POINTS, keep: Iterable[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` reduced to the indices chosen by :func:`downsample_indices` on ``y``."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    idx = downsample_indices(y, max_points=max_points, keep=keep)
    return x[idx], y[idx]
