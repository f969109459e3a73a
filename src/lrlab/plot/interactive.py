"""Figure specs drawn with plotly: an interactive figure (hover, legend toggles, zoom, a
log/linear switch, a step slider for an animated spec), and one figure as a whole offline
page (plotly.js embedded).

Every text that comes from the user is escaped: with :func:`esc` in the page's own markup,
and with :func:`pesc` inside plotly strings, because plotly renders a subset of HTML tags in
trace names, titles and hover labels (an entity shows as the character).
"""

from __future__ import annotations

import base64
import functools
import html
import math
from pathlib import Path

import numpy as np

from lrlab.files import write_text
from lrlab.plot.spec import Contour, FigureSpec, Panel, Trace

_DASH = {"solid": "solid", "dash": "dash", "dot": "dot"}
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False}


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
    # a second line under an x label (its panel's marks) needs room above the next row's title
    worded = len(spec.panels) > 1 and any(p.mark_words() for p in spec.panels)
    fig = make_subplots(
        figure=go.Figure(layout={"template": {}}),
        rows=rows,
        cols=spec.columns,
        subplot_titles=[pesc(p.title) for p in spec.panels],
        horizontal_spacing=0.08,
        vertical_spacing=(0.17 if worded else 0.12) if rows > 1 else 0.0,
        column_widths=widths if len(widths) == spec.columns and set(widths) != {1.0} else None,
    )
    # The marks of one panel are named in the legend; of several panels, each under its own
    # x label (a legend entry would not say which panel's line it is), as in the static figures.
    named: set[str] | None = set() if len(spec.panels) == 1 else None
    for i, panel in enumerate(spec.panels):
        _axes(fig, panel, i // spec.columns + 1, i % spec.columns + 1, "" if i == 0 else str(i + 1), named)
    entries = len(spec.legend_entries()) + len(named or ())
    fig.update_layout(
        title={"text": pesc(spec.title)},
        # Tall enough for every legend entry at the right: plotly would scroll (hide) the rest.
        height=max(430 * rows + 60, 150 + 25 * entries) if spec.legend != "below" else 430 * rows + 60,
        hovermode="closest",
        # symbols of one size in the legend: a big marker (the chosen LR's star) would make its row taller
        # (an entry is its own group: plotly's 10 px between groups made each row 29 px)
        legend={
            "groupclick": "togglegroup",
            "font": {"size": 11},
            "itemsizing": "constant",
            "tracegroupgap": 4,
        },
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


def _axes(fig, panel: Panel, row: int, col: int, axis: str, named: set[str] | None) -> None:  # type: ignore[no-untyped-def]
    """A panel's axes and marks; ``named`` collects the marks named in the legend (None: named
    under the x label instead)."""
    words = panel.mark_words() if named is None else ""
    title = pesc(panel.xlabel) + (f"<br><span style='font-size:11px'>{pesc(words)}</span>" if words else "")
    xaxis: dict = {"title_text": title, "type": "log" if panel.xlog else "linear"}
    if panel.xlim is not None:
        low, high = panel.xlim
        xaxis["range"] = [math.log10(low), math.log10(high)] if panel.xlog else [low, high]
    fig.update_xaxes(row=row, col=col, **xaxis)
    yaxis: dict = {"title_text": pesc(panel.ylabel), "type": "log" if panel.ylog else "linear"}
    if panel.ylim is not None:
        low, high = panel.ylim
        yaxis["range"] = [math.log10(low), math.log10(high)] if panel.ylog else [low, high]
    fig.update_yaxes(row=row, col=col, **yaxis)
    _marks(fig, panel, axis, named)
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


def _marks(fig, panel: Panel, axis: str, named: set[str] | None) -> None:  # type: ignore[no-untyped-def]
    """Spans, vertical lines and the horizontal line, with explicit axis references: plotly's
    ``add_vline(row=, col=)`` skips a subplot that has no traces yet, and here every subplot is
    empty when its marks are added (the traces are written as dicts afterwards). Shapes take
    data coordinates on a log axis.

    A span or a vertical line is named in the legend (``named`` collects the labels: one
    entry each) or, with ``named`` None, under the panel's x label, as in the static figures;
    never written over the curves (a range test's chosen LR sat on its own star and curve)."""
    xref, yref = "x" + axis, "y" + axis
    for span in panel.spans:
        fig.add_shape(type="rect", x0=span.x0, x1=span.x1, xref=xref, y0=0, y1=1, yref=yref + " domain",
                      fillcolor=span.color, opacity=0.12, line_width=0, layer="below",
                      **_legend_entry(span.label, named))  # fmt: skip
    for vline in panel.vlines:
        fig.add_shape(type="line", x0=vline.x, x1=vline.x, xref=xref, y0=0, y1=1, yref=yref + " domain",
                      line={"color": vline.color, "dash": vline.dash, "width": 1.2},
                      **_legend_entry(vline.label, named))  # fmt: skip
    if panel.hline is not None:
        fig.add_shape(type="line", x0=0, x1=1, xref=xref + " domain", y0=panel.hline, y1=panel.hline, yref=yref,
                      line={"color": "#888888", "width": 1})  # fmt: skip


def _legend_entry(label: str, named: set[str] | None) -> dict:
    """A shape's legend keys: its label named once per figure, every shape of that label in
    one group (a click hides them all); none when the marks are named under the x label."""
    if not label or named is None:
        return {}
    first = label not in named
    named.add(label)
    return {"name": pesc(label), "legendgroup": pesc("mark: " + label), "showlegend": first}


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
        div_id=f"fig-{spec.key}", config=PLOT_CONFIG, auto_play=False,
    )  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(spec.title)}</title><style>{PAGE_CSS}</style></head><body>\n{div}\n"
        f'<p class="caption">{esc(spec.caption)}</p>\n</body></html>\n'
    )


def write_figure_page(spec: FigureSpec, out: Path) -> Path:
    return write_text(out, figure_page(spec))  # atomically: the old page or the new one


PAGE_CSS = """
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
