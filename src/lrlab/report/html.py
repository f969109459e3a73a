"""The interactive report: one self-contained HTML file (plotly.js embedded once).

Every text that comes from the user (run, sweep, task, optimizer and schedule names,
labels, errors) is escaped twice over where needed: with :func:`html.escape` in the page's
own markup, and as HTML entities inside plotly strings, because plotly renders a subset
of HTML tags in trace names, titles and hover labels (an entity shows as the character).
"""

from __future__ import annotations

import base64
import functools
import html
import math
from pathlib import Path

import numpy as np

from lrlab.formatting import num
from lrlab.report.data import ReportData
from lrlab.report.figures import Contour, FigureSpec, Panel, Trace, looks

_DASH = {"solid": "solid", "dash": "dash", "dot": "dot"}
_PLOT_CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False}


def esc(text: object) -> str:
    """Escape for the page's own HTML text and attributes."""
    return html.escape(str(text), quote=True)


def pesc(text: object) -> str:
    """Escape for plotly's pseudo-HTML strings (trace names, titles, hover text, annotations).

    Plotly renders tags such as ``<b>`` or ``<a href>`` in these strings and turns ``&lt;``,
    ``&gt;`` and ``&amp;`` back into characters, but shows ``&quot;`` literally: so quotes
    stay as they are (they cannot open a tag once ``<`` is escaped).
    """
    return html.escape(str(text), quote=False)


