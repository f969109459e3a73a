"""Loss spikes, by the two rules large training runs use.

- OLMo's: a loss above the mean plus 6 standard deviations of the last 128 steps' losses.
- LLM Foundry's: a loss above 2 times the mean of the last 100 steps.

A spike does not enter the window it is judged against (a burst of spikes is not absorbed
into its own baseline); a non-finite loss is a spike by either rule.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FOUNDRY", "OLMO", "RULES", "SpikeDetector", "SpikeRule", "find_spikes"]


@dataclass(frozen=True)
class SpikeRule:
    """One rule: its ``window`` of past steps, its threshold (``sigmas`` standard deviations
    above the window's mean, or ``ratio`` times the mean) and the fewest steps it judges from."""

    name: str
    window: int
    sigmas: float | None
    ratio: float | None
    min_history: int = 32

    def threshold(self, past: np.ndarray) -> float:
        mean = float(past.mean())
        if self.sigmas is not None:
            return mean + self.sigmas * float(past.std())
        return (self.ratio or 2.0) * mean

    def describe(self) -> str:
        if self.sigmas is not None:
            return f"mean + {self.sigmas:g} sigma of the last {self.window} steps"
        return f"{self.ratio:g} x the mean of the last {self.window} steps"


OLMO = SpikeRule("olmo", 128, 6.0, None)
FOUNDRY = SpikeRule("foundry", 100, None, 2.0)
RULES = {"olmo": OLMO, "foundry": FOUNDRY}


class SpikeDetector:
    """Feed losses in step order; :meth:`observe` says whether each is a spike and against
    what threshold."""

    def __init__(self, rule: SpikeRule = OLMO) -> None:
        self.rule = rule
        self._past: deque[float] = deque(maxlen=rule.window)

    def observe(self, loss: float) -> float | None:
        """The threshold ``loss`` exceeded (a spike: it stays out of the window), or None."""
        if not math.isfinite(loss):
            return math.inf if len(self._past) >= 1 else None
        if len(self._past) >= self.rule.min_history:
            limit = self.rule.threshold(np.fromiter(self._past, dtype=np.float64))
            if loss > limit:
                return limit
        self._past.append(loss)
        return None


def find_spikes(losses: Sequence[float], rule: SpikeRule = OLMO) -> list[int]:
    """Indices of the spikes in ``losses`` by ``rule``.

    >>> find_spikes([1.0, 1.1] * 40 + [9.0] + [1.0] * 5)
    [80]
    """
    detector = SpikeDetector(rule)
    return [i for i, loss in enumerate(losses) if detector.observe(float(loss)) is not None]
