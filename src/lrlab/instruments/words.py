"""One line per instrument finding: the step, the evidence and what to change."""

from __future__ import annotations

import math

from lrlab.core.diagnostics import Finding
from lrlab.formatting import num
from lrlab.instruments.progress import STEADY_BLOCK

__all__ = [
    "audit_finding",
    "divergence_finding",
    "eval_mode_finding",
    "jump_finding",
    "probe_finding",
    "ratio_finding",
    "sharpness_finding",
    "slow_finding",
    "spike_finding",
    "times",
    "warmup_finding",
]

USUAL_RATIO = 1e-3  # the update-to-weight ratio of a healthy step

_WORDS = {
    2: "twice",
    3: "three times",
    10: "ten times",
    20: "twenty times",
    30: "thirty times",
    100: "a hundred times",
}


def times(factor: float) -> str:
    """A factor in words where it is round ("thirty times"), else in digits ("37x")."""
    if not math.isfinite(factor):
        return "infinitely many times"
    rounded = round(factor)
    if rounded in _WORDS and abs(factor - rounded) < 0.05 * rounded:
        return _WORDS[rounded]
    return f"{factor:.0f}x" if factor >= 10 else f"{factor:.2g}x"


def ratio_finding(step: int, group: str, ratio: float, high: bool) -> Finding:
    if high:
        factor = ratio / USUAL_RATIO
        advice = "lower the LR or warm up longer"
        what = f"{times(factor)} the usual {USUAL_RATIO:.0e}"
    else:
        factor = USUAL_RATIO / ratio if ratio > 0 else float("inf")
        advice = "the LR of this group is likely too small: raise it"
        what = f"{times(factor)} below the usual {USUAL_RATIO:.0e}"
    message = f"step {step}: the update ratio of group '{group}' is {ratio:.1e}, {what}: {advice}"
    return Finding.at_step(
        step, "update_ratio", message, {"group": group, "ratio": ratio, "usual": USUAL_RATIO, "high": high}
    )


def warmup_finding(
    step: int, early: float, later: float, early_steps: int, stall: tuple[float, float, float] | None = None
) -> Finding:
    """The first steps the largest of a run without warmup, and its loss stalled since: ``stall``
    (the loss's relative drop over the last third of the steps, how far it sits below the first
    loss, and that first loss) is the evidence of the stall."""
    drop, progress, first = stall if stall is not None else (math.nan, math.nan, math.nan)
    stalled = (
        f", and the loss then stalled: it fell by {drop:.1%} over the last third of the steps and sits only "
        f"{progress:.0%} below its first value of {first:.3g}"
        if stall is not None
        else ""
    )
    message = (
        f"step {step}: the first {early_steps} steps moved the weights by {early:.1e} of their size per step, "
        f"{times(early / later)} the {later:.1e} that followed, with no warmup{stalled}: warm up the LR over "
        "the first steps (a tenth of the run is common) or lower the peak LR"
    )
    evidence = {"early_ratio": early, "later_ratio": later, "early_steps": early_steps}
    return Finding.at_step(step, "warmup", message,
                           {**evidence, "loss_drop": drop, "loss_progress": progress, "first_loss": first})  # fmt: skip


def audit_finding(step: int, group: str, actual: float, intended: float, mult: float) -> Finding:
    ratio = actual / intended if intended else float("inf")
    if mult != 1.0 and abs(ratio - 1.0 / mult) < 0.01 / mult:
        cause = f"its lr_mult {num(mult)} was lost (a resume, or an optimizer rebuilt without it): restore it"
    else:
        cause = (
            "a scheduler stepped per epoch instead of per step, restarted from step 0 on a resume or built "
            "after its state was loaded, or a group's LR set apart from its multiplier: step the scheduler "
            "after every optimizer step, restore its state after building it, set group LRs through lr_mult"
        )
    message = (
        f"step {step}: group '{group}' trained at lr {num(actual)} where the schedule gives {num(intended)} "
        f"({num(ratio)}x the intended LR): {cause}"
    )
    return Finding.at_step(
        step, "lr_audit", message, {"group": group, "actual": actual, "intended": intended, "ratio": ratio}
    )