def plotly_figure(spec: FigureSpec) -> dict:
    """A plotly figure (as a dict) for ``spec``: hover, legend toggles, zoom, log/linear y,
    and for an animated spec a step slider with play/pause.

    The layout comes from plotly's ``make_subplots``; the traces are written as plain dicts
    with binary (base64 float32) arrays, which is several times faster than validated
    ``go.Scatter`` objects and keeps a 100-run page small.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = (len(spec.panels) + spec.columns - 1) // spec.columns
    widths = [p.width for p in spec.panels[: spec.columns]]
    fig = make_subplots(
        figure=go.Figure(layout={"template": {}}),
        rows=rows,
        cols=spec.columns,
        subplot_titles=[pesc(p.title) for p in spec.panels],
        horizontal_spacing=0.08,
        vertical_spacing=0.12 if rows > 1 else 0.0,
        column_widths=widths if len(widths) == spec.columns and set(widths) != {1.0} else None,
    )
    for i, panel in enumerate(spec.panels):
        _axes(fig, panel, i // spec.columns + 1, i % spec.columns + 1, "" if i == 0 else str(i + 1))
    entries = len(spec.legend_entries())
    fig.update_layout(
        title={"text": pesc(spec.title)},
        # Tall enough for every legend entry at the right: plotly would scroll (hide) the rest.
        height=max(430 * rows + 60, 150 + 21 * entries) if spec.legend != "below" else 430 * rows + 60,
        hovermode="closest",
        legend={"groupclick": "togglegroup", "font": {"size": 11}},
        margin={"t": 90, "r": 20, "l": 70, "b": 50},
    )
    menus = [_log_buttons(spec)] if spec.log_toggle else []
    out = fig.to_dict()
    out["layout"]["template"] = _template()
    seen: set[str] = set()
    traces: list[dict] = []
    animated: list[tuple[int, Trace]] = []
    for i, panel in enumerate(spec.panels):
        suffix = "" if i == 0 else str(i + 1)
        items = [_contour(panel.contour)] if panel.contour is not None else []
        for trace in panel.traces:
            # An animated figure opens at its last frame.
            items += _traces(trace.at_step(spec.animation.steps[-1]) if spec.animation else trace, seen)
            if trace.animate is not None:
                animated.append((len(traces) + len(items) - 1, trace))
        for item in items:
            item["xaxis"], item["yaxis"] = "x" + suffix, "y" + suffix
        traces += items
    out["data"] = traces
    layout = out["layout"]
    if spec.legend == "below":
        shown = entries
        layout["legend"].update(
            {"orientation": "h", "x": 0.0, "xanchor": "left", "y": -0.12, "yanchor": "top"}
        )
        layout["margin"]["b"] = 80 + 24 * shown
        layout["height"] += layout["margin"]["b"] - 50
    if spec.animation is not None:
        out["frames"], slider, play = _animation(spec.animation.steps, spec.animation.label, animated)
        layout["sliders"] = [slider]
        menus.append(play)
        layout["height"] += 120
    if menus:
        layout["updatemenus"] = menus
    return out


def _xy(t: Trace) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(t.x, dtype=np.float64)
    # Non-finite values would break the JSON (inf) or mean nothing; gaps are honest.
    y = np.asarray(t.y, dtype=np.float64)
    return x, np.where(np.isfinite(y), y, np.nan)


def _contour(c: Contour) -> dict:
    """A filled contour trace; a log map is drawn as log10 of the values (plotly's contour
    levels are evenly spaced)."""
    z = np.asarray(c.z, dtype=np.float64)
    shown = np.log10(np.maximum(z, c.levels[0])) if c.log else z
    label = f"log10({c.label})" if c.log and c.label else c.label
    grid = np.ascontiguousarray(np.where(np.isfinite(shown), shown, np.nan), dtype="<f4")
    return {
        "type": "contour", "x": _array(c.x), "y": _array(c.y),
        "z": {"dtype": "f4", "bdata": base64.b64encode(grid.tobytes()).decode("ascii"),
              "shape": f"{grid.shape[0]}, {grid.shape[1]}"},
        "colorscale": "Viridis", "reversescale": True, "opacity": 0.6, "ncontours": len(c.levels),
        # A horizontal colour bar above the map: at the right it would sit on the legend.
        "showscale": True, "colorbar": {"title": {"text": pesc(label), "side": "top"}, "orientation": "h",
                                        "x": 1.0, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
                                        "len": 0.35, "thickness": 10},
        "hoverinfo": "skip", "showlegend": False, "name": "surface",
    }  # fmt: skip


def _animation(
    steps: list[int], label: str, animated: list[tuple[int, Trace]]
) -> tuple[list[dict], dict, dict]:
    """Frames growing the animated traces (only their x and y: style and hover text stay),
    a slider with one position per frame and play/pause buttons."""
    frames = []
    for step in steps:
        data = []
        for _, trace in animated:
            x, y = _xy(trace.at_step(step))
            data.append({"type": "scatter", "x": _array(x), "y": _array(y)})
        frames.append({"name": str(step), "data": data, "traces": [i for i, _ in animated]})
    slider = {
        "active": len(steps) - 1,
        "currentvalue": {"prefix": f"{pesc(label)} "},
        "x": 0.1,
        "xanchor": "left",
        "len": 0.9,
        "y": 0.0,
        "yanchor": "top",
        "pad": {"t": 50, "b": 10},
        "steps": [
            {
                "label": str(step),
                "method": "animate",
                "args": [[str(step)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
            }
            for step in steps
        ],
    }
    play = {
        "type": "buttons", "direction": "left", "x": 0.1, "xanchor": "right", "y": 0.0, "yanchor": "top",
        "pad": {"t": 87, "r": 10}, "showactive": False,
        "buttons": [
            {"label": "play", "method": "animate",
             "args": [None, {"frame": {"duration": 80, "redraw": True}, "fromcurrent": True}]},
            {"label": "pause", "method": "animate",
             "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}]},
        ],
    }  # fmt: skip
    return frames, slider, play


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def _array(values: np.ndarray) -> dict:
    """A float32 array in plotly's binary form (``{"dtype", "bdata"}``); NaN draws a gap."""
    data = np.ascontiguousarray(np.asarray(values, dtype=np.float64), dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


def _traces(t: Trace, seen: set[str]) -> list[dict]:
    name, group = pesc(t.name), pesc(t.group)
    x, y = _xy(t)
    out = []
    if t.band is not None:
        low, high = (np.asarray(b, dtype=np.float64) for b in t.band)
        out.append(
            {
                "type": "scatter", "x": _array(np.concatenate([x, x[::-1]])),
                "y": _array(np.concatenate([high, low[::-1]])), "fill": "toself",
                "fillcolor": _rgba(t.color, 0.15), "line": {"width": 0}, "hoverinfo": "skip",
                "legendgroup": group, "showlegend": False, "name": name + " (range over seeds)", "mode": "lines",
            }
        )  # fmt: skip
    show = t.show_legend and group not in seen
    if show:
        seen.add(group)
    trace: dict = {
        "type": "scatter",
        "x": _array(x),
        "y": _array(y),
        "name": name,
        "legendgroup": group,
        "showlegend": show,
        "mode": t.mode,
        "opacity": t.opacity,
    }
    if t.mode != "markers":
        trace["line"] = {"color": t.color, "dash": _DASH[t.dash], "width": t.width}
    if "markers" in t.mode:
        trace["marker"] = {"color": t.color, "size": t.marker_size, "symbol": t.marker or "circle"}
        if t.marker == "x" or t.marker_edge is not None:
            trace["marker"]["line"] = {"width": 1, "color": t.marker_edge or t.color}
    if t.legend_rank:
        trace["legendrank"] = 1000 + t.legend_rank  # plotly's default rank is 1000
    if t.hover is not None:
        # One text for every point (a grey run's configuration) is written once.
        same = len(t.hover) > 0 and all(h == t.hover[0] for h in t.hover)
        trace["text"] = pesc(t.hover[0]) if same else [pesc(h) for h in t.hover]
        trace["hovertemplate"] = "%{text}<br>x=%{x:.4g}, y=%{y:.4g}<extra></extra>"
    if t.error is not None:
        trace["error_y"] = {
            "type": "data", "symmetric": False, "array": _array(t.error[1]), "arrayminus": _array(t.error[0]),
            "color": t.color, "thickness": 1.2,
        }  # fmt: skip
    out.append(trace)
    return out


def _axes(fig, panel: Panel, row: int, col: int, axis: str) -> None:  # type: ignore[no-untyped-def]
    xaxis: dict = {"title_text": pesc(panel.xlabel), "type": "log" if panel.xlog else "linear"}
    if panel.xlim is not None:
        low, high = panel.xlim
        xaxis["range"] = [math.log10(low), math.log10(high)] if panel.xlog else [low, high]
    fig.update_xaxes(row=row, col=col, **xaxis)
    yaxis: dict = {"title_text": pesc(panel.ylabel), "type": "log" if panel.ylog else "linear"}
    if panel.ylim is not None:
        low, high = panel.ylim
        yaxis["range"] = [math.log10(low), math.log10(high)] if panel.ylog else [low, high]
    fig.update_yaxes(row=row, col=col, **yaxis)
    _marks(fig, panel, axis)
    if not panel.traces and panel.note:
        fig.add_annotation(
            text=pesc(panel.note),
            showarrow=False,
            xref="x domain",
            yref="y domain",
            x=0.5,
            y=0.5,
            row=row,
            col=col,
        )


def _marks(fig, panel: Panel, axis: str) -> None:  # type: ignore[no-untyped-def]
    """Spans, vertical lines and the horizontal line, with explicit axis references: plotly's
    ``add_vline(row=, col=)`` skips a subplot that has no traces yet, and here every subplot is
    empty when its marks are added (the traces are written as dicts afterwards). Shapes take
    data coordinates on a log axis, annotations log10 of them."""
    xref, yref = "x" + axis, "y" + axis

    def at(x: float) -> float:
        return math.log10(x) if panel.xlog else x

    for index, span in enumerate(panel.spans):
        fig.add_shape(type="rect", x0=span.x0, x1=span.x1, xref=xref, y0=0, y1=1, yref=yref + " domain",
                      fillcolor=span.color, opacity=0.12, line_width=0, layer="below")  # fmt: skip
        middle = (math.log10(span.x0) + math.log10(span.x1)) / 2 if panel.xlog else (span.x0 + span.x1) / 2
        fig.add_annotation(text=pesc(span.label), x=middle, xref=xref, y=0.02 + 0.05 * index,
                           yref=yref + " domain", yanchor="bottom", showarrow=False,
                           font={"size": 10, "color": span.color})  # fmt: skip
    for vline in panel.vlines:
        fig.add_shape(type="line", x0=vline.x, x1=vline.x, xref=xref, y0=0, y1=1, yref=yref + " domain",
                      line={"color": vline.color, "dash": vline.dash, "width": 1.2})  # fmt: skip
        fig.add_annotation(text=pesc(vline.label), x=at(vline.x), xref=xref, y=1, yref=yref + " domain",
                           xanchor="right", yanchor="top", textangle=-90, showarrow=False,
                           font={"size": 10, "color": vline.color})  # fmt: skip
    if panel.hline is not None:
        fig.add_shape(type="line", x0=0, x1=1, xref=xref + " domain", y0=panel.hline, y1=panel.hline, yref=yref,
                      line={"color": "#888888", "width": 1})  # fmt: skip


def _log_buttons(spec: FigureSpec) -> dict:
    """Buttons switching every y axis of the figure between linear and log. Going back to
    linear restores a clipped range (a run that blew up stays off the chart)."""
    names = ["yaxis"] + [f"yaxis{i}" for i in range(2, len(spec.panels) + 1)]
    linear: dict = {}
    log: dict = {}
    for name, panel in zip(names, spec.panels):
        linear[f"{name}.type"] = "linear"
        log[f"{name}.type"] = "log"
        log[f"{name}.autorange"] = True
        if panel.ylim is not None and not panel.ylog:
            linear[f"{name}.range"] = list(panel.ylim)
            linear[f"{name}.autorange"] = False
        else:
            linear[f"{name}.autorange"] = True
    active = 1 if spec.panels and spec.panels[0].ylog else 0
    return {
        "type": "buttons",
        "direction": "right",
        "x": 1.0,
        "xanchor": "right",
        "y": 1.12,
        "yanchor": "bottom",
        "showactive": True,
        "active": active,
        "buttons": [
            {"label": "linear y", "method": "relayout", "args": [linear]},
            {"label": "log y", "method": "relayout", "args": [log]},
        ],
    }


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def figure_page(spec: FigureSpec) -> str:
    """One figure as a whole offline HTML page (plotly.js embedded), its caption below it."""
    import plotly.io as pio

    div = pio.to_html(
        plotly_figure(spec), validate=False, full_html=False, include_plotlyjs=True,
        div_id=f"fig-{spec.key}", config=_PLOT_CONFIG, auto_play=False,
    )  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(spec.title)}</title><style>{_CSS}</style></head><body>\n{div}\n"
        f'<p class="caption">{esc(spec.caption)}</p>\n</body></html>\n'
    )


