"""Benchmark: ``bench_transfer``'s width ladders at four times the scale.

Does the law's error 8x beyond the proxies shrink when the proxies are larger? Five of
``bench_transfer``'s ladders are run again with every scale x4 and nothing else changed (the
same tasks, optimizers, schedules, epochs, seeds and protocol, ``bench_transfer.run_ladder``):

- MLP width, standard parametrization and μP (MNIST-1D): proxies 64, 128, 256 -> 2048
  (fixed 2026-12-07 16:00 UTC, before any result at this scale was read);
- CNN channels (digits): 4, 8, 16 -> 128, and the character transformer's d_model
  (AdamW, warmup-cosine): 32, 64, 128 -> 1024 (fixed 16:05 UTC, after the first MLP
  ladder's result had been read and before the others');
- the run-length ladder (digits MLP, Adam, cosine) at x4 the epochs: proxies 4, 8, 16 epochs
  -> 128 (fixed 16:38 UTC, after the four width ladders had been read).

The batch-size ladder has no x4: its target batch of 2048 would exceed the digits' training set.

Results go to ``docs/benchmarks.md`` beside the small ladders' numbers, with the same bars.
Every run is stored in ``lrlab-runs/bench-transfer-scale.db`` (a killed run resumes); the
docs' numbers are kept in ``benchmarks/bench_transfer_scale.json`` (``--docs-only``).

Run: ``nice -n 5 python -m benchmarks.bench_transfer_scale`` (about 30-40 minutes on two
shared cores, most of it the targets' grids).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from benchmarks/: the package is the folder above
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section
from benchmarks.bench_transfer import (
    CACHE as SMALL_CACHE,
)
from benchmarks.bench_transfer import (
    Ladder,
    digits_mlp64,
    gap_cell,
    judge,
    mnist1d_mlp,
    run_stored,
    small_cnn,
    small_transformer,
    summary,
)
from lrlab.files import write_text

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / "bench_transfer_scale.json"
STORE = ROOT / "lrlab-runs" / "bench-transfer-scale.db"

LADDERS = (
    Ladder("mlp-sp-large", "MLP width, standard parametrization (MNIST-1D)", mnist1d_mlp, "width", (64, 128, 256),
           2048, epochs=6),
    Ladder("mlp-mup-large", "MLP width, μP (MNIST-1D)", mnist1d_mlp, "width", (64, 128, 256), 2048, epochs=6,
           parametrization="mup"),
    Ladder("cnn-large", "CNN channels (digits)", small_cnn, "channels", (4, 8, 16), 128, epochs=6),
    Ladder("transformer-large", "Character transformer width, AdamW + warmup-cosine", small_transformer, "d_model",
           (32, 64, 128), 1024, optimizer="adamw", schedule="warmup-cosine", epochs=4, batch_size=16),
    Ladder("steps-large", "Run length (digits MLP, epochs)", digits_mlp64, "steps", (4, 8, 16), 128),
)  # fmt: skip
SUFFIX = "-large"  # a ladder here is bench_transfer's of the same name without it


def _cell(j: dict[str, Any] | None) -> tuple[str, str, str, str]:
    """From a judged target: ratio to its optimum, the gap there, reuse's ratio, proxies' cost (or '-')."""
    if j is None:
        return "-", "-", "-", "-"
    ratio, reuse = j["ratios"]["predicted"], j["ratios"]["reuse"]
    return f"x{ratio:.2f}", gap_cell(j, "predicted"), f"x{reuse:.2f}", f"{j['cost_ratio']:.1f}"


def _mean_error(judged: list[dict[str, Any]]) -> float:
    """The mean size of the law's error in octaves."""
    return sum(abs(math.log2(j["ratios"]["predicted"])) for j in judged) / len(judged)


def render(rows: list[dict[str, Any]], small: dict[str, Any]) -> str:
    """Each ladder at x4 beside itself at x1, then the bars over the x4 ladders."""
    lines = [
        "| ladder | proxies -> target (x4) | predicted / target's optimum: x4 (x1) | gap at predicted: x4 (x1) | "
        "reuse largest proxy: x4 (x1) | proxies' cost / one target run: x4 (x1) |",
        "|---|---|---|---|---|---|",
    ]
    judged = [(row, judge(row)) for row in rows]
    before = {
        row["ladder"]: judge(small[name])
        for row in rows
        if (name := row["ladder"].removesuffix(SUFFIX)) in small
    }
    for row, j in judged:
        big, little = _cell(j), _cell(before.get(row["ladder"]))
        lines.append(
            f"| {row['title']} | {row['axis']} {','.join(map(str, row['proxies']))} -> {row['target']} | "
            + " | ".join(f"{b} ({s})" for b, s in zip(big, little, strict=True))
            + " |"
        )
    words = f"Mean size of the law's error on these {len(rows)} ladders: "
    words += f"{_mean_error([j for _, j in judged]):.2f} octaves at x4, " + (
        f"{_mean_error(list(before.values())):.2f} at x1."
        if len(before) == len(rows)
        else "(the x1 ladders are not all cached)."
    )
    return "\n".join(
        [*lines, "", words, "", "The bars over the x4 ladders:", "", *summary(judged, form=False)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this ladder (repeatable)")
    parser.add_argument("--docs-only", action="store_true", help="rewrite the docs from the cache")
    args = parser.parse_args()
    cached = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    if not args.docs_only:
        run_stored(LADDERS, STORE, cached, CACHE, args.only)
    rows = [cached[ladder.name] for ladder in LADDERS if ladder.name in cached]
    small = json.loads(SMALL_CACHE.read_text()) if SMALL_CACHE.exists() else {}
    head = (
        "## bench_transfer at four times the scale\n\n"
        "Five of `bench_transfer`'s ladders with every scale x4 (widths, channels, epochs) and nothing else changed "
        "(tasks, optimizers, schedules, seeds, protocol); beside each number in brackets, the same ladder at its "
        "original scale. The width ladders were fixed before any result at this scale was read, the run-length "
        "ladder after the width ladders' results (`benchmarks/bench_transfer_scale.py`); the batch-size ladder has "
        "no x4 (a batch of 2048 exceeds its training set).\n\n"
    )
    body = render(rows, small)
    write_section("bench_transfer_scale", head + body)
    write_text(CACHE, json.dumps(cached, indent=1, default=float) + "\n")
    print(body)


if __name__ == "__main__":
    main()
