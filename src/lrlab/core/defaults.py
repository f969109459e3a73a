"""What a run gets when its config leaves something unset, read from the optimizer spec
without torch: the one-cycle momentum default (:func:`default_momentum`) and the check that
a schedule-free optimizer's own warmup is not doubled by the schedule's
(:func:`double_warmup`). :class:`~lrlab.core.records.RunConfig` applies both at
construction; they are importable from ``lrlab.core.records`` too.
"""

from __future__ import annotations

from lrlab.core.grammar import read_optimizer
from lrlab.schedules import Schedule, momentum_for

__all__ = ["default_momentum", "double_warmup", "schedule_warmups"]

# The schedule-free optimizers of the grammar (``lrlab.optim.lr_free.SCHEDULE_FREE``, which
# imports torch; a test keeps the two equal): they take a ``warmup_steps`` of their own.
_SCHEDULE_FREE = ("schedulefree_adamw", "schedulefree_sgd")

# Optimizers whose momentum a one-cycle cycles by default, by class name (an alias is
# resolved first; a test keeps them equal to the optimizers the grammar builds): the Adam
# family's betas[0], and a ``momentum`` argument > 0 (its default here). Schedule-free
# optimizers are left out: their momentum is an averaging weight, and they need no schedule.
_BETAS_OPTIMIZERS = frozenset({"adam", "adamw", "adamax", "nadam", "radam", "prodigy", "dadapt_adam"})
_MOMENTUM_DEFAULTS = {"sgd": 0.0, "rmsprop": 0.0, "muon": 0.95, "dadapt_sgd": 0.0, "deltabardelta": 0.0}


def _optimizer_warmup(spec: str) -> tuple[str, float] | None:
    """``(name, warmup_steps)`` of a schedule-free optimizer spec, read without torch; None
    for any other spec, and for one that does not parse (the optimizer grammar reports it)."""
    read = read_optimizer(spec)
    if read is None or read[0] not in _SCHEDULE_FREE:
        return None
    warmup = read[1].get("warmup_steps", 0)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)):
        return None
    return read[0], float(warmup)


def _optimizer_momentum(spec: str) -> bool:
    """Whether the optimizer ``spec`` has a momentum to cycle (betas, or momentum > 0);
    False for a spec that does not parse (the optimizer grammar reports it)."""
    read = read_optimizer(spec)
    if read is None:
        return False
    name, arguments = read
    if name in _BETAS_OPTIMIZERS:
        return True
    momentum = arguments.get("momentum", _MOMENTUM_DEFAULTS.get(name))
    return isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and momentum > 0


def default_momentum(optimizer: str, schedule: Schedule) -> Schedule | None:
    """The momentum schedule a run gets when it sets none: with a one-cycle LR schedule and
    an optimizer that has a momentum (SGD's ``momentum`` > 0, the Adam family's
    ``betas[0]``), the one-cycle's momentum 0.95 -> 0.85 -> 0.95
    (:func:`~lrlab.schedules.momentum_for`), as torch's ``OneCycleLR`` and fastai's
    ``fit_one_cycle`` do; otherwise None (the optimizer's own momentum). A run opts out by
    giving a momentum schedule itself, e.g. ``constant(0.9)``.

    >>> from lrlab.schedules import parse
    >>> print(default_momentum("adam", parse("one_cycle(max_lr=0.01, total_steps=100)")))
    one_cycle_momentum(total_steps=100)
    >>> default_momentum("sgd", parse("one_cycle(max_lr=0.01, total_steps=100)")) is None
    True
    """
    cycled = momentum_for(schedule)
    if cycled is None or not _optimizer_momentum(optimizer):
        return None
    return cycled


def schedule_warmups(schedule: Schedule) -> list[str]:
    """The parts of ``schedule`` that warm up (a ramp up from a lower LR at the start):
    ``warmup(...)``, one_cycle's rise, wsd's and inverse_sqrt's warmup, as short phrases."""
    found: list[str] = []
    for node in schedule.nodes():
        name = node.name
        if name == "warmup" and node.steps > 0:  # type: ignore[attr-defined]
            found.append(f"warmup(..., steps={node.steps:g})")  # type: ignore[attr-defined]
        elif name == "one_cycle" and node.div_factor > 1:  # type: ignore[attr-defined]
            found.append("one_cycle's rise (pct_start)")
        elif name in ("wsd", "inverse_sqrt") and node.warmup_steps > 0:  # type: ignore[attr-defined]
            found.append(f"{name}'s warmup_steps={node.warmup_steps:g}")  # type: ignore[attr-defined]
    return found


def double_warmup(optimizer: str, schedule: Schedule, written: str | None = None) -> str | None:
    """One line when a schedule-free optimizer with ``warmup_steps`` > 0 is given a schedule
    that warms up too (the run would warm up twice), else None; ``written`` is the schedule
    as the user wrote it (a sweep's spec with placeholders), quoted in the line."""
    own = _optimizer_warmup(optimizer)
    if own is None or own[1] <= 0:
        return None
    ramps = schedule_warmups(schedule)
    if not ramps:
        return None
    return (
        f"optimizer {optimizer!r} warms up by itself (warmup_steps={own[1]:g}) and schedule {written or str(schedule)!r} "
        f"warms up too ({ramps[0]}): the run would warm up twice; drop warmup_steps from the optimizer "
        "or the warmup from the schedule"
    )
