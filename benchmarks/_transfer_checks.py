"""bench_transfer's view of the transfer's own checks: what each ladder's self-check and
stability check said, kept in the cache, and how they read against the target's grid optimum.

The checks are the product's (``TransferResult.self_check`` / ``.stability``, rules in
``lrlab.transfer.selfcheck``); nothing here decides anything: it stores their numbers and
counts, per ladder, whether a check warned where the prediction then missed.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

MISS = 1.5  # the benchmark's bar: a prediction beyond 1.5x of the grid optimum is a miss


def check_fields(result: Any, store: Any) -> dict[str, Any]:
    """The checks' numbers for the cache: the law's own interval, the self-check, the stability
    check on the bracket's LRs, and where each proxy diverged over every run stored for it."""
    stability = result.stability
    return {
        "law_interval": list(result.law_interval),
        "interval": list(result.interval),
        "checked_interval": list(result.checked_interval),
        "self_check": {**asdict(result.self_check), "passed": result.self_check.passed},
        "stability": {
            "edges": list(stability.edges),
            "below": list(stability.below),
            "stable": stability.stable,
            "passed": stability.passed,
            "words": stability.sentence(result.axis),
        },
        "stored_edges": stored_edges(store, result.sweeps),
    }


def stored_edges(store: Any, sweeps: tuple[str, ...]) -> list[float | None]:
    """Per proxy sweep, the smallest LR at which any stored run diverged (None: none did)."""
    out = []
    for sweep in sweeps:
        diverged = [r.config.lr for r in store.sweep_runs(sweep) if r.status.value == "diverged"]
        out.append(min(diverged) if diverged else None)
    return out


def law_interval(row: dict[str, Any]) -> list[float]:
    """The law's own 80 % interval (before the self-check and the extrapolation error)."""
    return row["law_interval"]


def checked(row: dict[str, Any]) -> dict[str, Any]:
    """The self-check of a row, as ``check_fields`` cached it."""
    return row["self_check"]


def target_edge(row: dict[str, Any]) -> float | None:
    """The smallest LR at which a seed of the target diverged: over its grid and compared LRs,
    and over every run stored for it (an earlier grid's LRs included)."""
    diverged = [
        float(lr) for lr, runs in row["runs"].items() if any(not math.isfinite(v) for v in runs["loss"])
    ]
    stored = row.get("target_stored_edge")
    diverged += [stored] if stored is not None else []
    return min(diverged) if diverged else None


def self_check_cell(row: dict[str, Any]) -> str:
    """The main table's "self-check" column: the law of the smaller proxies at the largest, and
    what it did to the interval."""
    c = checked(row)
    head = f"x{c['predicted'] / c['measured']:.2f} at {c['left_out']:g} ({c['miss']:+.2f} oct.)"
    if c["passed"]:
        return f"{head}: passed, interval kept"
    low, high = c["interval"]
    if list(c["interval"]) == list(c["law_interval"]):
        return f"{head}: {c['excess']:.2f} oct. beyond, inside the law's interval"
    return f"{head}: {c['excess']:.2f} oct. beyond, widened to {low:.3g}-{high:.3g}"


def _allowed(c: dict[str, Any]) -> str:
    """The octaves the two intervals together allowed (a check cached before the field: '-')."""
    return f"{c['allowed']:.2f} oct." if "allowed" in c else "-"


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}"


def render_checks(rows: list[dict[str, Any]], titles: dict[str, str]) -> list[str]:
    """The checks per ladder against what the target measured, and the count in words."""
    lines = [
        "| ladder | law of the two smaller proxies at the largest: predicted (80 %) vs measured (80 %) | "
        "miss | the intervals allow | beyond them | widening at the target | interval after | covers after | "
        "proxies diverged from (stored runs) | predicted | stability check | target diverged from |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    flagged_misses, misses = 0, 0
    for row in rows:
        c, g = checked(row), row["grid"]
        low, high = c["interval"]
        stability = row.get("stability")
        warned = stability is not None and not stability["passed"]
        missed = abs(math.log(row["predicted"] / g["lr"])) > math.log(MISS)
        misses += missed
        flagged_misses += missed and (warned or not c["passed"])
        edges = row.get("stored_edges")
        proxies_diverged = (
            ", ".join(f"{s:g}: {_fmt(e)}" for s, e in zip(row["proxies"], edges, strict=True))
            if edges
            else "-"
        )
        check = (
            "not run (cached before the checks)" if stability is None else "flagged" if warned else "passed"
        )
        lines.append(
            f"| {titles[row['ladder']]} | {c['predicted']:.3g} ({c['predicted_low']:.3g}-{c['predicted_high']:.3g}) vs "
            f"{c['measured']:.3g} ({c['measured_low']:.3g}-{c['measured_high']:.3g}) | {c['miss']:+.2f} oct. | "
            f"{_allowed(c)} | {c['excess']:.2f} oct. | {c['widening']:.2f} oct. | {low:.3g}-{high:.3g} | "
            f"{'yes' if low <= g['lr'] <= high else 'no'} | {proxies_diverged} | {row['predicted']:.3g} | {check} | "
            f"{_fmt(target_edge(row))} |"
        )
    lines += ["", _in_words(rows, misses, flagged_misses)]
    return lines


def _in_words(rows: list[dict[str, Any]], misses: int, flagged: int) -> str:
    passed = sum(checked(row)["passed"] for row in rows)
    widened = sum(list(checked(row)["interval"]) != list(checked(row)["law_interval"]) for row in rows)
    parts = [
        f"The self-check passed on {passed}/{len(rows)} ladders (the law of the two smaller proxies within the two "
        f"80 % intervals of the largest proxy's own optimum) and widened the interval on {widened}.",
        f"Of the {misses} predictions beyond {MISS}x of the target's grid optimum, a check warned on {flagged}.",
    ]
    for row in rows:
        edge, edges = target_edge(row), [e for e in row.get("stored_edges") or [] if e is not None]
        if edge is not None and edge <= row["predicted"]:
            proxies = (
                f"the lowest LR any proxy diverged at was {min(edges):.3g}" if edges else "no proxy diverged"
            )
            parts.append(
                f"{row['title']}: the target diverged from {edge:.3g}, at or below the prediction "
                f"{row['predicted']:.3g}, where {proxies} (over every stored proxy run): the proxies' runs hold no "
                "sign of it, so neither check can see it."
            )
    return " ".join(parts)
