"""Pictures of trajectories: a PNG contour map, an animated GIF, an interactive HTML page.

The surface is evaluated once on a grid; every optimizer's path is drawn over its
contours in its own colour, the starts as white circles and the known minima as stars.
:func:`surface_figure` builds that picture as a ``FigureSpec`` (``lrlab.plot``) and its two
renderers draw it (matplotlib for PNG/SVG and each GIF frame, plotly for HTML).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lrlab.plot import save_figure
from lrlab.plot.spec import Animation, Contour, FigureSpec, Panel, Trace
from lrlab.surfaces.catalog import Surface
from lrlab.surfaces.trajectory import Trajectory

__all__ = ["FIGURE_SUFFIXES", "surface_figure", "write_surface_figure"]

FIGURE_SUFFIXES = (".png", ".svg", ".gif", ".html")
_COLORS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip
_DPI = {".png": 110, ".svg": 110, ".gif": 80}


def write_surface_figure(
    trajectories: Sequence[Trajectory],
    out: Path | str,
    *,
    title: str | None = None,
    max_frames: int = 60,
    resolution: int = 160,
) -> Path:
    """Draw ``trajectories`` (all on the same surface) into ``out``: .png/.svg (the map and
    the loss gap per step), .gif (the map, one frame per shown step) or .html (the map with
    a step slider)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"output must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")
    if not trajectories:
        raise ValueError("trajectories must not be empty")
    animated = suffix in (".gif", ".html")
    spec = surface_figure(
        trajectories, title=title, resolution=resolution, loss_panel=not animated,
        max_frames=max_frames if animated else None,
    )  # fmt: skip
    return save_figure(spec, out, dpi=_DPI.get(suffix))


def surface_figure(
    trajectories: Sequence[Trajectory],
    *,
    title: str | None = None,
    resolution: int = 160,
    loss_panel: bool = True,
    max_frames: int | None = None,
) -> FigureSpec:
    """The paths of ``trajectories`` over the contours of their surface and, with
    ``loss_panel``, each path's loss minus the minimum per step (log y). With
    ``max_frames`` the paths are animated: at most that many frames, step 0 to the end."""
    if not trajectories:
        raise ValueError("trajectories must not be empty")
    surface = trajectories[0].surface
    animated = max_frames is not None
    panels = [_map_panel(surface, trajectories, resolution, "" if animated else "paths over the loss contours",
                         animated)]  # fmt: skip
    if loss_panel:
        panels.append(_loss_panel(surface, trajectories))
    animation = None
    if max_frames is not None:
        animation = Animation(frame_steps(max(t.steps for t in trajectories), max_frames))
    caption = (
        "Each optimizer's path over the contours of the surface (yellow: low, purple: high), from "
        "the white circle towards the star (a known minimum)."
    )
    if animated:
        caption += " Move the slider or press play to follow the paths step by step."
    if loss_panel:
        caption += (
            " Beside it, the loss minus the minimum's value at every step on a log scale, the "
            "tolerance that counts as arrived dotted."
        )
    return FigureSpec(
        "surface",
        title or f"{surface.name}: {len(trajectories)} optimizer(s)",
        caption,
        panels,
        columns=len(panels),
        log_toggle=False,
        size=(14.0, 5.2) if loss_panel else (9.0, 5.0),
        animation=animation,
    )


def frame_steps(total_steps: int, max_frames: int) -> list[int]:
    """Step counts shown by the animation frames / slider positions: 0..total, at most max_frames."""
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    count = min(total_steps + 1, max_frames)
    return sorted({round(v) for v in np.linspace(0, total_steps, count)})