def write_figure_page(spec: FigureSpec, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(figure_page(spec), encoding="utf-8")
    return out


# ---------------------------------------------------------------- the page

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;color:#222}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#555}.caption{color:#444;max-width:70em}
ul.findings{padding-left:1.2em}ul.findings li{margin:.35em 0}
li.warning::marker{content:"\\26A0  ";color:#c60}li.info::marker{content:"\\2713  ";color:#2a2}
table{border-collapse:collapse;font-size:.9em;margin-top:.5em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.numbers{color:#666;font-size:.85em}details{margin:.5em 0}
.answer{font-size:1.1em;background:#f3f8f3;border-left:4px solid #2a2;padding:.5em .8em}
.pointer{background:#f2f5fb;border-left:4px solid #46a;padding:.5em .8em;margin-bottom:1em}
details.kind>summary{cursor:pointer;margin:.3em 0}summary.warning::before{content:"\\26A0  ";color:#c60}
tr.recommended td{background:#f3f8f3;font-weight:600}ul#verdict{margin:.3em 0 .6em 1.2em;padding:0}
.status-diverged{color:#c00}.status-failed{color:#c00}.status-done{color:#070}
"""


def _part_of(parent: dict) -> str:
    """A study's sweep reported alone: the study's verdict first, since this page's own
    ranking sees only this sweep."""
    name = esc(parent["study"])
    head = esc(parent["lines"][0]) if parent["lines"] else ""
    return (
        f'<div class="pointer" id="part-of"><b>This sweep is one part of the study {name}</b>, whose '
        f"verdict over all its sweeps is: {head}<br>The ranking below sees only this sweep; "
        f"<code>lrlab report --sweep {name}</code> shows the whole study.</div>"
    )


def render_page(data: ReportData, figures: list[FigureSpec]) -> str:
    """The whole report page as one HTML string (works offline: nothing is fetched)."""
    import plotly.io as pio

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page_title(data))} - lrlab report</title><style>{_CSS}</style></head><body>",
        f'<h1 id="report-title">{esc(page_title(data))}</h1>',
        f'<p class="sub">{_summary_line(data)}</p>',
    ]
    if data.shared:
        shared = ", ".join(f"{esc(k)}={esc(v)}" for k, v in data.shared.items())
        parts.append(f'<p class="sub">Shared by every run: {shared}</p>')
    if data.part_of:
        parts.append(_part_of(data.part_of))
    parts.append(_study_answer(data) if data.study else _leaderboard(data))
    parts.append('<h2 id="figures">Figures</h2>')
    for i, spec in enumerate(figures):
        fig = plotly_figure(spec)
        div = pio.to_html(
            fig,
            validate=False,
            full_html=False,
            include_plotlyjs=(i == 0),
            div_id=f"fig-{spec.key}",
            config=_PLOT_CONFIG,
        )
        parts.append(
            f'<section class="figure" id="section-{spec.key}"><h2>{esc(spec.title)}</h2>'
            f'<p class="caption">{esc(spec.caption)}</p>{div}</section>'
        )
    parts.append(_diagnostics(data))
    parts.append(_config_table(data))
    parts.append(
        '<p class="sub">Made by lrlab from the run store; nothing here was re-run.</p></body></html>'
    )
    return "\n".join(parts)


LEADERBOARD_ROWS = 10


def page_title(data: ReportData) -> str:
    """The page's heading: the study or sweep it reports (a report of chosen runs names
    the sweeps they belong to)."""
    if data.study:
        study = data.study
        return f"Study {study.get('name', '')}: {study.get('task', '')}, budget {study.get('budget', '')}"
    if data.title.startswith("Sweep ") or data.title.startswith("All "):
        return data.title
    sweeps = sorted({r.sweep for r in data.runs if r.sweep})
    if len(sweeps) == 1:
        return f"{len(data.runs)} runs of sweep {sweeps[0]}"
    if sweeps:
        return f"{len(data.runs)} runs of sweeps {', '.join(sweeps[:3])}" + (" and more" if len(sweeps) > 3 else "")
    return data.title


# Both leaderboards' margin cell above a configuration ranked lower for a diverged seed.
NEXT_DIVERGED = "the next diverged on a seed: ranked below whatever its mean"


def _diverged_words(diverged: int) -> str:
    """For a leaderboard's seeds cell: the seeds that diverged besides those that finished."""
    return f" (+{diverged} diverged)" if diverged else ""


def _margin_cell(row: dict) -> str:
    """A study row's margin to the next row against the paired seed noise, in words."""
    if row.get("next_diverged"):
        return NEXT_DIVERGED
    margin = row.get("margin")
    if margin is None:
        return "-"
    if row.get("noise") is None:
        return f"{num(margin)} ({row.get('shared_seeds', 0)} shared seed(s): no noise estimate)"
    where = "within" if row.get("within_noise") else "beyond"
    return f"{num(margin)} ({where} the paired seed noise {num(row['noise'])})"


def _study_answer(data: ReportData) -> str:
    """The study's own verdict, as the CLI printed it and ``recommendation.md`` holds it:
    the recommendation, the leaderboard in the study's order (finalists first) with the
    margin to the next against the paired seed noise, the tie rule, and the compute spent."""
    study = data.study or {}
    lines = [str(line) for line in study.get("lines", [])]
    parts = ['<section id="answer"><h2 id="leaderboard">The answer</h2>']
    if lines:
        parts.append(f'<p class="answer" id="best">{"<br>".join(esc(line) for line in lines[:2])}</p>')
        parts.append('<ul id="verdict">' + "".join(f"<li>{esc(line)}</li>" for line in lines[2:]) + "</ul>")
    parts.append(f'<p class="sub" id="compute">{esc(_compute_words(data, study))}</p>')
    rows = study.get("leaderboard", [])
    metric = esc(study.get("metric_words", str(study.get("metric", "score")).replace("_", " ")))
    parts.append(
        '<table id="leaderboard-table"><thead><tr><th>#</th><th>optimizer</th><th>schedule</th><th>peak lr</th>'
        f"<th>final {metric} (mean &plusmn; sd)</th><th>seeds</th><th>margin to the next</th><th>verdict</th>"
        "<th>steps trained</th></tr></thead><tbody>"
    )
    for position, row in enumerate(rows[:LEADERBOARD_ROWS]):
        note = ""
        if row.get("recommended"):
            note = "recommended" + (" by the tie rule" if study.get("tie_broken") else "")
        elif study.get("tie_broken") and position == 0:
            note = "best mean, tied with the recommendation within the seed noise"
        elif row.get("diverged"):
            note = f"diverged on {row['diverged']} of {row.get('seeds', 0) + row['diverged']} seeds: ranked below those that never did"
        elif not row.get("finalist", True):
            note = "one seed: not a finalist"
        sd = f" &plusmn; {num(row['sd'], 2)}" if row.get("seeds", 1) > 1 else ""
        steps = sum(data.total_steps.get(rid, 0) for rid in row.get("run_ids", ()))
        mark = ' class="recommended"' if row.get("recommended") else ""
        parts.append(
            f"<tr{mark}><td class='num'>{position + 1}</td><td>{esc(row.get('optimizer'))}</td>"
            f"<td title='{esc(row.get('spec', ''))}'>{esc(row.get('schedule'))}</td>"
            f"<td class='num'>{num(row.get('peak_lr'), 3)}</td><td class='num'>{num(row.get('score'))}{sd}</td>"
            f"<td class='num'>{row.get('seeds')}{_diverged_words(row.get('diverged', 0))}</td>"
            f"<td>{esc(_margin_cell(row))}</td><td>{esc(note)}</td>"
            f"<td class='num'>{steps:,}</td></tr>"
        )
    parts.append("</tbody></table>")
    if len(rows) > LEADERBOARD_ROWS:
        parts.append(
            f'<p class="sub">and {len(rows) - LEADERBOARD_ROWS} more finished configurations (every one in '
            "recommendation.md; every run in the table at the end).</p>"
        )
    parts.append(f'<p class="sub" id="tie-rule">{esc(_tie_rule_words(study))}</p></section>')
    return "".join(parts)


def _tie_rule_words(study: dict) -> str:
    noise_se = study.get("noise_se", 2.0)
    text = (
        f"Tie rule: the two best finalists tie when the margin between them is within {noise_se:g} standard "
        "errors of their per-seed differences (paired seed noise), and a tie goes to "
        f"{study.get('tie_rule', 'the simpler configuration')}."
    )
    if study.get("tie") and study.get("tie_reason"):
        applied = "applied here" if study.get("tie_broken") else "a tie here, kept by the best mean"
        reason = str(study["tie_reason"]).replace(f" (a tie goes to {study.get('tie_rule')})", "")
        text += f" It is {applied}: {reason}."
    elif study.get("noise") is not None:
        text += " Not applied here: the margin is beyond the noise."
    return text


def _compute_words(data: ReportData, study: dict) -> str:
    ids = [str(rid) for rid in study.get("run_ids", [])]
    steps = sum(data.total_steps.get(rid, 0) for rid in ids)
    configurations = len(data.configs)
    seeds = [str(s) for s in study.get("seeds") or []]
    text = f"Compute spent: {len(ids)} runs, {steps:,} optimizer steps trained"
    if seeds and study.get("finalists"):
        text += (
            f" (successive halving: all {configurations} configurations with seed {seeds[0]}, the best "
            f"{study['finalists']} also with seed(s) {', '.join(seeds[1:])})"
        )
    tests = study.get("range_tests", {})
    iterations = sum(int(t.get("iterations") or 0) for t in tests.values())
    if tests:
        text += f", plus {len(tests)} range test(s) of {iterations:,} steps in all"
    if study.get("diverged"):
        text += f"; {study['diverged']} run(s) diverged and stopped early"
    return text + "."


def _leaderboard(data: ReportData) -> str:
    """The answer first: the best configuration and the leaderboard of the one scorer, each
    with its mean +- sd over seeds, its margin to the next and whether that is inside the noise."""
    from lrlab.report.diagnostics import ranked_configurations

    ranked = ranked_configurations(data.configs, data.epochs)
    best = next((f for f in data.findings if f.kind == "best"), None)
    parts = ['<section id="answer"><h2 id="leaderboard">The answer</h2>']
    if best is not None:
        parts.append(f'<p class="answer" id="best">{esc(best.message)}</p>')
    if not ranked:
        parts.append('<p class="sub">No finished run reports a validation metric yet.</p></section>')
        return "".join(parts)
    metric = ranked[0][1].metric.replace("_", " ")
    parts.append(
        f'<table id="leaderboard-table"><thead><tr><th>#</th><th>configuration</th><th>final {esc(metric)} '
        "(mean &plusmn; sd)</th><th>seeds</th><th>margin to the next</th><th>steps trained</th></tr></thead><tbody>"
    )
    for position, (cfg, entry) in enumerate(ranked[:LEADERBOARD_ROWS]):
        margin = "-"
        if position + 1 < len(ranked):
            following = ranked[position + 1][1]
            gap = following.mean - entry.mean
            spread = max(entry.high - entry.low, following.high - following.low)
            if following.diverged > entry.diverged:
                verdict = NEXT_DIVERGED
            elif max(entry.seeds, following.seeds) < 2:
                verdict = "one seed: no noise estimate"
            elif gap <= spread:
                verdict = "a tie: inside the spread over seeds"
            else:
                verdict = "beyond the spread over seeds"
            margin = f"{num(gap)} ({verdict})"
        steps = sum(data.total_steps.get(r.id, 0) for r in cfg.runs)
        parts.append(
            f"<tr><td class='num'>{position + 1}</td><td>{esc(cfg.label)}</td>"
            f"<td class='num'>{num(entry.mean)}{'' if entry.seeds < 2 else f' &plusmn; {num(entry.sd)}'}</td>"
            f"<td class='num'>{entry.seeds}{_diverged_words(entry.diverged)}</td>"
            f"<td>{esc(margin)}</td><td class='num'>{steps:,}</td></tr>"
        )
    more = len(ranked) - LEADERBOARD_ROWS
    parts.append("</tbody></table>")
    if more > 0:
        parts.append(f'<p class="sub">and {more} more configurations (all of them in the table at the end).</p>')
    parts.append("</section>")
    return "".join(parts)


def _diagnostics(data: ReportData) -> str:
    """Diagnostics grouped by kind: one line per kind with its count, the findings folded below."""
    parts = ['<h2 id="diagnostics">Diagnostics</h2>']
    findings = [f for f in data.findings if f.kind != "best"]
    if not findings:
        parts.append('<p class="info">Nothing to report: no run diverged, stalled or overfitted.</p>')
        return "".join(parts)
    kinds: dict[str, list] = {}
    for finding in findings:
        kinds.setdefault(finding.kind, []).append(finding)
    from lrlab.report.diagnostics import kind_summary

    for kind, items in kinds.items():
        severity = "warning" if any(f.severity == "warning" for f in items) else "info"
        head = kind_summary(kind, items, data.configs, data.planned_steps)
        parts.append(
            f'<details class="kind" data-kind="{esc(kind)}"><summary class="{severity}">{esc(head)} '
            f'<span class="numbers">({len(items)} note(s) below)</span></summary><ul class="findings">'
        )
        for f in items:
            numbers = ", ".join(f"{esc(k)}={esc(_num(v))}" for k, v in f.numbers.items())
            parts.append(
                f'<li class="{esc(f.severity)}" data-kind="{esc(f.kind)}">{esc(f.message)}'
                f' <span class="numbers">[{numbers}]</span></li>'
            )
        parts.append("</ul></details>")
    return "".join(parts)


def _summary_line(data: ReportData) -> str:
    statuses: dict[str, int] = {}
    for r in data.runs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    counts = ", ".join(f"{n} {esc(s)}" for s, n in sorted(statuses.items()))
    return f"{len(data.runs)} runs in {len(data.configs)} configurations ({counts})."


def _num(value: object) -> str:
    if isinstance(value, float):
        return num(value)
    if isinstance(value, list):
        return "[" + ", ".join(_num(v) for v in value) + "]"
    return str(value)


def _config_table(data: ReportData) -> str:
    from lrlab.report.ranking import final_metric

    rows = [
        '<details open><summary>Configurations and runs</summary><table id="runs"><thead><tr>'
        "<th>configuration</th><th>in the figures</th><th>seed</th><th>run id</th><th>status</th><th>epochs</th>"
        "<th>final train loss</th><th>final val loss</th><th>final val error</th></tr></thead><tbody>"
    ]
    look = looks(data)
    for cfg in data.configs:
        shown = look[cfg.key].name if look[cfg.key].highlighted else "grey"
        for run in cfg.runs:
            recs = data.epochs.get(run.id, [])
            err = final_metric(recs, "val_error")
            rows.append(
                f"<tr><td>{esc(cfg.label)}</td><td>{esc(shown)}</td><td class='num'>{run.seed}</td><td><code>{esc(run.id)}</code></td>"
                f"<td class='status-{esc(run.status)}'>{esc(run.status)}</td><td class='num'>{len(recs)}</td>"
                f"<td class='num'>{_cell(final_metric(recs, 'train_loss'))}</td>"
                f"<td class='num'>{_cell(final_metric(recs, 'val_loss'))}</td>"
                f"<td class='num'>{'' if err is None else f'{err:.2%}'}</td></tr>"
            )
    rows.append("</tbody></table></details>")
    return "".join(rows)


def _cell(value: float | None) -> str:
    return num(value, missing="")


def write_html(data: ReportData, figures: list[FigureSpec], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(data, figures), encoding="utf-8")
    return out
