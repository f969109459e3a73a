"""Warmup adequacy: a run without warmup whose first steps were its largest and whose loss then
stopped falling. Pure functions of plain numbers; the panel feeds them the update ratio of the
first measured steps against that of steps 50-100 and the losses of the last 60 steps.

Adam takes steps of about the LR per coordinate from its first update on, before its
second-moment estimate has seen enough gradients to scale them; a warmup keeps those first
steps small. A model that cannot absorb them (a post-norm transformer at its best LR: Xiong et
al. 2020, arXiv 2002.04745; Liu et al. 2019, arXiv 1908.03265) drops its loss fast for a few
steps, then stalls or climbs back while the LR is still high, and never recovers in the run.

The thresholds were set on runs of seeds 1000 and 1001 that the fault benchmark does not use,
each with a twin warmed up over 30 steps, before the benchmark's own runs were read (200 steps,
cosine or constant LR; chars-transformer with block 32 and batch 16 and chars-lstm with Adam,
digits-linear with Adam and SGD):

- needing warmup (the final validation loss 0.05 to 0.55 nats worse than the warmed twin's):
  post-norm with 4 layers, d_model 64 at 0.01 and 3 layers, d_model 32 at 0.03, both schedules,
  8 runs. The first 10 steps' median update ratio was 4.0 to 12 times that of steps 50-100, and
  the loss's mean over steps 80-100 stood above its mean over steps 40-60, by 0.4 to 4.2
  standard errors of a 20-step mean;
- not needing it (within 0.02 nats of the warmed twin, or better), 38 runs: post-norm 4x64 at
  3e-3 and 2x48 at 0.01, pre-norm 2x32 at 0.01 and 1x32 at 0.1, chars-lstm (hidden 128) at 0.01,
  digits-linear with Adam at 0.01 and 0.03 and SGD (momentum 0 and 0.9) at 0.1 to 3. Their ratio
  fell as much (1.9 to 46 times: Adam's first steps are about the LR per coordinate whatever the
  model, and a linear model's weights start near zero and read high), but their loss still fell
  over steps 40-100, by 1.2 to 15 standard errors.

So the ratio alone cannot tell the two apart (the rule this replaces, an early ratio above 0.1
and ten times the later one, found none of the 4 cosine runs that needed warmup and 10 of the 14
digits-linear runs that did not); the stalled loss does. The early steps the largest (3 times,
below the 4.0 of every run that needed warmup) says the start is what went wrong, and keeps the
rule off a run whose first steps were not oversized (chars-lstm under schedule-free's own 20-step
warmup, which the LR does not show, reads 1.8; digits-linear under it reads 6 to 25, and its
loss still falls).

Checked afterwards, thresholds unchanged, on seeds 1002-1007 of the same two post-norm runs
(cosine) and of three that do not need warmup (pre-norm 2x32, chars-lstm, post-norm 4x64 at
3e-3): it found 2 of the 12 that needed warmup (all 12 ended 0.18 to 0.67 nats worse than their
warmed twin) and none of the 18 that did not. The other 10 stuck near 3.12 nats, the loss of a
model that ignores the context (the characters' own frequencies), but crept down towards it over steps 40-100 (by 0.4 to 3.3
standard errors) instead of climbing back from below: a stall judged on those steps alone
misses them. Their update ratios read 4 to 22 times lower later, per unit of LR 3.1 to 15
times, against 1.8 to 2.9 for Adam's runs that did not need warmup (but 4 to 5 for pre-norm at
0.1, and 7 to 30 for digits-linear): a better rule would read the ratio per unit of LR; it is
not set here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lrlab.instruments.progress import STEADY_BLOCK

__all__ = ["STALL_BLOCK", "STALL_ERRORS", "WARMUP_FACTOR", "loss_stalled", "needs_warmup"]

WARMUP_FACTOR = 3.0  # the early median update ratio at least this many times the later one ...
STALL_BLOCK = STEADY_BLOCK  # ... and the loss's last three blocks of this many steps (20) ...
STALL_ERRORS = 0.5  # ... fell by no more than this many standard errors of a block mean


def loss_stalled(window: Sequence[float] | np.ndarray) -> bool:
    """Whether the loss stopped falling over the last ``3 * STALL_BLOCK`` values of ``window``:
    the mean of the last block no lower than the mean of the first minus ``STALL_ERRORS``
    standard errors of a block mean. False when there are fewer values or one is not finite
    (a diverging run is found by its own rule).

    >>> loss_stalled([2.9 + 0.05 * math.sin(t) for t in range(60)])
    True
    >>> loss_stalled([3.0 - 0.01 * t + 0.05 * math.sin(t) for t in range(60)])
    False
    """
    values = np.asarray(window, dtype=np.float64)[-3 * STALL_BLOCK :]
    if values.size < 3 * STALL_BLOCK or not np.isfinite(values).all():
        return False
    blocks = values.reshape(3, STALL_BLOCK)
    means = blocks.mean(axis=1)
    error = float(blocks.std(axis=1).mean()) / math.sqrt(STALL_BLOCK)
    return bool(means[0] - means[2] <= STALL_ERRORS * error)


def needs_warmup(early: float, later: float, warmed: bool, window: Sequence[float] | np.ndarray) -> bool:
    """Whether a run shows the need for a warmup: it did not warm up (``warmed`` False), its
    early median update ratio ``early`` is above ``WARMUP_FACTOR`` times the ``later`` one, and
    its loss stalled over the last losses in ``window`` (:func:`loss_stalled`).

    >>> needs_warmup(0.02, 0.003, False, [2.9] * 60)
    True
    >>> needs_warmup(0.02, 0.003, True, [2.9] * 60)
    False
    """
    if warmed or not (math.isfinite(early) and math.isfinite(later)) or later <= 0:
        return False
    return early > WARMUP_FACTOR * later and loss_stalled(window)
