"""Experiments benchmarks: recording overhead, store write/read speed, --jobs throughput.

Run: ``python -m benchmarks.bench_experiments`` (writes the "experiments" section of
docs/benchmarks.md). ``--quick`` uses fewer repetitions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section

CONFIG = {
    "task": "digits-mlp",
    "optimizer": "sgd(momentum=0.9)",
    "schedule": "cosine(lr=0.1, total_steps=460)",
    "lr": 0.1,
    "seed": 0,
    "epochs": 20,
    "batch_size": 64,
}


def bare_loop() -> None:
    """The same training with no recording: what a user writes by hand."""
    from lrlab.optim.grammar import make_optimizer
    from lrlab.schedules import parse
    from lrlab.torch import LRScheduler
    from lrlab.training.tasks import get_task

    task = get_task(CONFIG["task"])
    model = task.make_model(CONFIG["seed"])
    model.train()
    optimizer = make_optimizer(CONFIG["optimizer"], model.parameters(), CONFIG["lr"])
    scheduler = LRScheduler(optimizer, parse(CONFIG["schedule"]))
    train = task.train_loader(CONFIG["batch_size"], CONFIG["seed"])
    val = task.val_loader(256)
    for _epoch in range(CONFIG["epochs"]):
        total, count = torch.zeros(()), 0
        for inputs, targets in train:
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
            count += 1
        task.evaluate(model, val)
        float(total) / count


def overhead(repeats: int, workdir: Path) -> tuple[float, float, float, float, float, int]:
    from lrlab.core.records import RunConfig
    from lrlab.store.sqlite import Store
    from lrlab.training.loop import train_run

    store = Store(workdir / "overhead.db")
    counter = iter(range(10**6))

    def recorded() -> None:
        train_run(RunConfig.from_dict(CONFIG), store, f"run-{next(counter)}")

    def cpu(fn) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    bare_loop(), recorded()  # warm up
    bare_times, recorded_times = [], []
    for _ in range(repeats):  # interleaved, so that load drifts hit both alike
        bare_times.append(cpu(bare_loop))
        recorded_times.append(cpu(recorded))
    steps = store.step_count("run-1")
    # Each pair ran back to back, under about the same load: the median of the pair ratios
    # is the most robust estimate on a shared machine.
    pair_ratio = statistics.median(r / b for r, b in zip(recorded_times, bare_times))
    return (min(bare_times), min(recorded_times), statistics.median(bare_times),
            statistics.median(recorded_times), pair_ratio, steps)  # fmt: skip


def write_rows(workdir: Path, total: int = 1_000_000, batch: int = 1000) -> tuple[float, float]:
    from lrlab.core.records import RunRecord
    from lrlab.store.sqlite import Store

    store = Store(workdir / "rows.db")
    runs = 100
    per_run = total // runs
    config = {"task": "bench", "lr": 0.1}
    store.create_runs([RunRecord(f"r{i}", "bench", "running", config, 0) for i in range(runs)])
    rows = [(s, 1 + s // 100, [0.1], 0.9, 2.0 - s * 1e-6, 1.0) for s in range(per_run)]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(runs):
        for offset in range(0, per_run, batch):
            store.append_metrics(f"r{i}", rows[offset : offset + batch])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert sum(store.step_count(f"r{i}") for i in range(runs)) == total
    return elapsed, cpu


def read_epochs(workdir: Path, runs: int = 100, epochs: int = 50) -> tuple[float, int]:
    from lrlab.core.records import EpochRecord, RunRecord
    from lrlab.store.sqlite import Store

    store = Store(workdir / "epochs.db")
    config = {"task": "bench", "lr": 0.1}
    store.create_runs([RunRecord(f"r{i}", "bench", "done", config, 0) for i in range(runs)])
    for i in range(runs):
        store.append_metrics(
            f"r{i}", epochs=[EpochRecord(f"r{i}", e, e * 23, 1.0 / e, 1.1 / e, 0.1, 0.9, float(e))
                             for e in range(1, epochs + 1)]
        )  # fmt: skip
    store.close()
    fresh = Store(workdir / "epochs.db")
    start = time.perf_counter()
    ids = [r.id for r in fresh.runs(sweep="bench")]
    by_run = fresh.epochs_for(ids)
    elapsed = time.perf_counter() - start
    return elapsed, sum(len(v) for v in by_run.values())


JOBS_SWEEP = {
    "name": "jobs-bench",
    "task": "digits-mlp",
    "epochs": 10,
    "batch_size": 64,
    "seeds": [0, 1, 2, 3],
    "grid": {"lr": [0.03, 0.1], "optimizer": ["sgd(momentum=0.9)"]},
}


def jobs_throughput(workdir: Path, jobs: int, attempt: int = 0) -> tuple[float, int]:
    from lrlab.store.sqlite import Store
    from lrlab.sweeps import run_sweep

    store = Store(workdir / f"jobs{jobs}-{attempt}.db")
    start = time.perf_counter()
    records = run_sweep(JOBS_SWEEP, store, jobs=jobs)
    elapsed = time.perf_counter() - start
    assert all(r.status == "done" for r in records)
    return elapsed, len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 3 if args.quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bare_min, rec_min, bare_med, rec_med, pair_ratio, steps = overhead(repeats, workdir)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        write_s, write_cpu = write_rows(workdir)
        read_s, read_rows = read_epochs(workdir)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        # Alternated and repeated: the best of each is the least disturbed by other load.
        one, two = [], []
        for attempt in range(2):
            one.append(jobs_throughput(workdir, 1, attempt))
            two.append(jobs_throughput(workdir, 2, attempt))
        one_s, n_runs = min(one)
        two_s, _ = min(two)
    over_min = 100 * (rec_min / bare_min - 1)
    over_med = 100 * (rec_med / bare_med - 1)
    body = f"""## Experiments (`benchmarks/bench_experiments.py`)