def spike_finding(step: int, loss: float, limit: float, rule: str, count: int) -> Finding:
    more = f" ({count} spikes so far)" if count > 1 else ""
    message = (
        f"step {step}: the loss {num(loss)} spiked above {num(limit)} ({rule}){more}: lower the LR, warm up "
        "longer or clip the gradient norm"
    )
    return Finding.at_step(
        step, "spike", message, {"loss": loss, "limit": limit, "rule": rule, "count": count}
    )


def sharpness_finding(step: int, value: float, limit: float, preconditioned: bool) -> Finding:
    what = "the preconditioned sharpness" if preconditioned else "the sharpness"
    message = (
        f"step {step}: {what} {num(value)} is {times(value / limit)} the stability limit {num(limit)} of this LR: "
        "the LR is past the edge of stability; lower it or decay it sooner"
    )
    return Finding.at_step(step, "sharpness", message,
                           {"sharpness": value, "limit": limit, "preconditioned": preconditioned})  # fmt: skip


def eval_mode_finding(step: int) -> Finding:
    message = (
        f"step {step}: evaluated with the schedule-free optimizer still in train mode (its weights at the "
        "gradient point, not the average): call optimizer.eval() before evaluating and optimizer.train() after"
    )
    return Finding.at_step(step, "eval_mode", message, {"train_mode": True})


def slow_finding(step: int, group: str, ratio: float, block_means: list[float]) -> Finding:
    """The LR too small: a small update ratio while the loss still falls steadily."""
    falls = ", ".join(num(m) for m in block_means)
    message = (
        f"step {step}: the loss is still falling steadily ({falls}, the means of the last three "
        f"{STEADY_BLOCK}-step blocks) with the LR at least half its peak and the update ratio of group "
        f"'{group}' at {ratio:.1e}, below the usual {USUAL_RATIO:.0e}: the LR is likely too small: raise it "
        "(a range test, `lrlab find`, says how far)"
    )
    return Finding.at_step(step, "lr_low", message, {"group": group, "ratio": ratio, "usual": USUAL_RATIO,
                                                      "block_means": block_means})  # fmt: skip


def divergence_finding(step: int, recent: list[float], first: float) -> Finding:
    """A run diverging: the loss rising step over step far above where it started."""
    rises = " -> ".join(num(v) for v in recent)
    message = (
        f"step {step}: the loss rose on each of the last {len(recent) - 1} steps ({rises}), "
        f"{num(recent[-1] / first)}x its first {num(first)}: the run is diverging; lower the LR, warm up "
        "longer or clip the gradient norm"
    )
    return Finding.at_step(step, "divergence", message, {"losses": recent, "first": first})


def probe_finding(step: int, median: float, probes: int, every: int) -> Finding:
    """The LR too small, read by the step probe: along each update the loss of the fixed batch
    keeps falling well beyond the step."""
    far = "with no bottom in sight" if not math.isfinite(median) else f"out to about {num(median)} updates"
    message = (
        f"step {step}: read along the optimizer's updates, the loss of a fixed batch keeps falling {far} "
        f"(the median of the last {probes} probes, every {every} steps; about 1 where the LR is well set): "
        "the steps are too short for the valley they cross; the LR is likely too small: raise it "
        "(a range test, `lrlab find`, says how far)"
    )
    return Finding.at_step(step, "lr_low", message, {"multiple": median, "probes": probes, "every": every})


def jump_finding(step: int, group: str, before: float, after: float) -> Finding:
    """The update of one step more than doubled, far above the usual: the run turning unstable."""
    message = (
        f"step {step}: the update ratio of group '{group}' jumped from {before:.2g} to {after:.2g} in one step, "
        f"{times(after / USUAL_RATIO)} the usual {USUAL_RATIO:.0e}: the run is turning unstable; lower the LR, "
        "warm up longer or clip the gradient norm"
    )
    return Finding.at_step(
        step, "update_ratio", message, {"group": group, "before": before, "ratio": after, "jump": True}
    )
