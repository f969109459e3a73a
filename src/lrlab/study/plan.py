"""What a study runs: its budgets and the schedules derived from a range test.

Pure functions of numbers (optimizer names and aliases are ``lrlab.optim.grammar``'s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lrlab.formatting import round_sig
from lrlab.schedules import (
    Schedule,
    constant,
    cosine,
    cyclic,
    exponential,
    one_cycle,
    plateau,
    step_decay,
    warmup,
)

SCHEDULE_NAMES = (
    "constant",
    "step",
    "exponential",
    "cosine",
    "warmup-cosine",
    "triangular",
    "triangular2",
    "sine-decay",
    "one-cycle",
)
"""The families a study trains by default."""

STUDY_FAMILIES = (*SCHEDULE_NAMES, "plateau")
"""Every family a study can train (``schedules=``): the default nine and ``plateau``, the
LR lowered by half when the validation metric stalls for a quarter of the epochs."""


def check_families(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple in :data:`STUDY_FAMILIES`' order, or ``ValueError`` in one line.

    >>> check_families(["plateau", "constant"])
    ('constant', 'plateau')
    """
    wanted = [str(n).strip() for n in names]
    unknown = [n for n in wanted if n not in STUDY_FAMILIES]
    if unknown or not wanted:
        got = ", ".join(unknown) if unknown else "none"
        raise ValueError(f"schedules must be among {', '.join(STUDY_FAMILIES)}, got {got}")
    return tuple(n for n in STUDY_FAMILIES if n in wanted)


@dataclass(frozen=True)
class Budget:
    """How much a study trains: the fraction of the task's default epochs, the LR factors
    (multiples of the range test's recommended LR, tried for each schedule), the range
    test's length, and the seeds of successive halving: every configuration trains with
    ``seeds[0]``, then the best ``promote_fraction`` of them (at least ``promote_min``)
    train with every seed in ``seeds`` and are ranked by their mean.

    The factors bracket the finder's recommendation by half a decade on each side: the
    recommendation is tuned for one constant LR over a whole run, and the decaying
    schedules tolerate a larger peak (``benchmarks/bench_study.py`` measures the result
    against a full LR x schedule grid). Where a schedule's best LR is the smallest or largest
    factor, the study goes on outward by the same factor (:mod:`lrlab.study.bracketing`, at
    most ``MAX_EXTRA`` more LRs per schedule).
    """

    name: str
    epoch_fraction: float
    seeds: tuple[int, ...]
    lr_factors: tuple[float, ...]
    finder_iters: int
    promote_fraction: float = 0.25
    promote_min: int = 3

    def epochs(self, default_epochs: int) -> int:
        return max(3, math.ceil(default_epochs * self.epoch_fraction))

    def finalists(self, configurations: int) -> int:
        """How many of ``configurations`` (those that finished their first seed) get every
        seed.

        >>> BUDGETS["small"].finalists(54), BUDGETS["small"].finalists(8), BUDGETS["small"].finalists(2)
        (14, 3, 2)
        """
        return min(configurations, max(self.promote_min, math.ceil(configurations * self.promote_fraction)))


THIRD = 1 / 3

BUDGETS: dict[str, Budget] = {
    "small": Budget("small", 0.5, (0, 1, 2), (THIRD, 1.0, 3.0), 100),
    "medium": Budget("medium", 1.0, (0, 1, 2), (THIRD, 1.0, 3.0), 150),
    "large": Budget("large", 1.0, (0, 1, 2, 3, 4), (0.1, THIRD, 1.0, 3.0, 10.0), 200),
}


def factor_label(factor: float) -> str:
    """``x1/3`` for a third, ``x3`` for three: how sweeps and tables name an LR factor."""
    if math.isclose(factor, THIRD):
        return "x1/3"
    return f"x{factor:.3g}"


def study_schedules(
    lr: float,
    base_lr: float,
    max_lr: float,
    total_steps: int,
    cycles: int = 3,
    *,
    families: Sequence[str] = SCHEDULE_NAMES,
    epochs: int = 4,
    higher_is_better: bool = False,
) -> dict[str, Schedule]:
    """The schedules a study compares, derived from a range test.

    ``lr`` drives the monotone schedules; the cyclic ones run between ``base_lr`` and
    ``max_lr`` (Smith's bounds) over ``cycles`` whole cycles; one-cycle peaks at ``max_lr``.
    The decaying schedules fall about 100x by the end (the article's rule of thumb), cosine
    to zero. ``plateau`` (only when ``families`` names it) starts at ``lr`` and halves it when
    the validation metric has not improved for a quarter of the ``epochs`` (at least one; its
    ``mode`` follows ``higher_is_better``). The LRs are rounded to 4 significant digits, so
    that the specs read well.

    >>> specs = study_schedules(0.1, 0.05, 0.2, total_steps=600)
    >>> str(specs["step"]), str(specs["triangular"])
    ('step_decay(lr=0.1, step_size=200)', 'cyclic(base_lr=0.05, max_lr=0.2, step_size=100)')
    """
    for name, value in (("lr", lr), ("base_lr", base_lr), ("max_lr", max_lr)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if max_lr < base_lr:
        raise ValueError(f"max_lr must be >= base_lr ({base_lr!r}), got {max_lr!r}")
    if total_steps < 2 * cycles:
        raise ValueError(f"total_steps must be >= {2 * cycles} for {cycles} cycles, got {total_steps}")
    lr_, base, peak = round_sig(lr), round_sig(base_lr), round_sig(max_lr)
    third = math.ceil(total_steps / 3)
    warm = max(1, round(total_steps * 0.05))
    half_cycle = max(1, total_steps // (2 * cycles))
    every = {
        "constant": constant(lr_),
        "step": step_decay(lr_, step_size=third, gamma=0.1),
        "exponential": exponential(lr_, decay_rate=0.01, decay_steps=total_steps),
        "cosine": cosine(lr_, total_steps=total_steps),
        "warmup-cosine": warmup(cosine(lr_, total_steps=total_steps - warm), steps=warm),
        "triangular": cyclic(base, peak, step_size=half_cycle),
        "triangular2": cyclic(base, peak, step_size=half_cycle, mode="triangular2"),
        "sine-decay": cyclic(base, peak, step_size=half_cycle, shape="sine", cycle_decay=0.5),
        "one-cycle": one_cycle(peak, total_steps=total_steps),
        "plateau": plateau(lr_, factor=0.5, patience=max(1, epochs // 4), mode="max" if higher_is_better else "min"),
    }
    return {name: every[name] for name in check_families(families)}
