"""What every figure of the report shares on its axes: the loss label (in the loss the
runs' task declared) and a y axis that covers the runs that did not diverge, with the
divergence markers of the others on its edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lrlab.plot.spec import Panel

if TYPE_CHECKING:
    from lrlab.report.data import ReportData

__all__ = ["LOSS_NAME", "LOSS_UNIT", "fit_y", "loss_label", "spans_a_decade"]


LOSS_NAME = "cross-entropy"  # what the tasks' loss is
LOSS_UNIT = "nats"


def loss_label(
    what: str = "loss", *, loss: str = LOSS_NAME, unit: str | None = LOSS_UNIT, data: ReportData | None = None
) -> str:
    """The one way a loss is labelled on an axis: ``what`` with the loss and its unit.

    Every loss axis of the report takes its label from here, so that a task with another
    loss (a mean squared error, a custom metric) changes it in one place. With ``data``,
    the loss is the one the runs' tasks declared (``RunRecord.objective``); runs of tasks
    with different losses get the plain word.

    >>> loss_label("validation loss")
    'validation loss (cross-entropy, nats)'
    >>> loss_label("loss", loss="MSE", unit=None)
    'loss (MSE)'
    """
    if data is not None:
        declared = {(o.loss, o.unit) for o in (r.objective for r in data.runs) if o is not None}
        if len(declared) > 1:
            return what
        if declared:
            loss, unit = declared.pop()
    inside = f"{loss}, {unit}" if unit else loss
    return f"{what} ({inside})"


def spans_a_decade(curves: Sequence[np.ndarray]) -> bool:
    """Whether the positive finite values of ``curves`` span more than a factor of ten: then a
    linear axis squashes the lowest losses, the ones a reader compares, at its bottom."""
    values = np.concatenate([np.asarray(c, dtype=np.float64) for c in curves]) if curves else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    return bool(len(values)) and float(values.max()) > 10 * float(values.min())


def fit_y(panel: Panel, kept: Sequence[np.ndarray], *, pad: float = 0.05, floor: float | None = None) -> None:
    """Clip the panel's y axis to the range of ``kept`` (the curves of runs that did not
    diverge) when some other trace leaves it, and put every divergence marker (``x``) that
    would be off the chart or non-finite on its top edge. ``floor`` is a lowest bottom (0
    for a loss) used when the kept curves stay above it; a log axis pads by factors."""
    values = [np.asarray(k, dtype=np.float64) for k in kept]
    finite = [v[np.isfinite(v) & ((v > 0) if panel.ylog else True)] for v in values]
    finite = [v for v in finite if len(v)]
    if not finite:
        _markers_to_edge(panel, None)
        return
    low = min(float(v.min()) for v in finite)
    high = max(float(v.max()) for v in finite)
    if panel.ylog:
        bottom, top = low / 1.5, high * 1.5
    else:
        span = (high - low) or abs(high) or 1.0
        bottom, top = low - pad * span, high + pad * span
        if floor is not None and low >= floor:
            bottom = max(bottom, floor)
    every = [t.y[np.isfinite(t.y)] for t in panel.traces if t.marker != "x"]
    outside = any(len(v) and (v.max() > top or v.min() < bottom) for v in every)
    if outside:
        panel.ylim = (bottom, top)
    _markers_to_edge(panel, (bottom, top) if outside else None)


def _markers_to_edge(panel: Panel, ylim: tuple[float, float] | None) -> None:
    lines = [t.y[np.isfinite(t.y)] for t in panel.traces if t.marker != "x"]
    lines = [v for v in lines if len(v)]
    if ylim is None:
        top = max((float(v.max()) for v in lines), default=1.0)
        edge = top
    else:
        top = ylim[1]
        edge = top / 1.08 if panel.ylog else top - 0.03 * (top - ylim[0])
    for t in panel.traces:
        if t.marker == "x":
            y = np.asarray(t.y, dtype=np.float64)
            ok = np.isfinite(y) & (y <= top) & ((y > 0) if panel.ylog else True)
            t.y = np.where(ok, y, edge)
