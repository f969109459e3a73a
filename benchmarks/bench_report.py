"""Report benchmark: a report of a study-shaped sweep of 540 runs x 10^4 steps, its time
and page size.

The store is a real SQLite file filled through the store's writer API with a synthetic but
realistic sweep (``tests/report/synthetic.py``, ``study_sweep``: 3 optimizers x the study's 9
schedules x 10 LRs x 2 seeds, 10 epochs of 1000 steps, the largest LRs diverging, one range
test per optimizer); it is cached in ``lrlab-runs/`` so that a re-run only times the report.
Timed: reading the sweep from the store, then diagnostics and downsampling (the two parts
of ``load_report_data``, told apart by its progress callback, whose last call comes when
every run's steps are read), the HTML page; separately, the PNG of every figure.

Run: ``python -m benchmarks.bench_report`` (writes the "report" section of
docs/benchmarks.md). ``--quick`` uses 54 runs of 1000 steps.
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


def build_store(path: Path, quick: bool) -> tuple[int, int]:
    from tests.report.synthetic import save_to_store, study_sweep

    from lrlab.store.sqlite import Store

    if quick:
        sweep = study_sweep(lrs=(0.1, 0.6), seeds=(0,), epochs=10, steps_per_epoch=100, sweep="bench")
    else:
        lrs = tuple(float(x) for x in np.geomspace(0.003, 1.0, 10))
        sweep = study_sweep(lrs=lrs, seeds=(0, 1), epochs=10, steps_per_epoch=1000, sweep="bench")
    store = Store(path)
    save_to_store(store, sweep, "bench")
    store.close()
    return len(sweep.runs), sum(len(s) for s in sweep.steps.values())


def cached_store(quick: bool) -> tuple[Path, int, int, float]:
    """The benchmark's store, built once into lrlab-runs/ (its size in a side file)."""
    root = Path(__file__).resolve().parent.parent / "lrlab-runs"
    root.mkdir(exist_ok=True)
    db = root / ("bench_report_quick.db" if quick else "bench_report.db")
    meta = db.with_suffix(".txt")
    if db.exists() and meta.exists():
        runs, rows, fill = meta.read_text().split()
        return db, int(runs), int(rows), float(fill)
    for stale in (db, meta):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    runs, rows = build_store(db, quick)
    fill = time.perf_counter() - start
    meta.write_text(f"{runs} {rows} {fill:.1f}")
    return db, runs, rows, fill


def timed_report(db: Path, out: Path, png: Path | None) -> tuple[float, float, float, float, int]:
    """Seconds to read the sweep, to diagnose and downsample it, to write the HTML page and
    the PNGs (0 without ``png``), and the page's size in bytes."""
    from lrlab.report import load_report_data, write_report
    from lrlab.store.sqlite import Store

    read_at = [0.0]

    def progress(done: int, total: int) -> None:
        read_at[0] = time.perf_counter()  # the last call: every run's steps are read

    start = time.perf_counter()
    data = load_report_data(Store(db), sweep="bench", progress=progress)
    loaded = time.perf_counter()
    write_report(data, out)
    html = time.perf_counter()
    if png is not None:
        write_report(data, None, image_dir=png)
    done = time.perf_counter()
    return read_at[0] - start, loaded - read_at[0], html - loaded, done - html, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="54 runs of 1000 steps, one repetition")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    db, runs, rows, fill = cached_store(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        timed_report(db, tmp_path / "warm.html", None)  # imports (plotly, sqlite pages) warm
        results = [timed_report(db, tmp_path / f"r{i}.html", None) for i in range(repeats)]
        png = timed_report(db, tmp_path / "png.html", tmp_path / "png")
    from lrlab.report.data import points_per_run

    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    read = statistics.median(r[0] for r in results)
    build = statistics.median(r[1] for r in results)
    html = statistics.median(r[2] for r in results)
    total = statistics.median(r[0] + r[1] + r[2] for r in results)
    size = results[0][4]
    body = f"""## report (`benchmarks/bench_report.py`)

A report of a study-shaped sweep: **{runs} runs, {rows:,} step rows** (3 optimizers x 9
schedules x 10 LRs x 2 seeds, 10 epochs x 1000 steps per run; the largest LRs diverge) in a
real SQLite store filled through the writer API ({fill:.0f} s to fill, once). Median of
{repeats} after a warm-up:

| stage | seconds |
|---|---|
| read the sweep from the store (runs, epochs, every step) | {read:.2f} |
| diagnostics (on every step) + downsampling | {build:.2f} |
| HTML page (7 figures, plotly.js embedded once) | {html:.2f} |
| **report, total** | **{total:.2f}** |
| PNG of every figure (matplotlib, 150 dpi), on top | {png[3]:.2f} |

HTML size: **{size / 1e6:.2f} MB** (plotly.js itself is 4.8 MB; each step column of a run is
cut to at most {points_per_run(runs)} points by min/max buckets, which keep spikes and the
divergence point). The grey runs (those not in colour) of a panel are drawn as one line
trace (one matplotlib line collection in the PNG), not one per run; their hover text is per
point on the figures per epoch and one text for the whole bundle on the figures per step.
Load average during the run: {load_avg}.
"""
    print(body)
    if not args.quick:
        write_section("report", body)


if __name__ == "__main__":
    main()