def _contour(surface: Surface, resolution: int) -> Contour:
    """The surface on a grid, shifted to be >= 0 so that log spacing works, with its levels."""
    x, y, z = surface.grid(resolution)
    shifted = z - np.nanmin(z)
    top = float(np.nanpercentile(shifted, 98))
    if surface.log_contours:
        floor = max(top * 1e-5, 1e-12)
        levels = np.geomspace(floor, max(top, floor * 10), 30)
    else:
        # Square-root spacing puts more lines near the floor of a quadratic bowl.
        levels = (np.linspace(0.0, np.sqrt(max(top, 1e-12)), 30) ** 2)[1:]
    return Contour(x[0], y[:, 0], shifted, levels, log=surface.log_contours, label="loss - min")


def _clip(points: np.ndarray, surface: Surface) -> np.ndarray:
    # Keep escaping paths drawable: clip to a margin around the box.
    (x0, x1), (y0, y1) = surface.x_range, surface.y_range
    mx, my = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    finite = points[np.all(np.isfinite(points), axis=1)]
    return np.column_stack([np.clip(finite[:, 0], x0 - mx, x1 + mx), np.clip(finite[:, 1], y0 - my, y1 + my)])


def _map_panel(
    surface: Surface, trajectories: Sequence[Trajectory], resolution: int, title: str, animated: bool
) -> Panel:
    """The contours, each path (growing and with its current point when ``animated``), the
    starts and the minima."""
    panel = Panel(
        title, "x", "y", xlim=surface.x_range, ylim=surface.y_range, contour=_contour(surface, resolution),
        width=1.9,
    )  # fmt: skip
    # Rounded to ~6 significant digits of the box: an HTML page stays small with many frames.
    decimals = max(0, 5 - int(np.floor(np.log10(surface.span))))
    starts = []
    for index, traj in enumerate(trajectories):
        pts = np.round(_clip(traj.points, surface), decimals)
        hover = [f"{traj.name} | step {i}, loss {v:.4g}" for i, v in enumerate(traj.losses[: len(pts)])]
        color = _COLORS[index % len(_COLORS)]
        panel.traces.append(
            Trace(pts[:, 0], pts[:, 1], traj.name, traj.name, color, mode="lines+markers", marker="circle",
                  marker_size=4, width=1.5, hover=hover, animate="grow" if animated else None)
        )  # fmt: skip
        if animated:
            panel.traces.append(
                Trace(pts[:, 0], pts[:, 1], traj.name + " (now)", traj.name, color, mode="markers",
                      marker="circle", marker_size=8, marker_edge="#000000", show_legend=False, hover=hover,
                      animate="head")
            )  # fmt: skip
        if len(pts):
            starts.append(pts[0])
    if starts:
        xy = np.asarray(starts)
        panel.traces.append(Trace(xy[:, 0], xy[:, 1], "start", "start", "#ffffff", mode="markers",
                                  marker="circle", marker_size=8, marker_edge="#000000"))  # fmt: skip
    if surface.minima:
        xy = np.asarray(surface.minima, dtype=np.float64)
        panel.traces.append(Trace(xy[:, 0], xy[:, 1], "minimum", "minimum", "#ffd700", mode="markers",
                                  marker="star", marker_size=17, marker_edge="#000000"))  # fmt: skip
    return panel


def _loss_panel(surface: Surface, trajectories: Sequence[Trajectory]) -> Panel:
    known = surface.min_value is not None
    panel = Panel(
        "distance to the minimum's value",
        "step",
        "loss - minimum" if known else "loss - lowest seen",
        ylog=True,
    )
    for index, traj in enumerate(trajectories):
        gaps = traj.gaps if traj.gaps is not None else traj.losses - np.nanmin(traj.losses)
        panel.traces.append(
            Trace(np.arange(len(gaps), dtype=np.float64), np.maximum(gaps, 1e-16), traj.name, traj.name,
                  _COLORS[index % len(_COLORS)], width=1.3, show_legend=False)
        )  # fmt: skip
    tol = trajectories[0].tol
    if tol > 0 and known:
        last = float(max(t.steps for t in trajectories))
        panel.traces.append(Trace(np.array([0.0, last]), np.array([tol, tol]), f"tolerance {tol:g}",
                                  "tolerance", "#000000", dash="dot", width=1.0))  # fmt: skip
    return panel
