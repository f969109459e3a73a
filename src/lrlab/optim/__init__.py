"""Extra optimizers: :class:`DeltaBarDelta` (Jacobs 1988, per-weight adaptive gains)."""

from lrlab.optim.delta_bar_delta import DeltaBarDelta

__all__ = ["DeltaBarDelta"]
