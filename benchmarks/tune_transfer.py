"""Tuning ladders for ``lrlab.transfer``'s extrapolation: ladders that ``bench_transfer`` does not
use (other tasks, other axes, other optimizers), run with the same protocol (three proxies
spanning 4x, 2 seeds each; the target 8x beyond, its own optimum on a half-octave grid with 3
seeds), so that how far a law fitted on proxies misses 8x beyond them is measured apart from the
six benchmark ladders, and what the transfer does about it is chosen here, not on them.

What is read here, per ladder: the law's error at the target in octaves (log2 of predicted over
the target's grid optimum), the law's own 80 % half-width there, and the same errors for the
alternatives considered before any was chosen: reusing the largest proxy's optimum, and the law
with its slope shrunk toward 0 (factors 0.25, 0.5, 0.75).

A second set, ``CHECK``, was fixed after the first had been read, to test one rule the first
suggested before adopting it. On the first set every ladder whose proxies' optimum rose with
scale (a positive slope: digits MLP width with SGD, the batch-size ladder, the sunspots LSTM) had
its law overshoot the target's optimum by 0.9 to 4.6 octaves, where reusing the largest proxy's
optimum erred by 0.03 to 3.5; the one whose optimum fell (the character LSTM) had the law closer.
An LR that rose over the proxies did not keep rising 8x beyond them. The rule, written here
before any ``CHECK`` ladder ran: **cap** — beyond the largest proxy, predict the smaller of the
law's LR and the largest proxy's optimum. It is adopted only if on ``CHECK`` its mean absolute
error is below both the law's and reuse's.

Run: ``nice -n 5 python -m benchmarks.tune_transfer`` (runs in ``lrlab-runs/tune-transfer.db``,
a killed run resumes; the rows in ``benchmarks/tune_transfer.json``); ``--only NAME``;
``--analyse`` reads the cache only.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks._common import write_section
from benchmarks.bench_transfer import Ladder, mnist1d_mlp, run_stored
from lrlab.core.bracket import two_sided_z
from lrlab.training.tasks import Task
from lrlab.training.tasks.chars import chars_lstm
from lrlab.training.tasks.digits import digits_cnn, digits_linear, digits_mlp
from lrlab.training.tasks.series import sunspots_lstm

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "lrlab-runs" / "tune-transfer.db"
CACHE = Path(__file__).resolve().parent / "tune_transfer.json"
SHRINK = (0.25, 0.5, 0.75)
Z80 = two_sided_z(0.8)


INTRO = (
    "Ten ladders `bench_transfer` does not use (other tasks, axes and optimizers), in two sets, each with the "
    "same protocol: `lrlab.transfer` on three proxies spanning 4x (2 seeds each, optima bracketed), the target "
    "8x beyond the largest, its own optimum on a half-octave grid with 3 seeds. They measure how far the "
    "proxies' law misses 8x beyond them, apart from the six benchmark ladders; the extrapolation term of the "
    "transfer's interval (`lrlab.transfer.extrapolation`) is set from them alone. The second set (check) was "
    "fixed after the first had been read, to test one rule the first suggested (cap: beyond the largest proxy, "
    "the smaller of the law's LR and the largest proxy's optimum), written down before the second set ran."
)


def small_lstm(hidden: int = 16) -> Task:
    return chars_lstm(corpus_chars=60_000, block_size=16, train_size=256, val_size=64, hidden=hidden)


def series_lstm(hidden: int = 8) -> Task:
    return sunspots_lstm(hidden=hidden)


def digits_mlp_width(hidden: int = 16) -> Task:
    return digits_mlp(hidden=hidden)


def digits_cnn_width(channels: int = 2) -> Task:
    return digits_cnn(train_size=600, channels=channels)


def digits_mlp64_task() -> Task:
    return digits_mlp(hidden=64)


def mnist1d_width(width: int = 16) -> Task:
    return mnist1d_mlp(width)


def lstm_task() -> Task:
    return small_lstm(32)


def digits_linear_task() -> Task:
    return digits_linear()


def mnist1d_mlp64() -> Task:
    return mnist1d_mlp(64)


TUNING = (
    Ladder("t-digits-width-sgdm", "digits MLP width, SGD with momentum", digits_mlp_width, "hidden", (8, 16, 32),
           256, optimizer="sgdm", epochs=6),
    Ladder("t-lstm-width", "character LSTM width, Adam", small_lstm, "hidden", (8, 16, 32), 256, epochs=3,
           batch_size=16),
    Ladder("t-series-width", "sunspots LSTM width, Adam", series_lstm, "hidden", (4, 8, 16), 128, epochs=20),
    Ladder("t-mnist1d-batch", "MNIST-1D MLP batch size, Adam", mnist1d_mlp64, "batch_size", (32, 64, 128), 1024,
           epochs=4),
    Ladder("t-linear-steps", "digits linear run length, SGD with momentum", digits_linear_task, "steps", (1, 2, 4),
           32, optimizer="sgdm"),
)  # fmt: skip

CHECK = (
    Ladder("c-cnn-channels-sgdm", "digits CNN channels, SGD with momentum", digits_cnn_width, "channels", (1, 2, 4),
           32, optimizer="sgdm", epochs=6),
    Ladder("c-digits-batch-sgdm", "digits MLP batch size, SGD with momentum", digits_mlp64_task, "batch_size",
           (8, 16, 32), 256, optimizer="sgdm", epochs=4),
    Ladder("c-mnist1d-steps", "MNIST-1D MLP run length, Adam", mnist1d_mlp64, "steps", (1, 2, 4), 32),
    Ladder("c-lstm-batch", "character LSTM batch size, Adam", lstm_task, "batch_size", (4, 8, 16), 128, epochs=3),
    Ladder("c-mnist1d-width-sgdm", "MNIST-1D MLP width, SGD with momentum", mnist1d_width, "width", (16, 32, 64),
           512, optimizer="sgdm", epochs=6),
)  # fmt: skip


def errors(row: dict[str, Any]) -> dict[str, float]:
    """Octaves (log2 predicted / the target's grid optimum) of the law, reuse and the shrunk
    slopes; ``half`` is the law's own 80 % half-width at the target, ``octaves`` the distance
    from the largest proxy to the target."""
    grid = row["grid"]["lr"]
    reuse = math.log2(row["proxy_optima"][-1][0] / grid)
    law = math.log2(row["predicted"] / grid)
    out = {"law": law, "reuse": reuse, "octaves": math.log2(row["target"] / row["proxies"][-1])}
    for k in SHRINK:
        out[f"shrink {k}"] = reuse + k * (law - reuse)
    out["cap"] = min(law, reuse)  # beyond the largest proxy: the smaller of the two LRs
    lo, hi = row["law_interval"]
    out["half"] = 0.5 * math.log2(hi / lo)  # the law's own, before any widening
    return out


def extrapolation_sd(rows: list[dict[str, Any]]) -> float:
    """The law's error at the target beyond its own interval, per octave of scale beyond the
    largest proxy: ``sqrt(mean(max(0, e**2 - s**2) / k**2))`` over the ladders, with ``e`` the
    law's error in octaves, ``s`` the law's own standard deviation there (its 80 % half-width
    over 1.28) and ``k`` the octaves from the largest proxy to the target. Read as the standard
    deviation of a slope that changes beyond the proxies; ``lrlab.transfer.extrapolation``
    carries it."""
    excess = []
    for e in map(errors, rows):
        s = e["half"] / Z80
        excess.append(max(0.0, e["law"] ** 2 - s**2) / e["octaves"] ** 2)
    return math.sqrt(statistics.fmean(excess))


def _mean_abs(errs: list[dict[str, float]], name: str) -> float:
    return statistics.fmean(abs(e[name]) for e in errs)


def analyse(first: list[dict[str, Any]], check: list[dict[str, Any]]) -> str:
    """Each predictor's errors over both sets of tuning ladders, the cap rule's test on the
    second, and the extrapolation term of all of them."""
    rows = first + check
    errs = [errors(r) for r in rows]
    names = ["law", "reuse", *(f"shrink {k}" for k in SHRINK), "cap"]
    head = ["law (proxies' slope)", "reuse largest proxy", *(f"slope x{k}" for k in SHRINK), "cap"]
    lines = [
        "| set | ladder | proxies -> target | target's grid optimum | " + " | ".join(head)
        + " | law's own 80 % half-width | covered by it |",
        "|---" * (len(names) + 6) + "|",
    ]  # fmt: skip
    for i, (row, e) in enumerate(zip(rows, errs, strict=True)):
        g = row["grid"]
        where = "" if g["bracketed"] else " (not bracketed: at the edge tried)"
        lines.append(
            f"| {'first' if i < len(first) else 'check'} | {row['title']} | {row['axis']} "
            f"{','.join(map(str, row['proxies']))} -> {row['target']} | {g['lr']:.3g}{where} | "
            + " | ".join(f"{e[n]:+.2f}" for n in names)
            + f" | {e['half']:.2f} | {'yes' if abs(e['law']) <= e['half'] else 'no'} |"
        )
    for label, part in (("first", errs[: len(first)]), ("check", errs[len(first) :]), ("all", errs)):
        if part:
            lines.append(
                f"| mean abs. ({label}) | | | | "
                + " | ".join(f"{_mean_abs(part, n):.2f}" for n in names)
                + " | | "
                f"{sum(abs(e['law']) <= e['half'] for e in part)}/{len(part)} |"
            )
    tau = extrapolation_sd(rows)
    best = min(names, key=lambda n: _mean_abs(errs, n))
    lines += ["", "Errors in octaves (log2 of the predicted LR over the target's grid optimum)."]
    held = errs[len(first) :]
    if held:
        cap, law, reuse = (_mean_abs(held, n) for n in ("cap", "law", "reuse"))
        verdict = "adopted" if cap < min(law, reuse) else "not adopted"
        lines.append(
            f"The cap rule on the check set: mean error {cap:.2f} octaves against the law's {law:.2f} and reuse's "
            f"{reuse:.2f}: **{verdict}**."
        )
    lines.append(
        f"Smallest mean error over all {len(rows)} ladders: {head[names.index(best)]}. Extrapolation standard "
        f"deviation beyond the law's own, per octave of scale beyond the largest proxy, over all {len(rows)}: "
        f"**{tau:.3f}**."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append")
    parser.add_argument("--analyse", action="store_true")
    parser.add_argument("--write", action="store_true", help="with --analyse: write docs/benchmarks.md too")
    args = parser.parse_args()
    cached = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    if not args.analyse:
        run_stored(TUNING + CHECK, STORE, cached, CACHE, args.only)
    first = [cached[ladder.name] for ladder in TUNING if ladder.name in cached]
    check = [cached[ladder.name] for ladder in CHECK if ladder.name in cached]
    body = (
        "## Transfer tuning ladders (`python -m benchmarks.tune_transfer`)\n\n"
        + INTRO
        + "\n\n"
        + analyse(first, check)
    )
    print(body)
    if not args.analyse or args.write:
        write_section("tune-transfer", body)


if __name__ == "__main__":
    main()
