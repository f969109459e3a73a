"""Warmup adequacy: a run without warmup whose first steps were its largest and whose loss then
stalled far above where it started. Pure functions of plain numbers; the panel feeds them the
update ratio of the first measured steps against that of steps 50-100, the losses of the last
60 steps and the run's first loss, once, at the 100th measured step.

Adam takes steps of about the LR per coordinate from its first update on, before its
second-moment estimate has seen enough gradients to scale them; a warmup keeps those first
steps small. A model that cannot absorb them (a post-norm transformer at its best LR: Xiong et
al. 2020, arXiv 2002.04745; Liu et al. 2019, arXiv 1908.03265) drops its loss fast for a few
steps to about the loss of a model that ignores its input (a character model: the characters'
own frequencies), then sits there, climbing back or creeping down, while the LR is still high.
The stall is read as ``stuck_check`` reads a plateau (the median of the first quarter of the
last third of the steps against the median of its last quarter, relative), and as a level: how
far the loss sits below the run's first loss. The level is what tells a stuck run from one that
trains well: many of those are as flat over that third (their loss falls fastest early).

The thresholds were set on runs of seeds 1000 and 1001 that the fault benchmark does not use,
each with a twin warmed up over 30 steps (200 steps, cosine or constant LR; chars-transformer
with block 32 and batch 16 and chars-lstm with Adam, digits-linear with Adam and SGD):

- needing warmup (the final validation loss 0.05 to 0.55 nats worse than the warmed twin's):
  post-norm with 4 layers, d_model 64 at 0.01 and 3 layers, d_model 32 at 0.03, both schedules,
  8 runs. The first 10 steps' median update ratio was 4.0 to 12 times that of steps 50-100; over
  steps 67-100 the loss fell by -8.0% to -0.5% (it rose) and sat 33% to 40% below the first loss;
- not needing it (within 0.02 nats of the warmed twin, or better), 38 runs: post-norm 4x64 at
  3e-3 and 2x48 at 0.01, pre-norm 2x32 at 0.01 and 1x32 at 0.1, chars-lstm (hidden 128) at 0.01,
  digits-linear with Adam at 0.01 and 0.03 and SGD (momentum 0 and 0.9) at 0.1 to 3. Their ratio
  fell as much (1.9 to 46 times: Adam's first steps are about the LR per coordinate whatever the
  model, and a linear model's weights start near zero and read high), and the transformers' loss
  was nearly as flat over steps 67-100 (it fell by 2.0% to 6.1%), but it sat 49% to 62% below the
  first loss, as chars-lstm's did (digits-linear: 74% to 96%; one run with SGD at 1 rose by 12%).

So neither the ratio nor a plateau alone tells the two apart; the level does, and the plateau
keeps the rule off a run still falling fast (an LR too small, whose loss has far to go). The
cuts: a fall under 5% (``stuck_check``'s own plateau) and a level under 45% below the first
loss (between the 40% and 49% of the two sides). The early steps the largest (3 times, below
the 4.0 of every run that needed warmup) says the start is what went wrong, and keeps the rule
off a run whose first steps were not oversized (chars-lstm under schedule-free's own 20-step
warmup, which the LR does not show, reads 1.8).

Checked afterwards, thresholds unchanged, through ``lrlab.track`` on seeds 1002-1007 (cosine): it
found all 12 runs of the two post-norm configurations without warmup (each ended 0.18 to 0.67
nats worse than its warmed twin; their loss sat 33% to 42% below the first) and none of their
12 warmed twins nor of the 30 runs of five configurations that do not need warmup (pre-norm 2x32,
chars-lstm, post-norm 4x64 at 3e-3, digits-linear with Adam at 0.03 and SGD with momentum at
0.3; 52% to 60% below the first loss for the transformers and chars-lstm). A rule that judged
the stall by block means alone had found 2 of those 12: most crept down slowly near the stuck
level instead of climbing back.

What it does not know: the level is relative to the first loss, and a task whose loss falls
little in 100 steps even when well trained (a fine-tune starting from a trained model, or a
resumed run whose optimizer state was not restored and so takes oversized first steps) can read
as stuck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["STALL_DROP", "STALL_PROGRESS", "WARMUP_FACTOR", "loss_stall", "loss_stalled", "needs_warmup"]

WARMUP_FACTOR = 3.0  # the early median update ratio at least this many times the later one ...
STALL_DROP = 0.05  # ... the loss fell by less than this, relative, over the last third of the steps ...
STALL_PROGRESS = 0.45  # ... and sits less than this fraction below the first loss


def loss_stall(window: Sequence[float] | np.ndarray, first: float, steps: int) -> tuple[float, float] | None:
    """How the loss moved over the last third of the ``steps`` so far, read from ``window`` (the
    last losses, oldest first): its relative drop across that third (the median of its first
    quarter against the median of its last quarter, as ``stuck_check`` reads a plateau) and its
    progress (how far that last median sits below ``first``, the run's first loss, relative).
    None when the window holds fewer than a third of the steps, a loss in that third is not
    finite (a diverging run is found by its own rule), or ``first`` is not a positive number.

    >>> drop, progress = loss_stall([3.0] * 34, 4.5, 100)
    >>> round(drop, 3), round(progress, 3)
    (0.0, 0.333)
    """
    span = math.ceil(steps / 3)
    values = np.asarray(window, dtype=np.float64)[-span:]
    if span < 4 or values.size < span or not np.isfinite(values).all():
        return None
    if not (math.isfinite(first) and first > 0):
        return None
    quarter = span // 4
    start, end = float(np.median(values[:quarter])), float(np.median(values[-quarter:]))
    if start <= 0:
        return None
    return (start - end) / start, 1 - end / first


def loss_stalled(window: Sequence[float] | np.ndarray, first: float, steps: int) -> bool:
    """Whether the loss stalled far above where it could be: over the last third of the ``steps``
    so far it fell by less than ``STALL_DROP`` (relative, or rose), and it sits less than
    ``STALL_PROGRESS`` below the run's ``first`` loss (:func:`loss_stall` reads both).

    >>> loss_stalled([3.0 + 0.05 * math.sin(t) for t in range(60)], 4.5, 100)
    True
    >>> loss_stalled([2.2 + 0.05 * math.sin(t) for t in range(60)], 4.5, 100)
    False
    """
    read = loss_stall(window, first, steps)
    return read is not None and read[0] < STALL_DROP and read[1] < STALL_PROGRESS


def needs_warmup(
    early: float, later: float, warmed: bool, window: Sequence[float] | np.ndarray, first: float, steps: int
) -> bool:
    """Whether a run shows the need for a warmup: it did not warm up (``warmed`` False), its
    early median update ratio ``early`` is above ``WARMUP_FACTOR`` times the ``later`` one, and
    its loss stalled far above where it could be (:func:`loss_stalled` on ``window``, the last
    losses, ``first``, the run's first loss, after ``steps`` steps).

    >>> needs_warmup(0.02, 0.003, False, [3.0] * 60, 4.5, 100)
    True
    >>> needs_warmup(0.02, 0.003, True, [3.0] * 60, 4.5, 100)
    False
    """
    if warmed or not (math.isfinite(early) and math.isfinite(later)) or later <= 0:
        return False
    return early > WARMUP_FACTOR * later and loss_stalled(window, first, steps)
