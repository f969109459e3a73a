"""The run-length ladder on the study's task: how far the optimal peak LR moves when the
study's run is stretched x1 to x16, the stretch ``UserStudy.schedule_for`` and the study's
code snippets apply to a user's longer run.

Fixed here before any result is read: the study's default task (``digits-mlp``, the README's
study) with Adam and a cosine schedule; x1 is the study's shortest run (3 epochs); the ladder
is x1, x2, x4, x8, x16 (3 to 48 epochs); each rung's optimum is bracketed by
``lrlab.transfer`` (``axis="steps"``: an octave grid around the range test's LR on x1, then
half-octave grids following the trend, extended until bracketed) with 3 seeds. Reported:
each rung's optimum with its 80% interval, the slope of log LR* against log run length with
its interval (the fit of ``lrlab.core.bracket.fit_power_law``), and what it means from x1 to
x16. ``lrlab.core.horizon`` holds these numbers (a test checks they equal this section).

Run: ``python -m benchmarks.bench_horizon [--jobs 2]``; the runs are kept in
``lrlab-runs/bench_horizon/``, so a re-run only trains what is missing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lrlab
from benchmarks._common import write_section
from lrlab.training.tasks import get_task

CACHE = Path("lrlab-runs/bench_horizon")
TASK = "digits-mlp"
OPTIMIZER = "adam"
SCHEDULE = "cosine"
X1_EPOCHS = 3
LADDER = (1, 2, 4, 8, 16)
SEEDS = 3


def digits_mlp():
    """The study's default task, as it trains in the README's study."""
    return get_task(TASK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    epochs = [X1_EPOCHS * x for x in LADDER]
    result = lrlab.transfer(digits_mlp, axis="steps", proxies=epochs, target=2 * epochs[-1], optimizer=OPTIMIZER,
                            schedule=SCHEDULE, seeds=SEEDS, store=CACHE / "runs.db", jobs=args.jobs,
                            vectorize=True, name="horizon-digits-mlp")  # fmt: skip
    wall = time.perf_counter() - started
    longest = LADDER[-1]
    slope, (low, high) = result.slope, result.slope_interval
    rows = "\n".join(
        f"| x{x} | {e} | {o.lr:.4g} | {o.low:.4g} to {o.high:.4g} | {len(o.lrs)} |"
        for x, e, o in zip(LADDER, epochs, result.proxies, strict=True)
    )
    kept = low <= 0 <= high
    rule = (
        "the slope's interval contains 0: the LR is kept when a study's schedule is stretched"
        if kept
        else "the slope's interval excludes 0: a stretched schedule's LR is corrected by the law"
    )
    body = f"""## The run-length ladder (`benchmarks/bench_horizon.py`)

The study's task ({TASK}, {OPTIMIZER}, {SCHEDULE}), x1 = {X1_EPOCHS} epochs ({result.proxy_steps[0]} steps),
each rung's optimum bracketed with {SEEDS} seeds (80% intervals):

| rung | epochs | optimum LR | 80% interval | LRs tried |
|---|---|---|---|---|
{rows}

LR* ~ length^{slope:.3f} (80% interval {low:.3f} to {high:.3f}): from x1 to x{longest} the optimum
moved by x{longest**slope:.2f} [{longest**low:.2f}, {longest**high:.2f}]; {rule}.
Wall time {wall:.0f} s (`--jobs {args.jobs}`).

`horizon-law: slope={slope:.4f} low={low:.4f} high={high:.4f} longest={longest}`
"""
    path = write_section("horizon", body)
    print(body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
