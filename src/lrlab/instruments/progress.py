"""Two rules on the loss of every step: a loss still falling steadily (the LR too small to
reach the flattening a well-set LR reaches) and a loss climbing away from its start (a run
diverging, seen before its loss is non-finite). Pure functions of plain numbers.

Both thresholds were set on runs of tasks the fault benchmark does not use, seeds 1000 and
1001, before it was run: digits-linear (SGD with momentum 0.9, 180 steps, warmup 20 then
cosine, LRs 0.01 to 10) and chars-lstm (hidden 64, 200 steps, warmup 30 then cosine; Adam at
3e-4, 3e-3, 3e-2, SGD with momentum at 0.3, 3, 30).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["RISE_FACTOR", "RISE_STEPS", "STEADY_BLOCK", "rising_far", "steady_fall"]

# Steady fall: three blocks of 20 steps, each mean below the one before, the last drop at least
# half the first (no flattening), the whole drop above three standard errors of a block mean.
# Adam at 3e-4 on chars-lstm (a tenth of the LR that trains it well) falls by 0.21, 0.24, 0.34
# nats per block at steps 20-100; the well-set runs flatten (digits-linear at 0.1: 0.39, 0.11,
# 0.06) but not always (chars-lstm at 3e-3 keeps falling), so the rule is only one half of the
# finding: the other is an update ratio below the usual 1e-3 (see the panel).
STEADY_BLOCK = 20
STEADY_SHARE = 0.5
STEADY_ERRORS = 3.0

# Rising far: the loss rose on each of the last 3 steps and stands above 1.5 times the run's
# first loss. No tuning run at its best LR or below (digits-linear to 1, chars-lstm to 3 with
# SGD, every Adam LR) climbed back above 0.99 times its first loss after step 10; digits-linear
# at 3 and 10 (10x and 33x its best) climbed to 2.8x and 3.9x and met the rule at steps 36 and
# 30; chars-lstm with SGD at 30 diverged (4x its first loss) at step 30 and met it at step 22.
RISE_STEPS = 3
RISE_FACTOR = 1.5


def steady_fall(window: Sequence[float] | np.ndarray) -> bool:
    """Whether the last ``3 * STEADY_BLOCK`` losses of ``window`` fall steadily: three block
    means in decreasing order, the last drop at least ``STEADY_SHARE`` of the first, the whole
    drop beyond ``STEADY_ERRORS`` standard errors of a block mean.

    >>> steady_fall([3.0 - 0.01 * t for t in range(60)])
    True
    >>> steady_fall([1.0 + 2.0 * math.exp(-t / 5) for t in range(60)])
    False
    """
    values = np.asarray(window, dtype=np.float64)[-3 * STEADY_BLOCK :]
    if values.size < 3 * STEADY_BLOCK or not np.isfinite(values).all():
        return False
    blocks = values.reshape(3, STEADY_BLOCK)
    means = blocks.mean(axis=1)
    first, last = means[0] - means[1], means[1] - means[2]
    error = float(blocks.std(axis=1).mean()) / math.sqrt(STEADY_BLOCK)
    return bool(first > 0 and last >= STEADY_SHARE * first and means[0] - means[2] > STEADY_ERRORS * error)


def rising_far(recent: Sequence[float], start: float) -> bool:
    """Whether the last ``RISE_STEPS + 1`` losses in ``recent`` rise step over step to above
    ``RISE_FACTOR`` times ``start`` (the run's first loss).

    >>> rising_far([2.3, 2.6, 3.1, 3.9], 2.3)
    True
    >>> rising_far([2.3, 2.6, 2.5, 3.9], 2.3)
    False
    """
    if len(recent) < RISE_STEPS + 1 or not (math.isfinite(start) and start > 0):
        return False
    tail = list(recent)[-(RISE_STEPS + 1) :]
    if not all(math.isfinite(v) for v in tail):
        return False
    rising = all(later > earlier for earlier, later in itertools.pairwise(tail))
    return rising and tail[-1] > RISE_FACTOR * start
