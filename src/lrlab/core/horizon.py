"""The horizon law: how the optimal peak LR moves when a run is longer than the one studied.

A study trains short runs; ``UserStudy.schedule_for(total_steps)`` and the study's code
stretch its schedule to the user's run. Whether the LR may stay as it is was measured, not
assumed: on the run-length ladder of ``benchmarks/bench_horizon.py`` (the study's task,
x1 to x16 the study's run, each rung's optimum bracketed over seeds) the optimum moves as
``length ** slope``. This module holds that measurement (the same numbers as its section of
``docs/benchmarks.md``; a test keeps them equal) and the rule read from it:

- when the slope's 80% interval contains 0, the LR is **kept** (the ladder cannot tell the
  optimum moved), and the advice says by how much it moved from x1 to x16, with its interval;
- otherwise the LR is **corrected** by ``(total_steps / study_steps) ** slope``, with the
  interval of that factor.

A run longer than the longest rung measured is outside what was measured: the advice says so
in one line (``warning``). Pure numbers, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HORIZON", "HorizonAdvice", "HorizonLaw", "horizon_advice"]


@dataclass(frozen=True)
class HorizonLaw:
    """``LR* ~ length ** slope`` over run lengths x1..x``longest``, with the slope's 80%
    interval, and where it was measured."""

    slope: float
    slope_low: float
    slope_high: float
    longest: float
    measured_on: str

    @property
    def kept(self) -> bool:
        """Whether the rule keeps the LR: the slope's interval contains 0."""
        return self.slope_low <= 0.0 <= self.slope_high

    def moved(self, ratio: float) -> tuple[float, float, float]:
        """How far the optimum moves over a run ``ratio`` times longer: factor, low, high."""
        ends = sorted((ratio**self.slope_low, ratio**self.slope_high))
        return ratio**self.slope, ends[0], ends[1]


HORIZON = HorizonLaw(
    slope=-0.0359,
    slope_low=-0.1139,
    slope_high=0.0434,
    longest=16.0,
    measured_on="digits-mlp, adam, cosine, x1 = 3 epochs: benchmarks/bench_horizon.py",
)
"""The law measured on the run-length ladder (docs/benchmarks.md, section ``horizon``)."""


@dataclass(frozen=True)
class HorizonAdvice:
    """What happens to the study's LR on a run ``ratio`` times the study's length: the LR is
    multiplied by ``factor`` (1 when kept) with the interval ``low``..``high``; ``reason``
    says which rule and why, ``warning`` (or None) that the run is longer than measured."""

    ratio: float
    factor: float
    low: float
    high: float
    kept: bool
    reason: str
    warning: str | None


def horizon_advice(
    study_steps: int, total_steps: int, law: HorizonLaw = HORIZON, *, measured: str = "the study's"
) -> HorizonAdvice:
    """The rule for stretching a study of ``study_steps`` to a run of ``total_steps``
    (``measured`` names what ran ``study_steps`` in the warning).

    >>> law = HorizonLaw(-0.02, -0.1, 0.06, 16.0, "a ladder")
    >>> advice = horizon_advice(600, 6000, law)
    >>> advice.kept, advice.factor, advice.warning
    (True, 1.0, None)
    >>> print(horizon_advice(600, 60000, law).warning)
    your run is x100 the study's, longer than the longest run length measured (x16): the LR rule is extrapolated
    """
    if study_steps < 1 or total_steps < 1:
        raise ValueError(f"study_steps and total_steps must be >= 1, got {study_steps} and {total_steps}")
    ratio = total_steps / study_steps
    moved, moved_low, moved_high = law.moved(law.longest)
    ladder = (
        f"on the run-length ladder the optimum moved by x{moved:.2g} [{moved_low:.2g}, {moved_high:.2g}] "
        f"from x1 to x{law.longest:g} ({law.measured_on})"
    )
    warning = None
    if ratio > law.longest:
        warning = (
            f"your run is x{ratio:.3g} {measured}, longer than the longest run length measured "
            f"(x{law.longest:g}): the LR rule is extrapolated"
        )
    if law.kept:
        return HorizonAdvice(
            ratio, 1.0, *sorted(law.moved(ratio)[1:]), True, f"the LR is kept: {ladder}", warning
        )
    factor, low, high = law.moved(ratio)
    reason = (
        f"the LR is scaled by x{factor:.3g} [{low:.3g}, {high:.3g}] for a run x{ratio:.3g} the study's: "
        f"LR* ~ length^{law.slope:.3f}; {ladder}"
    )
    return HorizonAdvice(ratio, factor, low, high, False, reason, warning)
