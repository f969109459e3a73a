"""Live diagnostics of a tracked run (``live=True``): divergence, a stuck loss and an LR that
never decays, read from the steps recorded so far."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lrlab.core.diagnostics import stuck_check
from lrlab.core.records import StepSeries

__all__ = ["live_findings"]


def live_findings(
    history: Mapping[str, Sequence[float]],
    initial_loss: float | None,
    total_steps: int | None,
    final: bool = False,
    run_id: str = "live",
) -> list[tuple[str, str]]:
    """``(kind, message)`` for every live check that fires on ``history`` (the recorded
    ``step``, ``lr`` (the largest group's), ``loss`` and ``grad`` norm lists); ``final`` at
    the end of the run (the decay check then needs no planned length)."""
    if not history["loss"]:
        return []
    loss = np.asarray(history["loss"])
    lr = np.asarray(history["lr"])
    steps = np.asarray(history["step"], dtype=np.int64)
    findings = _divergence(steps, lr, loss, initial_loss)
    series = StepSeries(run_id, steps, np.ones_like(steps), lr, lr[:, None], np.full(len(lr), np.nan),
                        loss, np.asarray(history["grad"]))  # fmt: skip
    check = stuck_check(series)
    if check is not None and check.stuck:
        findings.append((
            "stuck",
            f"loss stalled with a high gradient norm since step {check.window_start_step}: it improved "
            f"{check.relative_drop:.1%} while the gradient norm stays {check.grad_ratio:.2f}x its early level "
            "(oscillating across a valley: a smaller LR, or a decaying schedule, should help)",
        ))  # fmt: skip
    findings += _no_decay(steps, lr, total_steps, final)
    return findings


def _divergence(
    steps: np.ndarray, lr: np.ndarray, loss: np.ndarray, initial_loss: float | None
) -> list[tuple[str, str]]:
    """A non-finite loss, or a recent loss twice the first one."""
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
        first = int(bad[0])
        return [("divergence",
                 f"the loss became non-finite at step {steps[first]} (lr={lr[first]:.3g}): the run diverged")]  # fmt: skip
    if initial_loss is not None and len(loss) >= 10:
        recent = float(np.median(loss[-10:]))
        if recent > 2.0 * initial_loss:
            return [(
                "divergence",
                f"divergence starting: the loss ({recent:.4g}, median of the last 10 steps) is "
                f"{recent / initial_loss:.1f}x its first value at step {steps[-1]} (lr={lr[-1]:.3g})",
            )]  # fmt: skip
    return []


def _no_decay(steps: np.ndarray, lr: np.ndarray, total_steps: int | None, final: bool) -> list[tuple[str, str]]:
    """Half-way through the planned run (or at its end), an LR still within 10% of its peak."""
    done = total_steps is not None and steps[-1] >= 0.5 * total_steps
    if not (done or final) or len(lr) < 40 or not np.all(np.isfinite(lr)):
        return []
    peak = float(lr.max())
    if peak > 0 and lr[-1] >= 0.9 * peak:
        where = f"{steps[-1]} of {total_steps} steps" if total_steps else f"the end ({steps[-1]} steps)"
        return [("decay", f"the LR never decays: still {lr[-1]:.3g} (peak {peak:.3g}) at {where}; "
                          "a cosine or step decay usually ends lower")]  # fmt: skip
    return []
