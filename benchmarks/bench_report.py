"""Report benchmark: a report for 100 runs x 10^4 steps (target: under 10 s), page size.

The store is a real SQLite file filled through the store's writer API with a synthetic but
realistic sweep (``tests/report/synthetic.py``: 10 LRs x 2 schedules x 5 seeds, 10 epochs of
1000 steps, one LR diverging). Timed: reading the sweep from the store, diagnostics,
downsampling and the HTML page; separately, the PNG of every figure.

Run: ``python -m benchmarks.bench_report`` (writes the "report" section of
docs/benchmarks.md). ``--quick`` uses 20 runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section


def build_store(path: Path, seeds: int) -> tuple[int, int]:
    from tests.report.synthetic import save_to_store, synthetic_sweep

    from lrlab.store.sqlite import Store

    lrs = tuple(float(x) for x in np.geomspace(1e-3, 2.0, 10))
    sweep = synthetic_sweep(
        lrs=lrs,
        seeds=tuple(range(seeds)),
        schedules=("constant(lr={lr})", "cosine(lr={lr}, total_steps={total_steps})"),
        epochs=10,
        steps_per_epoch=1000,
        sweep="bench",
    )
    store = Store(path)
    save_to_store(store, sweep, "bench")
    store.close()
    return len(sweep.runs), sum(len(s) for s in sweep.steps.values())


def timed_report(db: Path, out: Path, png: Path | None) -> tuple[float, float, float, int]:
    from lrlab.report import load_report_data, write_report
    from lrlab.store.sqlite import Store

    start = time.perf_counter()
    data = load_report_data(Store(db), sweep="bench")
    loaded = time.perf_counter()
    write_report(data, out)
    html = time.perf_counter()
    if png is not None:
        write_report(data, None, image_dir=png)
    done = time.perf_counter()
    return loaded - start, html - loaded, done - html, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 runs instead of 100, one repetition")
    args = parser.parse_args()
    seeds, repeats = (1, 1) if args.quick else (5, 3)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        db = tmp_path / "bench.db"
        t0 = time.perf_counter()
        runs, rows = build_store(db, seeds)
        fill = time.perf_counter() - t0
        timed_report(db, tmp_path / "warm.html", None)  # imports (plotly, sqlite pages) warm
        results = [timed_report(db, tmp_path / f"r{i}.html", None) for i in range(repeats)]
        png = timed_report(db, tmp_path / "png.html", tmp_path / "png")
    from lrlab.report.data import points_per_run

    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    load = statistics.median(r[0] for r in results)
    html = statistics.median(r[1] for r in results)
    size = results[0][3]
    body = f"""## report (`benchmarks/bench_report.py`)

A report for **{runs} runs, {rows:,} step rows** (10 epochs x 1000 steps per run; runs at the
largest LR diverge early) in a real SQLite store filled through the writer API
({fill:.1f} s to fill). Median of {repeats} after a warm-up:

| stage | seconds |
|---|---|
| read the sweep (runs, epochs, every step) + diagnostics + downsampling | {load:.2f} |
| HTML page (7 figures, plotly.js embedded once) | {html:.2f} |
| **report, total** (target < 10 s) | **{load + html:.2f}** |
| PNG of every figure (matplotlib, 150 dpi), on top | {png[2]:.2f} |

HTML size: **{size / 1e6:.2f} MB** (target < 10 MB; plotly.js itself is 4.8 MB; each step
column of a run is cut to at most {points_per_run(runs)} points by min/max buckets, which keep
spikes and the divergence point). Load average during the run: {load_avg}.
"""
    print(body)
    if not args.quick:
        write_section("report", body)


if __name__ == "__main__":
    main()
