"""Optimizers: the one optimizer grammar (``"sgd(momentum=0.9)"`` -> a ``torch.optim``
optimizer, with one alias table) and the extra optimizers :class:`DeltaBarDelta` (Jacobs
1988, per-weight adaptive gains) and :class:`AdaGradMean` (AdaGrad with the lecture's
root-mean-square denominator)."""

from lrlab.optim.adagrad_mean import AdaGradMean
from lrlab.optim.delta_bar_delta import DeltaBarDelta
from lrlab.optim.grammar import (
    OPTIMIZER_ALIASES,
    OPTIMIZER_CLASSES,
    OPTIMIZER_NAMES,
    make_optimizer,
    optimizer_key,
    parse_optimizer,
    resolve_optimizer,
)

__all__ = [
    "OPTIMIZER_ALIASES",
    "OPTIMIZER_CLASSES",
    "OPTIMIZER_NAMES",
    "AdaGradMean",
    "DeltaBarDelta",
    "make_optimizer",
    "optimizer_key",
    "parse_optimizer",
    "resolve_optimizer",
]
