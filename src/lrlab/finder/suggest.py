"""Suggestion rules: pure functions of a range test's ``(lrs, losses)``, numpy only.

One concept in one module, over 500 lines on purpose: every decision the finder takes on a
curve's numbers (the rules, the defaults and notes fitted with them, the halving rule, what
the curve can tell, the confirmation's pick) is read and checked here, next to the others;
the runners that feed them are ``range.py``, ``halving.py`` and ``confirm.py``.

Every rule shares fastai's signature ``rule(lrs, losses) -> lr``. The rules expect the
*smoothed* loss curve of an LR range test (``smooth_losses`` makes one), already trimmed of
the noisy first iterations and the diverging tail (``suggest_all`` does both). Points whose
loss is not finite are ignored.

The article's halving search has its decision rule here too (``decreases_steadily``,
``halving_pick``); the trial trainings that feed it live in ``finder/halving.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from lrlab.core.smoothing import bias_corrected_ema

__all__ = [
    "CHECKED_OPTIMIZERS",
    "DEFAULT_CONFIRM_STEPS",
    "DEFAULT_REASON",
    "DEFAULT_RULE",
    "DEFAULT_RULE_SGD",
    "MEASURED_LOW",
    "REGRESSION_NOTE",
    "RULES",
    "RULE_DESCRIPTIONS",
    "CurveVerdict",
    "confirm_candidates",
    "confirm_pick",
    "confirm_reason",
    "cyclic_bounds",
    "decreases_steadily",
    "default_rule",
    "halving_pick",
    "lowest_index",
    "minimum_divided",
    "minimum_tenth",
    "optimizer_note",
    "read_curve",
    "smooth_losses",
    "steepest",
    "suggest_all",
    "trim",
    "valley",
]

Rule = Callable[[Sequence[float], Sequence[float]], float]


def _finite_curve(
    lrs: Sequence[float], losses: Sequence[float], *, at_least: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if lr.ndim != 1 or loss.ndim != 1 or lr.shape != loss.shape:
        raise ValueError(
            f"lrs and losses must be 1-D and of equal length, got shapes {lr.shape} and {loss.shape}"
        )
    if not np.all(np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lrs must be finite and > 0")
    if np.any(np.diff(lr) <= 0):
        raise ValueError("lrs must be strictly increasing")
    keep = np.isfinite(loss)
    if keep.sum() < at_least:
        raise ValueError(f"losses needs at least {at_least} finite values, got {int(keep.sum())}")
    return lr[keep], loss[keep]


def smooth_losses(losses: Sequence[float], smooth: float = 0.05) -> np.ndarray:
    """Exponential moving average of ``losses`` with bias correction (fastai's smoothing).

    ``smooth`` is the weight of the newest loss (torch-lr-finder's ``smooth_f``): 0 keeps
    the raw losses. A non-finite loss (a skipped NaN batch) does not enter the average;
    its smoothed value repeats the previous one (NaN before the first finite loss).

    >>> smooth_losses([4.0, 2.0, float("nan"), 2.0], smooth=0.5).round(3).tolist()
    [4.0, 2.667, 2.667, 2.286]
    """
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    # smooth=0 is torch-lr-finder's "off" (not a frozen average): decay 0, the raw losses.
    return bias_corrected_ema(losses, 1.0 - smooth if smooth else 0.0, nonfinite="carry")


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The LR where the loss falls fastest per unit of log(LR) (Smith; torch-lr-finder).

    >>> lrs = np.logspace(-4, 0, 9)
    >>> round(steepest(lrs, [2.0, 1.99, 1.9, 1.5, 0.9, 0.7, 0.65, 0.8, 3.0]), 6)
    0.003162
    """
    lr, loss = _finite_curve(lrs, losses)
    slope = np.gradient(loss, np.log(lr))
    return float(lr[int(np.argmin(slope))])


def valley(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """fastai's ``valley``: a point about half-way down the longest descending stretch.

    The stretch is the longest decreasing subsequence of the loss curve; the suggestion
    sits at its start plus 1/3 + 1/6 of its length (fastai, ``lr_find`` default since 2.4).

    >>> lrs = np.logspace(-4, 0, 9)
    >>> valley(lrs, [2.0, 1.99, 1.9, 1.5, 0.9, 0.7, 0.65, 0.8, 3.0])
    0.001
    """
    lr, loss = _finite_curve(lrs, losses, at_least=1)
    n = len(loss)
    # lds[i]: length of the longest decreasing subsequence that ends at i.
    lds = np.ones(n, dtype=np.int64)
    max_start, max_end = 0, 0
    for i in range(1, n):
        earlier = loss[:i] > loss[i]
        if earlier.any():
            lds[i] = max(lds[i], int(lds[:i][earlier].max()) + 1)
        if lds[i] > lds[max_end]:
            max_end = i
            max_start = max_end - int(lds[max_end])
    sections = (max_end - max_start) / 3
    idx = max(0, max_start + int(sections) + int(sections / 2))
    return float(lr[idx])


def lowest_index(losses: Sequence[float] | np.ndarray) -> int:
    """Index of the range test's lowest loss: the plain minimum, unless it sits at the
    first point, where the loss has only risen from where it started.

    A minimum at the very start of the curve is no LR's doing: at the smallest LRs the model
    has barely moved, and an exponential average that began on a few lucky batches (small
    batches are noisy) decays from them for tens of steps. When the curve then dips below
    its own median later on, that dip is the minimum; when it never does (the loss only
    rose: the test started too high), the first point stays the minimum.

    >>> lowest_index([1.0, 0.9, 0.8, 0.7, 2.0])
    3
    >>> lowest_index([0.5, 0.8, 0.95, 1.0, 1.0, 1.0, 0.9, 1.2, 3.0])  # a lucky start, a dip at 6
    6
    >>> lowest_index([0.5, 0.8, 1.0, 1.5, 2.0, 3.0])  # rising from the start: the start stays
    0
    """
    loss = np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(loss)
    if not finite.any():
        raise ValueError("losses needs at least 1 finite value, got 0")
    filled = np.where(finite, loss, np.inf)
    i = int(np.argmin(filled))
    if i != int(np.argmax(finite)) or finite.sum() < 4:
        return i
    half = len(loss) // 2
    j = half + int(np.argmin(filled[half:]))
    return j if filled[j] < float(np.median(loss[finite])) else i


def minimum_divided(lrs: Sequence[float], losses: Sequence[float], divisor: float = 10.0) -> float:
    """The LR at the lowest loss divided by ``divisor``.

    >>> lrs = np.logspace(-4, 0, 9)
    >>> round(minimum_divided(lrs, [2.0, 1.99, 1.9, 1.5, 0.9, 0.7, 0.65, 0.8, 3.0], 3.0), 6)
    0.033333
    """
    if not divisor > 0:
        raise ValueError(f"divisor must be > 0, got {divisor!r}")
    lr, loss = _finite_curve(lrs, losses, at_least=1)
    return float(lr[lowest_index(loss)] / divisor)


def minimum_tenth(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """One tenth of the LR at the lowest loss (fastai's ``minimum``).

    >>> lrs = np.logspace(-4, 0, 9)
    >>> minimum_tenth(lrs, [2.0, 1.99, 1.9, 1.5, 0.9, 0.7, 0.65, 0.8, 3.0])
    0.01
    """
    return minimum_divided(lrs, losses, 10.0)


RULES: dict[str, Rule] = {
    "steepest": steepest,
    "valley": valley,
    "minimum/10": minimum_tenth,
    "minimum/3": partial(minimum_divided, divisor=3.0),
    "minimum/30": partial(minimum_divided, divisor=30.0),
    "minimum/7": partial(minimum_divided, divisor=7.0),
}

RULE_DESCRIPTIONS: dict[str, str] = {
    "steepest": "steepest descent of the smoothed loss per log(LR)",
    "valley": "fastai's valley: ~half-way down the longest descending stretch",
    "minimum/10": "one tenth of the LR at the lowest smoothed loss",
    "minimum/3": "one third of the LR at the lowest smoothed loss",
    "minimum/30": "one thirtieth of the LR at the lowest smoothed loss",
    "minimum/7": "one seventh of the LR at the lowest smoothed loss",
    "halving": "article's search: largest LR, halving from a large one, whose loss falls steadily",
    "confirmed": "the best of a few candidates, each trained briefly on the same batches",
    "safe": "the optimizer family's conventional default, where the curve cannot tell",
}

# The recommendation ``find_lr`` returns depends on the optimizer's family, as measured
# against grid search in benchmarks/bench_finder.py (docs/finder.md has the table and how
# sensitive the divisors are). SGD (with or without momentum) trains best about a third of
# the way below the range test's minimum, close to the largest LR it trains stably at (Smith's
# lower cyclic bound is a third to a quarter of that minimum); an adaptive optimizer (Adam,
# AdamW) normalises its steps per weight, so its range test runs on far past the LR it
# trains well at for a whole run, and a thirtieth of the minimum measured best (fastai's
# tenth is tuned for short one-cycle fine-tuning and was too large here). The adaptive rule
# was fitted on Adam and held up on AdamW; on the held-out RMSprop and Adagrad pairs it was
# far too low (``optimizer_note``).
DEFAULT_RULE = "minimum/30"
DEFAULT_RULE_SGD = "minimum/7"
_REASON = (
    "default rule for {}: chosen leave-one-task-out on the tuning pairs of lrlab's benchmark "
    "and checked on held-out pairs (docs/finder.md)"
)
DEFAULT_REASON = _REASON.format("adaptive optimizers")
DEFAULT_REASON_SGD = _REASON.format("SGD")

# Regression losses (mean squared or absolute error, Huber, smooth L1) get the same rule:
# a separate pair of divisors for them, fitted on the benchmark's regression tuning pairs
# (an MLP on scikit-learn's diabetes data and one on a linear make_regression target), did
# worse leave-one-task-out than these (3.8 against 2.2 bars of mean regret), because the two
# disagree: there the best LR lay from about 3x (make_regression, SGD) to about 300x
# (diabetes, Adam: few points, and larger LRs overfit within the run) below the minimum.
# What is said instead is that the LR wants checking.
REGRESSION_NOTE = (
    "regression loss: the same rule (a separate one for regression losses did worse on lrlab's benchmark), "
    "but on regression the best LR lay about 3x to 300x below the curve's minimum: check it with a short sweep"
)


# The optimizers the default rules were fitted on (the tuning pairs: SGD with momentum, Adam)
# or checked on (the held-out pairs: SGD with Nesterov and weight decay, AdamW), and, for two
# others, how far below the grid's best LR the default recommendation lay on the benchmark's
# pairs with them (held-out and probe pairs; the least and the most, geometric means over 3
# seeds; docs/benchmarks.md). No divisor fits either: the range is too wide.
CHECKED_OPTIMIZERS = ("SGD", "Adam", "AdamW")
MEASURED_LOW = {"RMSprop": (1.9, 16.0), "Adagrad": (3.6, 26.0)}


# LR-free optimizers (lrlab.optim.lr_free), by grammar name; their class names map to them.
_LR_FREE_CLASSES = {
    "AdamWScheduleFree": "schedulefree_adamw", "SGDScheduleFree": "schedulefree_sgd", "Prodigy": "prodigy",
    "DAdaptAdam": "dadapt_adam", "DAdaptSGD": "dadapt_sgd",
}  # fmt: skip
_ESTIMATOR_NOTE = (
    "{name} estimates its own LR (its lr is a multiplier on that estimate, 1.0): no range test is needed, "
    "and its curve says nothing about the LR to use"
)
_SCHEDULE_FREE_NOTE = (
    "{name} is schedule-free: the range test's LR is for a constant LR (no schedule; its own warmup_steps "
    "aside), and evaluate after optimizer.eval()"
)
_LR_FREE_NOTES = {
    key: (_SCHEDULE_FREE_NOTE if key.startswith("schedulefree") else _ESTIMATOR_NOTE).format(name=key)
    for key in _LR_FREE_CLASSES.values()
}


def optimizer_note(name: str) -> str | None:
    """What lrlab's benchmark says of the default rule for the optimizer class ``name``:
    nothing (None) for one it was fitted or checked on, a note to check the LR otherwise.

    >>> optimizer_note("Adam") is None
    True
    >>> optimizer_note("Prodigy")
    'prodigy estimates its own LR (its lr is a multiplier on that estimate, 1.0): no range test is needed, and its curve says nothing about the LR to use'
    >>> optimizer_note("Adagrad")
    "Adagrad: the rule was fitted on Adam; on lrlab's benchmark pairs with Adagrad it lay 3.6x to 26x below the best LR: check it with a sweep over a wider range (lrlab tune)"
    """
    if name in CHECKED_OPTIMIZERS:
        return None
    lr_free = _LR_FREE_NOTES.get(name) or _LR_FREE_NOTES.get(_LR_FREE_CLASSES.get(name, ""))
    if lr_free is not None:
        return lr_free
    if name in MEASURED_LOW:
        low, high = MEASURED_LOW[name]
        return (f"{name}: the rule was fitted on Adam; on lrlab's benchmark pairs with {name} it lay "
                f"{low:g}x to {high:g}x below the best LR: check it with a sweep over a wider range (lrlab tune)")  # fmt: skip
    return (f"{name} is not among the optimizers the rule was fitted or checked on ({', '.join(CHECKED_OPTIMIZERS)}): "
            "check the LR with a short sweep")  # fmt: skip


def default_rule(sgd: bool, regression: bool = False) -> tuple[str, str]:
    """The default rule and its reason: for the SGD family (``sgd=True``) or for any other,
    adaptive, optimizer. ``regression=True`` (a regression loss: mean squared or absolute
    error, Huber, smooth L1) keeps the rule and adds ``REGRESSION_NOTE`` to the reason.

    >>> default_rule(True)[0], default_rule(False)[0], default_rule(True, regression=True)[0]
    ('minimum/7', 'minimum/30', 'minimum/7')
    """
    rule, reason = (DEFAULT_RULE_SGD, DEFAULT_REASON_SGD) if sgd else (DEFAULT_RULE, DEFAULT_REASON)
    return rule, f"{reason}; {REGRESSION_NOTE}" if regression else reason


def trim(n: int, *, skip_start: int | None = None, skip_end: int | None = None) -> slice:
    """The part of an ``n``-point curve the rules look at.

    By default the first ``n // 10`` points (the EMA is still settling) and the last 5
    (the divergence) are dropped, as fastai does; never more than would leave 3 points.

    >>> trim(100)
    slice(10, 95, None)
    >>> trim(6)
    slice(0, 3, None)
    """
    start = n // 10 if skip_start is None else skip_start
    end = 5 if skip_end is None else skip_end
    if start < 0 or end < 0:
        raise ValueError(f"skip_start and skip_end must be >= 0, got {start} and {end}")
    while n - start - end < 3 and (start > 0 or end > 0):
        if end >= start and end > 0:
            end -= 1
        else:
            start -= 1
    return slice(start, n - end)


def suggest_all(
    lrs: Sequence[float],
    smoothed: Sequence[float],
    rules: Mapping[str, Rule] | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int | None = None,
) -> dict[str, float]:
    """Every rule's suggestion on the trimmed smoothed curve; a rule that cannot decide
    (too few finite points) is left out.

    >>> lrs = np.logspace(-5, 1, 61)
    >>> loss = 2.0 - np.tanh(np.log10(lrs) + 2.5) + np.exp(3 * (np.log10(lrs) + 0.2))
    >>> {k: round(v, 6) for k, v in suggest_all(lrs, loss).items()}
    {'steepest': 0.003162, 'valley': 0.001259, 'minimum/10': 0.007943, 'minimum/3': 0.026478, 'minimum/30': 0.002648, 'minimum/7': 0.011348}
    """
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(smoothed, dtype=np.float64)
    window = trim(len(lr), skip_start=skip_start, skip_end=skip_end)
    out: dict[str, float] = {}
    for name, rule in (RULES if rules is None else rules).items():
        try:
            out[name] = rule(lr[window], loss[window])
        except ValueError:
            continue
    return out


def cyclic_bounds(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, float]:
    """``(base_lr, max_lr)`` for cyclic and one-cycle schedules, after Smith (2017).

    ``max_lr`` is the LR at the lowest smoothed loss, where the curve stops falling and
    turns ragged; ``base_lr`` is a quarter of it (Smith, "Cyclical Learning Rates for
    Training Neural Networks", section 3.3: base_lr 1/3 or 1/4 of max_lr).

    >>> lrs = np.logspace(-4, 0, 9)
    >>> cyclic_bounds(lrs, [2.0, 1.99, 1.9, 1.5, 0.9, 0.7, 0.65, 0.8, 3.0])
    (0.025, 0.1)
    """
    lr, loss = _finite_curve(lrs, losses, at_least=1)
    max_lr = float(lr[lowest_index(loss)])
    return max_lr / 4.0, max_lr


# --- the article's halving search: its decision rule -------------------------------------


def decreases_steadily(pass_losses: Sequence[float], *, min_drop: float = 0.02) -> bool:
    """Whether a short trial training "behaves": its loss falls pass after pass.

    ``pass_losses`` are the mean losses of successive passes over the same small data
    subset. The trial behaves when every value is finite, no pass is worse than the one
    before, and the last pass is at least ``min_drop`` (relative) below the first, so a
    loss that does not move at all does not count as decreasing.

    >>> decreases_steadily([2.3, 1.9, 1.6, 1.4])
    True
    >>> decreases_steadily([2.3, 1.9, 2.1, 1.4])   # a bounce: the LR is still too large
    False
    >>> decreases_steadily([2.3, 2.3, 2.299, 2.299])  # barely moves
    False
    """
    if not 0.0 <= min_drop < 1.0:
        raise ValueError(f"min_drop must be in [0, 1), got {min_drop}")
    values = np.asarray(pass_losses, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"pass_losses needs at least 2 values, got {values.size}")
    if not np.all(np.isfinite(values)):
        return False
    if np.any(np.diff(values) > 0):
        return False
    return bool(values[-1] <= values[0] - min_drop * abs(values[0]))


def halving_pick(trials: Sequence[tuple[float, Sequence[float]]], *, min_drop: float = 0.02) -> float | None:
    """The first LR, in the order tried (large to small), whose trial decreases steadily.

    ``trials`` are ``(lr, pass_losses)`` pairs; None when no trial behaved.

    >>> halving_pick([(1.0, [2.3, 9.0]), (0.5, [2.3, 1.8, 2.0]), (0.25, [2.3, 1.7, 1.2])])
    0.25
    """
    for lr, pass_losses in trials:
        if decreases_steadily(pass_losses, min_drop=min_drop):
            return float(lr)
    return None


# --- what the curve can and cannot tell ---------------------------------------------------

# Fewer finite points than this in the part of the curve the rules read: too few to read.
MIN_POINTS = 10
# A smoothed loss that never falls by more than this fraction of its starting value is flat.
FLAT_DROP = 0.02
# Where the curve cannot tell, the LR recommended is the optimizers' conventional default.
SAFE_LR_SGD = 1e-2
SAFE_LR_ADAPTIVE = 1e-3


@dataclass(frozen=True)
class CurveVerdict:
    """What ``read_curve`` makes of a range test.

    ``minimum``: the LR at the lowest smoothed loss (NaN without finite points);
    ``problem``: one line saying why the curve cannot give a trustworthy answer and what to
    try (None when it can); ``fallback``: ``(rule, lr, reason)`` to recommend instead of the
    default rule (None: use the default); ``note``: a remark to add to the reason.
    """

    minimum: float
    problem: str | None = None
    fallback: tuple[str | None, float, str] | None = None
    note: str | None = None


def read_curve(
    lrs: Sequence[float], smoothed: Sequence[float], *, diverged: bool, sgd: bool, end_lr: float | None = None
) -> CurveVerdict:
    """Whether a range test's smoothed curve can be read, and if not, what to do instead.

    - every LR diverged (too few finite points and the test stopped at divergence): no LR;
    - too few points (a test shorter than ``MIN_POINTS`` steps in the window): flagged;
    - flat (the loss never fell by ``FLAT_DROP`` = 2 %): the conventional default LR
      (``SAFE_LR_SGD`` = 0.01 for SGD, ``SAFE_LR_ADAPTIVE`` = 0.001 for adaptive optimizers);
    - never turning up (lowest loss in the last tenth, no divergence): the default rule,
      whose LR then lies a factor below the end of the test (the edge is further up).

    >>> lrs = np.logspace(-5, 1, 60)
    >>> read_curve(lrs, np.full(60, 2.3), diverged=False, sgd=True).fallback[1]
    0.01
    >>> read_curve(lrs, np.linspace(3, 1, 60), diverged=False, sgd=True).note[:28]
    'the curve never turned up: t'
    """
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(smoothed, dtype=np.float64)
    window = trim(len(lr))
    lr, loss = lr[window], loss[window]
    keep = np.isfinite(loss)
    count = int(keep.sum())
    lr, loss = lr[keep], loss[keep]
    low = lowest_index(loss) if count else 0
    minimum = float(lr[low]) if count else math.nan
    if count < MIN_POINTS:
        return _too_short(minimum, lr, count, diverged)
    # How far the loss fell: from where it started, or (when the start was the smoothing's
    # memory of lucky first batches, see lowest_index) from the curve's median level.
    first = float(loss[0]) if low == int(np.argmin(loss)) else float(np.median(loss))
    drop = (first - float(loss[low])) / max(abs(first), 1e-12)
    if drop < FLAT_DROP and not diverged:
        return _flat(minimum, lr, drop, sgd)
    return CurveVerdict(minimum, note=_remark(minimum, lr, loss, low, diverged, end_lr))


def _too_short(minimum: float, lr: np.ndarray, count: int, diverged: bool) -> CurveVerdict:
    """Fewer than ``MIN_POINTS`` finite points: every LR diverged, or the test was too short."""
    if diverged:
        where = f" (by LR {lr[-1]:.3g})" if count else ""
        return CurveVerdict(
            minimum,
            problem=f"the loss diverged within the first steps{where}: every LR tried was too large; "
            "lower start_lr (e.g. 1e-9) and check the loss and the data",
            fallback=(None, math.nan, "no rule could decide: the loss diverged almost at once"),
        )
    return CurveVerdict(
        minimum,
        problem=f"only {count} usable steps in the range test, too few to read the curve "
        f"(at least {MIN_POINTS}); raise num_iter (100 is the default)",
    )


def _flat(minimum: float, lr: np.ndarray, drop: float, sgd: bool) -> CurveVerdict:
    """A curve that never fell by ``FLAT_DROP``: the conventional default LR instead."""
    safe = SAFE_LR_SGD if sgd else SAFE_LR_ADAPTIVE
    family = "SGD" if sgd else "adaptive optimizers"
    return CurveVerdict(
        minimum,
        problem=f"the loss barely moved over the test ({drop:.1%} from LR {lr[0]:.3g} to {lr[-1]:.3g}): "
        "the range test cannot tell; check that the model learns (the loss has gradients, the "
        "targets are right) or widen start_lr..end_lr",
        fallback=("safe", safe, f"fallback: flat curve, so the conventional default for {family} ({safe:g})"),
    )


def _remark(
    minimum: float, lr: np.ndarray, loss: np.ndarray, low: int, diverged: bool, end_lr: float | None
) -> str | None:
    """A readable curve's remark: its minimum read past a lucky start, or never turning up."""
    if low > 0 and low != int(np.argmin(loss)):
        return (
            f"the lowest smoothed loss sat at the start of the test (LR {lr[0]:.3g}), where the model had "
            f"barely moved: the average of the first, noisy batches; the minimum is read from the dip at LR "
            f"{minimum:.3g} instead"
        )
    if not diverged and low >= int(0.9 * (len(loss) - 1)):
        top = f"{end_lr:.3g}" if end_lr is not None else f"{lr[-1]:.3g}"
        return (
            f"the curve never turned up: the lowest loss is at the end of the test, so the edge of "
            f"stability lies beyond {top} and this LR errs low; raise end_lr to see it"
        )
    return None


# --- the confirmation step: a few candidates trained briefly -----------------------------

# Steps each candidate trains for when ``find_lr`` confirms (0: no confirmation).
DEFAULT_CONFIRM_STEPS = 0
# The candidates, as divisors of the LR at the range test's lowest smoothed loss.
CONFIRM_DIVISORS_SGD: tuple[float, ...] = (3.0, 10.0, 30.0)
CONFIRM_DIVISORS_ADAPTIVE: tuple[float, ...] = (10.0, 30.0, 100.0)


def confirm_candidates(minimum: float, sgd: bool) -> list[float]:
    """The LRs the confirmation step trains: the range test's minimum over each divisor of
    the family, largest LR first.

    >>> confirm_candidates(1.0, True)
    [0.3333333333333333, 0.1, 0.03333333333333333]
    """
    if not (math.isfinite(minimum) and minimum > 0):
        raise ValueError(f"minimum must be a finite LR > 0, got {minimum!r}")
    divisors = CONFIRM_DIVISORS_SGD if sgd else CONFIRM_DIVISORS_ADAPTIVE
    return [minimum / d for d in sorted(divisors)]


def confirm_pick(lrs: Sequence[float], scores: Sequence[float]) -> float | None:
    """The candidate with the lowest finite score (a held-back loss); None if none is finite.
    On an exact tie the smaller LR wins (the safer one).

    >>> confirm_pick([0.3, 0.1, 0.03], [1.2, 0.9, 0.9])
    0.03
    >>> confirm_pick([0.3, 0.1], [float("inf"), float("nan")]) is None
    True
    """
    if len(lrs) != len(scores):
        raise ValueError(f"lrs and scores differ in length: {len(lrs)} != {len(scores)}")
    best: tuple[float, float] | None = None
    for lr, score in zip(lrs, scores):
        if not math.isfinite(score):
            continue
        if best is None or score < best[1] or (score == best[1] and lr < best[0]):
            best = (float(lr), float(score))
    return None if best is None else best[0]


def confirm_reason(lr: float, candidates: Sequence[float], minimum: float, steps: int, sgd: bool) -> str:
    divisors = CONFIRM_DIVISORS_SGD if sgd else CONFIRM_DIVISORS_ADAPTIVE
    family = "SGD" if sgd else "adaptive optimizers"
    return (
        f"confirmed: of minimum/{', /'.join(f'{d:g}' for d in sorted(divisors))} "
        f"({', '.join(f'{c:.3g}' for c in candidates)}; minimum {minimum:.3g}), each trained {steps} steps "
        f"on the same batches, {lr:.3g} had the lowest loss on held-back batches (default for {family})"
    )
