"""The transfer's figure and page: LR* against scale on log-log axes with the fitted law and
its band, the target's prediction, and each proxy's U-curve (loss against LR) beside it."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrlab.core.bracket import fit_power_law, mean_losses
from lrlab.files import write_bytes, write_text
from lrlab.formatting import num

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lrlab.transfer.result import TransferResult

__all__ = ["band", "figure_png", "write_report"]

BAND_POINTS = 9  # each point is one bootstrap fit (about 0.1 s)


def band(
    result: TransferResult, points: int = BAND_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scales from the smallest proxy to the target, and the law's LR and interval at each:
    the same fit as the prediction's (``fit_power_law`` evaluated at each scale), widened by
    the self-check beyond the proxy it left out and by the extrapolation error beyond the
    proxies' range, as the prediction's is."""
    from lrlab.transfer.extrapolation import beyond, widen

    ends = (min(result.scales[0], result.target), max(result.scales[-1], result.target))
    # the left-out proxy is a point of the band: its widening starts there
    scales = np.unique(np.concatenate([np.geomspace(ends[0], ends[1], points), [result.self_check.left_out]]))
    fits = [fit_power_law(result.scales, result.proxies, float(s), level=result.level) for s in scales]
    checked = [
        result.self_check.widen(float(s), f.lr, f.low, f.high) for s, f in zip(scales, fits, strict=True)
    ]
    widened = [
        widen(f.lr, lo, hi, beyond(float(s), result.scales), result.level)
        for s, f, (lo, hi) in zip(scales, fits, checked, strict=True)
    ]
    return (
        scales,
        np.array([f.lr for f in fits]),
        np.array([w[0] for w in widened]),
        np.array([w[1] for w in widened]),
    )


