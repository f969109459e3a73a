"""Extra optimizers: :class:`DeltaBarDelta` (Jacobs 1988, per-weight adaptive gains) and
:class:`AdaGradMean` (AdaGrad with the lecture's root-mean-square denominator)."""

from lrlab.optim.adagrad_mean import AdaGradMean
from lrlab.optim.delta_bar_delta import DeltaBarDelta

__all__ = ["AdaGradMean", "DeltaBarDelta"]