| measurement | result | target |
|---|---|---|
| recording overhead vs a bare PyTorch loop, digits-mlp, {CONFIG["epochs"]} epochs ({steps} steps), CPU time, median of {repeats} back-to-back pairs | {100 * (pair_ratio - 1):+.1f} % | <= 3 % |
| same, best of {repeats} each | {over_min:+.1f} % ({rec_min:.3f} s vs {bare_min:.3f} s) | |
| same, median of {repeats} each | {over_med:+.1f} % ({rec_med:.3f} s vs {bare_med:.3f} s) | |
| write 10^6 step rows (100 runs, batches of 1000), CPU time | {write_cpu:.2f} s ({1e6 / write_cpu:,.0f} rows/s) | < 5 s |
| same, wall time | {write_s:.2f} s | |
| read a 100-run sweep's epoch metrics ({read_rows} rows, one query) | {read_s * 1000:.1f} ms | < 1 s |
| sweep of {n_runs} digits-mlp runs ({JOBS_SWEEP["epochs"]} epochs), `--jobs 1`, best of 2 | {one_s:.1f} s ({60 * n_runs / one_s:.1f} runs/min) | |
| same sweep, `--jobs 2`, best of 2 | {two_s:.1f} s ({60 * n_runs / two_s:.1f} runs/min), {one_s / two_s:.2f}x | |

Overhead: the recorded run (`lrlab.training.loop.train_run`, writing into SQLite) and a
hand-written loop with the same task, model, optimizer, schedule and evaluation run
interleaved in one process with one torch thread; CPU time of the process, so that other
load on the machine weighs less. Recording adds per step: the LR of each group, momentum,
`loss.item()`, the gradient norm (one `_foreach_norm`), and one SQLite transaction (steps and
epochs together) about once a second or per 1000 steps. `--jobs 2` includes starting the two worker processes (forked on Linux).
Load average (1 min) before the store benchmarks {load_before:.1f}, before the `--jobs` runs
{load:.1f}, on {os.cpu_count()} cores shared with other work: wall times are inflated by that load,
CPU times much less so.
"""
    path = write_section("experiments", body)
    sys.stdout.write(body + f"\nwritten to {path}\n")


if __name__ == "__main__":
    main()
