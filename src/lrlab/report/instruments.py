"""The report's instrument panel: what the instruments read while the best runs trained (the
update-to-weight ratio per group, the LR each group used over the one its schedule gives,
the sharpness against its stability limit, the gradient noise scale), and the findings the
instruments made, listed with the report's diagnostics.

The series are read from the store for one run of each of the best configurations (the
first seed), the findings for every run of the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lrlab.core.diagnostics import Finding
from lrlab.plot.downsample import downsample
from lrlab.plot.spec import FigureSpec, Panel, Trace, VLine

if TYPE_CHECKING:  # the report's data loads the instruments through this module
    from lrlab.report.data import ReportData
    from lrlab.store.sqlite import Store

__all__ = ["INSTRUMENT_RUNS", "instruments_figure", "load_instruments"]

INSTRUMENT_RUNS = 3  # best configurations whose instruments are drawn
MAX_POINTS = 400  # per line
MAX_MARKS = 6  # finding lines drawn on the panels
USUAL_RATIO = 1e-3


PROBE_FLOOR = 0.1  # a step probe's multiple drawn no lower (0 or below: the loss rose along the update)


def chosen_runs(data: ReportData, count: int = INSTRUMENT_RUNS) -> list[str]:
    """One run (the first seed) of each of the ``count`` best configurations."""
    ranked = [cfg for cfg, _entry in data.ranking][:count]
    if not ranked:
        ranked = data.configs[:count]
    return [min(cfg.runs, key=lambda r: (r.seed, r.id)).id for cfg in ranked if cfg.runs]


def load_instruments(store: Store, data: ReportData, run_ids: list[str] | None = None) -> None:
    """Read the instrument series of the drawn runs (``run_ids``, default :func:`chosen_runs`)
    into ``data.instruments`` and add every run's instrument findings to ``data.findings``."""
    wanted = run_ids if run_ids is not None else chosen_runs(data)
    data.instruments = {rid: series for rid in wanted if (series := store.instruments(rid))}
    for run in data.runs:
        data.findings.extend(store.findings(run.id))


def _config_name(data: ReportData, run_id: str) -> tuple[str, str]:
    for cfg in data.configs:
        if any(r.id == run_id for r in cfg.runs):
            look = data.looks.get(cfg.key)
            if look is not None:
                return look.name, look.color
    return run_id, "#1f77b4"


def _line(
    name: str, steps: list[int], values: list[float], label: str, color: str, dash: str = "solid"
) -> Trace:
    x, y = downsample(np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64), MAX_POINTS)
    return Trace(x, y, label, label, color, dash=dash, width=1.4,
                 hover=[f"{label} | {name} {v:.3g} at step {s:g}" for s, v in zip(x, y)])  # fmt: skip


def _panel(
    data: ReportData,
    prefix: str,
    title: str,
    ylabel: str,
    *,
    ylog: bool,
    hline: float | None,
    floor: float | None = None,
) -> Panel:
    panel = Panel(title, "step", ylabel, ylog=ylog, hline=hline)
    dashes = ("solid", "dash", "dot")
    for run_id, series in data.instruments.items():
        name, color = _config_name(data, run_id)
        names = sorted(n for n in series if n.startswith(prefix) and n.count("/") == prefix.count("/"))
        for index, key in enumerate(names[:3]):  # the first groups; more would tangle
            label = name if len(names) == 1 else f"{name} ({key.rsplit('/', 1)[-1]})"
            values = series[key].values
            if floor is not None:
                values = [max(v, floor) for v in values]
            if ylog:
                values = [v if v > 0 else np.nan for v in values]
            panel.traces.append(_line(key, series[key].steps, values, label, color, dashes[index % 3]))
    return panel


def _sharpness_panel(data: ReportData) -> Panel:
    panel = Panel("Sharpness (solid) and its stability limit (dotted)", "step", "top eigenvalue", ylog=True)
    for run_id, series in data.instruments.items():
        if "sharpness" not in series:
            continue
        name, color = _config_name(data, run_id)
        panel.traces.append(
            _line("sharpness", series["sharpness"].steps, series["sharpness"].values, name, color)
        )
        limit = series.get("sharpness_limit")
        if limit is not None:
            trace = _line("limit", limit.steps, limit.values, name, color, "dot")
            trace.show_legend = False
            panel.traces.append(trace)
    return panel


def _marks(findings: list[Finding], drawn: set[str]) -> list[VLine]:
    """The first findings of the drawn runs, as vertical lines named by their kind."""
    found = [f for f in findings if f.step is not None and drawn & set(f.run_ids)]
    return [VLine(float(f.step), f.kind.replace("_", " "), color="#d62728") for f in found[:MAX_MARKS]]


def instruments_figure(data: ReportData) -> FigureSpec:
    """Update ratio (log, the usual 1e-3 marked), LR used / scheduled, and where recorded
    the sharpness and the noise scale, of the best runs; the findings as red lines."""
    panels = [
        _panel(data, "update_ratio/", "Update-to-weight ratio per step (1e-3 is the usual)", "||dw|| / ||w||",
               ylog=True, hline=USUAL_RATIO),
        _panel(data, "lr_audit/", "LR used / LR the schedule gives (1 when they agree; log scale)", "ratio",
               ylog=True, hline=1.0),
    ]  # fmt: skip
    if any("step_probe" in s for s in data.instruments.values()):
        panels.append(_panel(data, "step_probe", "Step probe: where the loss along each update bottoms out "
                             "(1: at the step; 2+: steps too short)",
                             "updates (log)", ylog=True, hline=1.0, floor=PROBE_FLOOR))  # fmt: skip
    if any("sharpness" in s for s in data.instruments.values()):
        panels.append(_sharpness_panel(data))
    if any("noise_scale" in s for s in data.instruments.values()):
        panels.append(_panel(data, "noise_scale", "Gradient noise scale B_simple (critical batch size)", "examples",
                             ylog=True, hline=None))  # fmt: skip
    marks = _marks(data.findings, set(data.instruments))
    for panel in panels:
        panel.vlines = list(marks)
    panels = [p for p in panels if p.traces]
    return FigureSpec(
        key="instruments",
        title="Instruments of the best runs",
        caption=(
            "What the instruments read while the best configurations trained (their first seed): the step's "
            "update relative to the weights per param group, the LR each group used over the one its schedule "
            "gives, where the loss of a fixed batch bottoms out along each update (in updates: the step probe; "
            f"drawn at {PROBE_FLOOR:g} where the loss rose along it), "
            "and where they were on, the sharpness against 2/lr (38/lr for Adam's preconditioned form) "
            "and the gradient noise scale. Red lines: the steps where the instruments made a finding."
        ),
        panels=panels,
        columns=1,
        legend="below",
    )
