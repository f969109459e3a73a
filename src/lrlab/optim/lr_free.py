"""Learning-rate-free optimizers and the contract a training loop must keep with them.

Two families answer "do I need a learning rate at all?":

- **Schedule-free** (Defazio et al. 2024, arXiv 2405.15682; ``schedulefree``): no schedule,
  but a real LR. Gradients are taken at one point (``y``), evaluation belongs at another
  (``x``, an average), so the parameters must be switched: ``optimizer.train()`` wherever
  the model goes to ``train()``, ``optimizer.eval()`` before every evaluation and before the
  weights are saved. BatchNorm running statistics gathered during training belong to ``y``
  and are recomputed at ``x`` before evaluating (:func:`recompute_batchnorm`).
- **LR estimators**: Prodigy (Mishchenko & Defazio 2023, ``prodigyopt``) and D-Adaptation
  (Defazio & Mishchenko 2023, ``dadaptation``) estimate the step size ``d`` themselves; the
  ``lr`` they take is a multiplier on that estimate (1.0). The estimate can stay stuck near
  ``d0`` or keep rising, so it is worth recording: :func:`lr_estimate`.

The grammar names (:data:`LR_FREE`) and the LR a run gives each (:data:`RUN_LR`):

================== ====================================== =========================
name               class                                  run's ``lr``
================== ====================================== =========================
schedulefree_adamw ``schedulefree.AdamWScheduleFree``     a real LR (library 0.0025)
schedulefree_sgd   ``schedulefree.SGDScheduleFree``       a real LR (library 1.0)
prodigy            ``prodigyopt.Prodigy``                 1.0 (multiplier)
dadapt_adam        ``dadaptation.DAdaptAdam``             1.0 (multiplier)
dadapt_sgd         ``dadaptation.DAdaptSGD``              1.0 (multiplier)
================== ====================================== =========================

The packages are optional (``pip install lrlab[lrfree]``): :func:`installed_classes` imports
those present; the functions here work on any optimizer (no-ops for ordinary ones).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch

__all__ = [
    "BN_RECOMPUTE_BATCHES",
    "LR_ESTIMATORS",
    "LR_FREE",
    "LR_FREE_OPTIMIZERS",
    "RUN_LR",
    "SCHEDULE_FREE",
    "LrFreeOptimizer",
    "eval_mode",
    "has_batchnorm",
    "installed_classes",
    "is_schedule_free",
    "lr_estimate",
    "missing_package",
    "recompute_batchnorm",
    "step_lrs",
    "train_mode",
]

BN_RECOMPUTE_BATCHES = 50
"""Training batches to recompute BatchNorm statistics on (the schedule_free README's 50)."""


@dataclass(frozen=True)
class LrFreeOptimizer:
    """One LR-free optimizer of the grammar: where its class lives and the ``lr`` a run
    gives it (``run_lr``: 1.0, a multiplier on the optimizer's own estimate; None: a real
    learning rate, searched like any other)."""

    name: str
    package: str
    class_name: str
    schedule_free: bool
    run_lr: float | None


LR_FREE_OPTIMIZERS: dict[str, LrFreeOptimizer] = {
    spec.name: spec
    for spec in (
        LrFreeOptimizer("schedulefree_adamw", "schedulefree", "AdamWScheduleFree", True, None),
        LrFreeOptimizer("schedulefree_sgd", "schedulefree", "SGDScheduleFree", True, None),
        LrFreeOptimizer("prodigy", "prodigyopt", "Prodigy", False, 1.0),
        LrFreeOptimizer("dadapt_adam", "dadaptation", "DAdaptAdam", False, 1.0),
        LrFreeOptimizer("dadapt_sgd", "dadaptation", "DAdaptSGD", False, 1.0),
    )
}
"""The LR-free optimizers by grammar name."""

LR_FREE: frozenset[str] = frozenset(LR_FREE_OPTIMIZERS)
"""Grammar names of the LR-free optimizers (installed or not)."""

SCHEDULE_FREE: frozenset[str] = frozenset(n for n, o in LR_FREE_OPTIMIZERS.items() if o.schedule_free)
"""Grammar names of the schedule-free optimizers (a real LR; train()/eval() contract)."""

LR_ESTIMATORS: frozenset[str] = LR_FREE - SCHEDULE_FREE
"""Grammar names of the optimizers that estimate their step size (``lr`` = 1.0, a multiplier)."""

RUN_LR: dict[str, float | None] = {n: o.run_lr for n, o in LR_FREE_OPTIMIZERS.items()}
"""The ``lr`` a run gives each LR-free optimizer: 1.0, or None where it takes a real LR."""


def installed_classes() -> dict[str, type[torch.optim.Optimizer]]:
    """The LR-free optimizer classes whose package is installed, by grammar name."""
    found: dict[str, type[torch.optim.Optimizer]] = {}
    for name, spec in LR_FREE_OPTIMIZERS.items():
        try:
            module = importlib.import_module(spec.package)
        except ImportError:
            continue
        cls = getattr(module, spec.class_name, None)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            found[name] = cls
    return found


def missing_package(name: str) -> str | None:
    """The package to ``pip install`` for LR-free optimizer ``name`` when it is not
    installed; None when it is, or ``name`` is no LR-free optimizer."""
    spec = LR_FREE_OPTIMIZERS.get(name.lower())
    if spec is None:
        return None
    try:
        importlib.import_module(spec.package)
    except ImportError:
        return spec.package
    return None


# ------------------------------------------------------------------ schedule-free contract


def is_schedule_free(optimizer: Any) -> bool:
    """Whether ``optimizer`` keeps separate training and evaluation points, switched by its
    own ``train()``/``eval()`` (``torch.optim`` optimizers have neither)."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def train_mode(optimizer: Any) -> None:
    """``optimizer.train()`` where it has one (parameters at the gradient point ``y``)."""
    if is_schedule_free(optimizer):
        optimizer.train()


def eval_mode(optimizer: Any) -> None:
    """``optimizer.eval()`` where it has one (parameters at the averaged point ``x``)."""
    if is_schedule_free(optimizer):
        optimizer.eval()


def _in_train_mode(optimizer: Any) -> bool:
    """The mode of a schedule-free optimizer: its param groups' ``train_mode`` flag
    (``AdamWScheduleFree``, ``SGDScheduleFree``), else its own (``ScheduleFreeWrapper``)."""
    groups = getattr(optimizer, "param_groups", None) or [{}]
    flag = groups[0].get("train_mode", getattr(optimizer, "train_mode", False))
    return bool(flag)


def _batchnorms(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def has_batchnorm(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer that tracks running statistics."""
    return bool(_batchnorms(model))


def recompute_batchnorm(
    model: torch.nn.Module,
    optimizer: Any,
    batches: Iterable[Any],
    n: int = BN_RECOMPUTE_BATCHES,
    *,
    device: torch.device | str | None = None,
) -> int:
    """Recompute the BatchNorm running statistics of ``model`` at a schedule-free
    optimizer's evaluation point; returns the number of batches used (0: nothing to do).

    As the schedule_free README says: the optimizer in ``eval()`` (parameters at ``x``), the
    model in ``train()``, forward passes under ``torch.no_grad()`` over up to ``n``
    training ``batches`` (pairs ``(inputs, targets)`` or inputs alone, moved to ``device``
    when given). The statistics are reset first and averaged over the batches
    (``momentum=None``, as PreciseBN), so they are exactly those of ``x`` on these batches.
    The optimizer's and every module's mode are restored afterwards; BatchNorm momenta too.
    Nothing is done for an optimizer that is not schedule-free (its statistics already
    belong to its parameters) or a model without BatchNorm.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    norms = _batchnorms(model)
    if not norms or not is_schedule_free(optimizer):
        return 0
    was_training = _in_train_mode(optimizer)
    modes = {module: module.training for module in model.modules()}
    momenta = [bn.momentum for bn in norms]
    optimizer.eval()
    used = 0
    try:
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the batches
        model.train()
        with torch.no_grad():
            for batch in islice(batches, n):
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(inputs.to(device) if device is not None else inputs)
                used += 1
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        for module, training in modes.items():
            module.training = training
        if was_training:
            optimizer.train()
    return used


# ------------------------------------------------------------------ LR estimates


def _first_grad_norm(optimizer: Any) -> float | None:
    """DAdaptSGD divides its step by the first gradient's norm: stored after the first
    step, computed here as it computes it (groups with lr > 0) before."""
    stored = optimizer.param_groups[0].get("g0_norm")
    if stored is not None:
        return float(stored)
    squares = [
        float(p.grad.detach().double().square().sum())
        for group in optimizer.param_groups
        if group["lr"] > 0
        for p in group["params"]
        if p.grad is not None
    ]
    return math.sqrt(sum(squares)) if squares else None


def _estimator_family(optimizer: Any) -> str | None:
    """``"sgd"`` for DAdaptSGD, ``"adam"`` for Prodigy and the other D-Adaptation optimizers
    (subclasses included), None for every other optimizer."""
    for cls in type(optimizer).__mro__:
        package = cls.__module__.split(".")[0]
        if package == "dadaptation" and cls.__name__ == "DAdaptSGD":
            return "sgd"
        if package in ("prodigyopt", "dadaptation"):
            return "adam"
    return None


def _estimates(optimizer: Any) -> list[float] | None:
    family = _estimator_family(optimizer)
    if family is None:
        return None
    groups = optimizer.param_groups
    scale = 1.0
    if family == "sgd":
        g0 = _first_grad_norm(optimizer)
        scale = 1.0 / g0 if g0 else 1.0
    return [float(g["d"]) * float(g["lr"]) * scale for g in groups]


def lr_estimate(optimizer: Any) -> float | None:
    """The learning rate an LR-estimating optimizer (Prodigy, D-Adaptation) uses now, on the
    scale of the method it adapts; None for other optimizers.

    For Prodigy and DAdaptAdam it is ``d * lr`` of the first param group: an Adam learning
    rate (their ``use_bias_correction`` is Adam's own bias correction, first step
    ``d * lr * sign(g)`` as Adam's ``lr * sign(g)``). For DAdaptSGD, whose step is
    ``d * lr / |g0| * g``, it is ``d * lr / |g0|`` (``g0``: the first gradient): an SGD
    learning rate.

    Before its first step Prodigy's estimate is its ``d0`` (1e-6 unless given) times ``lr``.

    >>> lr_estimate(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)) is None
    True
    """
    estimates = _estimates(optimizer)
    return None if estimates is None else estimates[0]


def step_lrs(optimizer: Any) -> list[float]:
    """The learning rate the next step uses in each param group: ``d * lr`` (as
    :func:`lr_estimate`) for an LR estimator, the warmed-up ``lr`` for a schedule-free
    optimizer with ``warmup_steps``, else the group's ``lr``."""
    estimates = _estimates(optimizer)
    if estimates is not None:
        return estimates
    return [_warmed_up(group) for group in optimizer.param_groups]


def _warmed_up(group: Mapping[str, Any]) -> float:
    lr = float(group["lr"])
    warmup, k = group.get("warmup_steps"), group.get("k")
    if "train_mode" in group and warmup and k is not None and k < warmup:
        return lr * (k + 1) / warmup  # as schedulefree's step scales it
    return lr