def draw(result: TransferResult) -> Figure:
    """The two panels as a matplotlib figure (Agg, no display)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    _draw_law(left, result)
    _draw_curves(right, result)
    fig.suptitle(result.sentence(), fontsize=10)
    return fig


def _draw_law(ax, result: TransferResult) -> None:  # type: ignore[no-untyped-def]
    scales, lrs, low, high = band(result)
    ax.fill_between(scales, low, high, color="tab:blue", alpha=0.18, label=f"{result.level:.0%} band")
    ax.plot(scales, lrs, color="tab:blue", lw=1.5, label=f"fit: slope {num(result.slope, 2)}")
    for scale, optimum in zip(result.scales, result.proxies, strict=True):
        ax.errorbar([scale], [optimum.lr], yerr=[[optimum.lr - optimum.low], [optimum.high - optimum.lr]],
                    fmt="o", color="black", capsize=3, ms=5)  # fmt: skip
    ax.plot([], [], "o", color="black", label="proxy optimum (interval)")
    _draw_self_check(ax, result)
    lo, hi = result.interval
    why = [w for w, on in (("the self-check", result.self_check.widened),
                            ("the extrapolation", result.extrapolation_octaves > 0)) if on]  # fmt: skip
    widened = f" (interval widened by {' and '.join(why)})" if why else ""
    ax.errorbar([result.target], [result.lr], yerr=[[result.lr - lo], [hi - result.lr]], fmt="*", ms=12,
                color="tab:red", capsize=4, label=f"prediction {num(result.lr, 3)}{widened}")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(result.axis)
    ax.set_ylabel("optimal peak LR")
    ax.set_title("LR* against scale", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2
    )  # below: no point is hidden


def _draw_self_check(ax, result: TransferResult) -> None:  # type: ignore[no-untyped-def]
    """The law fitted without the proxy nearest the target, carried to it (grey, dashed), and
    what it predicted there with its interval (an open diamond beside the proxy's own)."""
    check = result.self_check
    xs = np.geomspace(min(*check.fitted_on, check.left_out), max(*check.fitted_on, check.left_out), 8)
    ax.plot(xs, check.predicted * (xs / check.left_out) ** check.slope, ls="--", color="grey", lw=1)
    shift = 1.08 if check.target > check.left_out else 1 / 1.08  # beside the proxy's own marker, not on it
    p, low, high = check.predicted, check.predicted_low, check.predicted_high
    verdict = "within the intervals" if check.passed else f"{check.excess:.2f} oct. beyond"
    ax.errorbar([check.left_out * shift], [p], yerr=[[p - low], [high - p]], fmt="D", mfc="white", ms=5,
                color="grey", capsize=3,
                label=f"self-check: law of {', '.join(num(s) for s in check.fitted_on)} at {num(check.left_out)} "
                      f"(x{num(check.ratio, 2)}, {verdict})")  # fmt: skip


def _draw_curves(ax, result: TransferResult) -> None:  # type: ignore[no-untyped-def]
    from matplotlib import colormaps
    from matplotlib.ticker import NullFormatter

    colours = colormaps["viridis"](np.linspace(0.0, 0.85, len(result.proxies)))
    for colour, scale, optimum in zip(colours, result.scales, result.proxies, strict=True):
        lrs = np.asarray(optimum.lrs, dtype=float)
        means = mean_losses(optimum.losses)
        finite = np.isfinite(means)
        ax.plot(lrs[finite], means[finite], "-o", color=colour, ms=4, label=f"{result.axis} {num(scale)}")
        for lr, seeds in zip(lrs, optimum.losses, strict=True):
            values = [v for v in seeds if math.isfinite(v)]
            ax.plot([lr] * len(values), values, ".", color=colour, alpha=0.35, ms=3)
        if not finite.all():  # a diverged LR has no loss to draw: marked along the top edge
            ax.plot(lrs[~finite], [0.96] * int((~finite).sum()), "x", color=colour, ms=7,
                    transform=ax.get_xaxis_transform())  # fmt: skip
        if math.isfinite(optimum.lr):
            ax.axvline(optimum.lr, color=colour, ls=":", lw=1)
    ax.plot([], [], "x", color="grey", label="diverged (a seed or more)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow LR range labels every minor tick, overlapping
    ax.set_xlabel("peak LR")
    ax.set_ylabel("final validation loss")
    ax.set_title("each proxy's loss against LR (dotted: its optimum)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the panel


def figure_png(result: TransferResult) -> bytes:
    """The figure as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = draw(result)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def write_report(result: TransferResult, path: Path) -> Path:
    """The HTML page at ``path`` (the figure embedded) and the PNG at ``<stem>.png`` beside it."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report path must end in .html, got {str(path)!r}")
    png = figure_png(result)
    write_bytes(path.with_suffix(".png"), png)
    write_text(path, _page(result, base64.b64encode(png).decode()))
    return path


def _page(result: TransferResult, png: str) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{num(s)}</td><td>{num(o.lr, 3)}</td><td>{num(o.low, 3)} to {num(o.high, 3)}</td>"
        f"<td>{'yes' if o.bracketed else 'no'}</td><td>{len(o.lrs)}</td><td>{esc(o.reason)}</td></tr>"
        for s, o in zip(result.scales, result.proxies, strict=True)
    )
    check = result.self_check
    rows += (
        f"<tr class='self-check'><td>{num(check.left_out)}: the law of "
        f"{esc(', '.join(num(s) for s in check.fitted_on))}</td><td>{num(check.predicted, 3)}</td>"
        f"<td>{num(check.predicted_low, 3)} to {num(check.predicted_high, 3)}</td><td>-</td><td>-</td>"
        f"<td>{esc(check.sentence(result.axis))}</td></tr>"
    )
    code = "".join(f"<h3>{esc(k)}</h3><pre>{esc(v)}</pre>" for k, v in result.code().items())
    words = "".join(f"<li>{esc(line)}</li>" for line in result.lines())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>lrlab transfer: {esc(result.name)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto}img{max-width:100%}</style></head><body>"
        f"<h1>Transfer: {esc(result.name)}</h1><ul class='verdict'>{words}</ul>"
        f"<img alt='LR* against {esc(result.axis)}' src='data:image/png;base64,{png}'>"
        f"<h2>Proxies</h2><table><tr><th>{esc(result.axis)}</th><th>optimum</th>"
        f"<th>{result.level:.0%} interval</th><th>bracketed</th><th>LRs tried</th><th>how</th></tr>{rows}</table>"
        f"<h2>Code</h2>{code}</body></html>\n"
    )
