"""Optimizers: the one optimizer grammar (``"sgd(momentum=0.9)"`` -> a ``torch.optim``
optimizer, with one alias table), the extra optimizers :class:`DeltaBarDelta` (Jacobs
1988, per-weight adaptive gains) and :class:`AdaGradMean` (AdaGrad with the lecture's
root-mean-square denominator), and the LR-free optimizers' contract with a training loop
(:mod:`lrlab.optim.lr_free`: schedule-free ``train()``/``eval()``, BatchNorm recomputation,
Prodigy's and D-Adaptation's LR estimate)."""

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
from lrlab.optim.lr_free import (
    LR_FREE,
    RUN_LR,
    eval_mode,
    is_schedule_free,
    lr_estimate,
    recompute_batchnorm,
    train_mode,
)

__all__ = [
    "LR_FREE",
    "OPTIMIZER_ALIASES",
    "OPTIMIZER_CLASSES",
    "OPTIMIZER_NAMES",
    "RUN_LR",
    "AdaGradMean",
    "DeltaBarDelta",
    "eval_mode",
    "is_schedule_free",
    "lr_estimate",
    "make_optimizer",
    "optimizer_key",
    "parse_optimizer",
    "recompute_batchnorm",
    "resolve_optimizer",
    "train_mode",
]
