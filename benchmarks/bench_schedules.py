"""Schedules: lrlab vs torch's own schedulers.

1. ``lrlab.torch.LRScheduler.step()`` against torch's CyclicLR / OneCycleLR ``step()`` on
   the same optimizer (microseconds per call, best of several interleaved rounds).
2. Vectorised evaluation of 10**7 steps of every schedule family, against stepping torch's
   equivalent scheduler through the same steps (timed over 10**5 steps and extrapolated
   linearly: stepping costs the same at every step).

Run: ``python -m benchmarks.bench_schedules`` (writes its section of docs/benchmarks.md).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.optim import lr_scheduler as L

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section
from lrlab import schedules as S
from lrlab.torch import LRScheduler

EVAL_STEPS = 10**7
TORCH_STEPS = 10**5
STEP_CALLS = 50_000


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, float]:
    """Best (wall, cpu) seconds of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def sgd() -> torch.optim.SGD:
    param = torch.nn.Parameter(torch.zeros(16))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    optimizer.step()  # so that torch does not warn about the call order
    return optimizer


def stepper(scheduler: L.LRScheduler, steps: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(steps):
            scheduler.step()

    return run


# ------------------------------------------------------------------ step() cost

STEP_PAIRS = [
    (
        "cyclic (triangular)",
        lambda opt: L.CyclicLR(opt, base_lr=0.001, max_lr=0.1, step_size_up=2000, cycle_momentum=False),
        lambda opt: LRScheduler(opt, S.cyclic(0.001, 0.1, step_size=2000)),
    ),
    (
        "cyclic (exp_range, momentum cycled)",
        lambda opt: L.CyclicLR(
            opt, base_lr=0.001, max_lr=0.1, step_size_up=2000, mode="exp_range", gamma=0.99999
        ),
        lambda opt: LRScheduler(
            opt,
            S.cyclic(0.001, 0.1, step_size=2000, mode="exp_range", gamma=0.99999),
            momentum=S.cyclic(0.8, 0.9, step_size=2000),
        ),
    ),
    (
        "one_cycle",
        lambda opt: L.OneCycleLR(opt, max_lr=0.1, total_steps=10**7, cycle_momentum=False),
        lambda opt: LRScheduler(opt, S.one_cycle(0.1, total_steps=10**7)),
    ),
    (
        "one_cycle (momentum cycled)",
        lambda opt: L.OneCycleLR(opt, max_lr=0.1, total_steps=10**7),
        lambda opt: LRScheduler(
            opt,
            S.one_cycle(0.1, total_steps=10**7),
            momentum=S.sequence(
                [
                    S.cosine(0.95, total_steps=3 * 10**6, final_lr=0.85),
                    S.cosine(0.85, 7 * 10**6, final_lr=0.95),
                ],
                boundaries=[3 * 10**6],
            ),
        ),
    ),
]


def bench_step() -> str:
    rows = []
    for name, make_torch, make_lrlab in STEP_PAIRS:
        torch_best, lrlab_best = float("inf"), float("inf")
        theirs, ours = make_torch(sgd()), make_lrlab(sgd())
        for _ in range(5):  # interleaved rounds: both see the same machine load
            torch_best = min(torch_best, best_of(stepper(theirs, STEP_CALLS // 5), 1)[1])
            lrlab_best = min(lrlab_best, best_of(stepper(ours, STEP_CALLS // 5), 1)[1])
        per_call = 5 / STEP_CALLS * 1e6
        rows.append(
            f"| {name} | {torch_best * per_call:.2f} | {lrlab_best * per_call:.2f} | "
            f"{torch_best / lrlab_best:.2f}x |"
        )
    return "\n".join(
        [
            "### `lrlab.torch.LRScheduler.step()` vs torch's own `step()`",
            "",
            f"Same SGD optimizer, {STEP_CALLS:,} calls each, CPU µs per call (best of 5 interleaved rounds).",
            "",
            "| schedule | torch µs/step | lrlab µs/step | torch / lrlab (> 1: lrlab faster) |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )


# ------------------------------------------------------------------ 10**7 steps


def families() -> list[tuple[str, S.Schedule, str, Callable[[torch.optim.Optimizer], L.LRScheduler]]]:
    import transformers

    n = EVAL_STEPS
    return [
        (
            "constant",
            S.constant(0.1),
            "ConstantLR(factor=1)",
            lambda o: L.ConstantLR(o, factor=1.0, total_iters=0),
        ),
        ("step_decay", S.step_decay(0.1, 1000, 0.5), "StepLR", lambda o: L.StepLR(o, 1000, 0.5)),
        (
            "multistep",
            S.multistep(0.1, [n // 10, n // 3, 2 * n // 3]),
            "MultiStepLR",
            lambda o: L.MultiStepLR(o, [n // 10, n // 3, 2 * n // 3]),
        ),
        (
            "exponential",
            S.exponential(0.1, 0.9999999),
            "ExponentialLR",
            lambda o: L.ExponentialLR(o, 0.9999999),
        ),
        (
            "inverse_time",
            S.inverse_time(0.1, 0.5, 1000),
            "LambdaLR (torch has none)",
            lambda o: L.LambdaLR(o, lambda t: 1 / (1 + 0.5 * t / 1000)),
        ),
        ("polynomial", S.polynomial(0.1, n, power=2.0), "PolynomialLR", lambda o: L.PolynomialLR(o, n, 2.0)),
        ("linear", S.linear(0.001, 0.1, n), "LinearLR", lambda o: L.LinearLR(o, 0.01, 1.0, n)),
        ("cosine", S.cosine(0.1, n), "CosineAnnealingLR", lambda o: L.CosineAnnealingLR(o, n)),
        (
            "cosine_restarts",
            S.cosine_restarts(0.1, 1000, period_mult=2.0),
            "CosineAnnealingWarmRestarts",
            lambda o: L.CosineAnnealingWarmRestarts(o, 1000, 2),
        ),
        (
            "cyclic",
            S.cyclic(0.001, 0.1, 2000, step_size_down=3000, mode="exp_range", gamma=0.9999999),
            "CyclicLR",
            lambda o: L.CyclicLR(
                o, 0.001, 0.1, 2000, 3000, mode="exp_range", gamma=0.9999999, cycle_momentum=False
            ),
        ),
        (
            "one_cycle",
            S.one_cycle(0.1, n, three_phase=True),
            "OneCycleLR",
            lambda o: L.OneCycleLR(o, 0.1, total_steps=n, three_phase=True, cycle_momentum=False),
        ),
        (
            "inverse_sqrt",
            S.inverse_sqrt(0.1, 4000),
            "transformers get_inverse_sqrt_schedule",
            lambda o: transformers.get_inverse_sqrt_schedule(o, 4000),
        ),
        (
            "wsd",
            S.wsd(0.1, n, n // 100, n // 5, decay_shape="cosine"),
            "transformers get_wsd_schedule",
            lambda o: transformers.get_wsd_schedule(o, n // 100, n // 5, num_training_steps=n),
        ),
        (
            "warmup",
            S.warmup(S.cosine(0.1, n - n // 100), n // 100),
            "transformers get_cosine_schedule_with_warmup",
            lambda o: transformers.get_cosine_schedule_with_warmup(o, n // 100, n),
        ),
        (
            "sequence",
            S.sequence([S.constant(0.1), S.linear(0.1, 0.01, n // 10), S.constant(0.01)], [n // 10, n // 5]),
            "SequentialLR(ConstantLR, LinearLR, ConstantLR)",
            lambda o: L.SequentialLR(
                o,
                [
                    L.ConstantLR(o, factor=1.0, total_iters=0),
                    L.LinearLR(o, 1.0, 0.1, n // 10),
                    L.ConstantLR(o, factor=1.0, total_iters=0),
                ],
                milestones=[n // 10, n // 5],
            ),
        ),
    ]


def torch_values(make: Callable, steps: int) -> np.ndarray:
    optimizer = sgd()
    scheduler = make(optimizer)
    values = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps - 1):
        scheduler.step()
        values.append(optimizer.param_groups[0]["lr"])
    return np.asarray(values)


def bench_vectorised() -> tuple[str, list[str]]:
    steps = np.arange(EVAL_STEPS, dtype=np.float64)
    rows, slow = [], []
    for name, schedule, torch_name, make in families():
        schedule(steps[:16])  # warm caches of lazily built numpy loops
        wall, cpu = best_of(lambda schedule=schedule: schedule(steps))
        optimizer = sgd()
        scheduler = make(optimizer)
        _torch_wall, torch_cpu = best_of(stepper(scheduler, TORCH_STEPS), 1)
        extrapolated = torch_cpu * EVAL_STEPS / TORCH_STEPS
        # Same numbers? (first 3000 steps; torch's recursive schedulers carry rounding)
        check = 3000
        ours = schedule(steps[:check])
        theirs = torch_values(make, check)
        rel = float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)))
        if max(wall, cpu) >= 1.0:
            slow.append(name)
        rows.append(
            f"| {name} | {wall:.3f} | {cpu:.3f} | {torch_name} | {extrapolated:.1f} | "
            f"{extrapolated / cpu:,.0f}x | {rel:.1e} |"
        )
    table = "\n".join(
        [
            f"### Vectorised evaluation of {EVAL_STEPS:,} steps vs stepping torch's equivalent scheduler",
            "",
            f"lrlab: `schedule(np.arange({EVAL_STEPS:.0e}))`, best of 3, wall and CPU seconds. "
            f"torch: `scheduler.step()` timed over {TORCH_STEPS:,} steps (CPU) and **extrapolated** "
            f"linearly to {EVAL_STEPS:,}. The last column compares the two over the first 3,000 steps "
            "(max relative difference; transformers' LambdaLR schedules and SequentialLR are the "
            "closest torch-side equivalents, not the same code).",
            "",
            "| family | lrlab wall s | lrlab CPU s | torch equivalent | torch CPU s (extrapolated) | "
            "torch / lrlab | max rel. diff |",
            "|---|---:|---:|---|---:|---:|---:|",
            *rows,
        ]
    )
    return table, slow


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    step_table = bench_step()
    print(step_table, flush=True)
    eval_table, slow = bench_vectorised()
    print(eval_table, flush=True)
    verdict = (
        "Every family evaluates 10^7 steps in under 1 s (wall and CPU)."
        if not slow
        else f"Over 1 s in this run: {', '.join(slow)} (see the wall/CPU columns; the machine is shared)."
    )
    body = "\n\n".join(
        [
            "## Schedules (`benchmarks/bench_schedules.py`)",
            step_table,
            eval_table,
            verdict,
            "The machine is shared with other jobs (2 cores); CPU time is the steadier measure, and "
            "ratios are taken within one run.",
        ]
    )
    write_section("schedules", body)


if __name__ == "__main__":
    main()
