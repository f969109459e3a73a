"""Pictures of trajectories: a PNG contour map, an animated GIF, an interactive HTML page.

The surface is evaluated once on a grid; every optimizer's path is drawn over its
contours in its own colour, the start as a circle and the known minima as stars.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lrlab.surfaces.catalog import Surface
from lrlab.surfaces.trajectory import Trajectory

__all__ = ["FIGURE_SUFFIXES", "write_surface_figure"]

FIGURE_SUFFIXES = (".png", ".svg", ".gif", ".html")
_COLORS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip


def write_surface_figure(
    trajectories: Sequence[Trajectory],
    out: Path | str,
    *,
    title: str | None = None,
    max_frames: int = 60,
    resolution: int = 160,
) -> Path:
    """Draw ``trajectories`` (all on the same surface) into ``out``: .png/.svg, .gif or .html."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"output must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")
    if not trajectories:
        raise ValueError("trajectories must not be empty")
    surface = trajectories[0].surface
    title = title or f"{surface.name}: {len(trajectories)} optimizer(s)"
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        _write_html(surface, trajectories, out, title, max_frames, resolution)
    elif suffix == ".gif":
        _write_gif(surface, trajectories, out, title, max_frames, resolution)
    else:
        _write_static(surface, trajectories, out, title, resolution)
    return out


def frame_steps(total_steps: int, max_frames: int) -> list[int]:
    """Step counts shown by the animation frames / slider positions: 0..total, at most max_frames."""
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    count = min(total_steps + 1, max_frames)
    return sorted({round(v) for v in np.linspace(0, total_steps, count)})


def _levels(surface: Surface, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contour values (shifted to be >= 0 so that log spacing works) and the levels."""
    shifted = z - np.nanmin(z)
    top = float(np.nanpercentile(shifted, 98))
    if surface.log_contours:
        floor = max(top * 1e-5, 1e-12)
        return shifted, np.geomspace(floor, max(top, floor * 10), 30)
    # Square-root spacing puts more lines near the floor of a quadratic bowl.
    return shifted, (np.linspace(0.0, np.sqrt(max(top, 1e-12)), 30) ** 2)[1:]


def _clip(points: np.ndarray, surface: Surface) -> np.ndarray:
    # Keep escaping paths drawable: clip to a margin around the box.
    (x0, x1), (y0, y1) = surface.x_range, surface.y_range
    mx, my = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    finite = points[np.all(np.isfinite(points), axis=1)]
    return np.column_stack([np.clip(finite[:, 0], x0 - mx, x1 + mx), np.clip(finite[:, 1], y0 - my, y1 + my)])


def _draw_contours(ax, surface: Surface, resolution: int) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.colors import LogNorm

    x, y, z = surface.grid(resolution)
    shifted, levels = _levels(surface, z)
    norm = LogNorm(vmin=levels[0], vmax=levels[-1]) if surface.log_contours else None
    ax.contourf(
        x,
        y,
        np.maximum(shifted, levels[0]),
        levels=levels,
        cmap="viridis_r",
        norm=norm,
        alpha=0.55,
        extend="both",
    )
    ax.contour(x, y, shifted, levels=levels, colors="k", linewidths=0.3, alpha=0.35)
    for mx, my in surface.minima:
        ax.plot(mx, my, marker="*", color="gold", markeredgecolor="k", markersize=15, zorder=5)
    ax.set_xlim(*surface.x_range)
    ax.set_ylim(*surface.y_range)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_static(
    surface: Surface, trajectories: Sequence[Trajectory], out: Path, title: str, resolution: int
) -> None:
    plt = _pyplot()
    fig, (ax, ax_loss) = plt.subplots(
        1, 2, figsize=(13, 5.2), layout="constrained", gridspec_kw={"width_ratios": [1.9, 1]}
    )
    _draw_contours(ax, surface, resolution)
    for index, traj in enumerate(trajectories):
        color = _COLORS[index % len(_COLORS)]
        pts = _clip(traj.points, surface)
        ax.plot(
            pts[:, 0], pts[:, 1], "-", color=color, linewidth=1.4, marker=".", markersize=2.5, label=traj.name
        )
        ax.plot(*pts[0], "o", color=color, markeredgecolor="k", markersize=6)
        gaps = traj.gaps if traj.gaps is not None else traj.losses - np.nanmin(traj.losses)
        ax_loss.plot(
            np.arange(len(gaps)), np.maximum(gaps, 1e-16), color=color, linewidth=1.3, label=traj.name
        )
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss - minimum" if surface.min_value is not None else "loss - lowest seen")
    if trajectories[0].tol > 0 and surface.min_value is not None:
        ax_loss.axhline(trajectories[0].tol, color="k", linestyle=":", linewidth=1, label="tol")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.set_title("distance to the minimum's value")
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _write_gif(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    out: Path,
    title: str,
    max_frames: int,
    resolution: int,
) -> None:
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    # No layout engine: re-laying out the text on every frame dominated the run time.
    fig, ax = plt.subplots(figsize=(7.5, 5))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.1, top=0.92)
    _draw_contours(ax, surface, resolution)
    paths = [_clip(t.points, surface) for t in trajectories]
    lines = []
    for index, traj in enumerate(trajectories):
        color = _COLORS[index % len(_COLORS)]
        ax.plot(*paths[index][0], "o", color=color, markeredgecolor="k", markersize=6)
        (line,) = ax.plot([], [], "-", color=color, linewidth=1.5, label=traj.name)
        (head,) = ax.plot([], [], "o", color=color, markersize=5)
        lines.append((line, head))
    ax.legend(fontsize=7, loc="best")
    frames = frame_steps(max(len(p) - 1 for p in paths), max_frames)

    def draw(step: int):  # type: ignore[no-untyped-def]
        for (line, head), pts in zip(lines, paths):
            shown = pts[: step + 1]
            line.set_data(shown[:, 0], shown[:, 1])
            head.set_data(shown[-1:, 0], shown[-1:, 1])
        ax.set_title(f"{title} - step {step}")
        return [artist for pair in lines for artist in pair]

    animation = FuncAnimation(fig, draw, frames=frames, blit=False)
    animation.save(out, writer=PillowWriter(fps=12), dpi=80)
    plt.close(fig)


def _write_html(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    out: Path,
    title: str,
    max_frames: int,
    resolution: int,
) -> None:
    import plotly.graph_objects as go

    x, y, z = surface.grid(resolution)
    shifted, levels = _levels(surface, z)
    shown_z = np.log10(np.maximum(shifted, levels[0])) if surface.log_contours else shifted
    contour = go.Contour(
        x=x[0],
        y=y[:, 0],
        z=shown_z,
        colorscale="Viridis",
        reversescale=True,
        opacity=0.6,
        ncontours=30,
        showscale=True,
        colorbar={"title": "log10(loss - min)" if surface.log_contours else "loss - min"},
        hoverinfo="skip",
        name="surface",
    )
    # Rounded to ~6 significant digits of the box: the page stays small with many frames.
    decimals = max(0, 5 - int(np.floor(np.log10(surface.span))))
    paths = [np.round(_clip(t.points, surface), decimals) for t in trajectories]
    frames_at = frame_steps(max(len(p) - 1 for p in paths), max_frames)

    def path_traces(step: int, hover: bool = False) -> list[go.Scatter]:
        traces = []
        for index, (traj, pts) in enumerate(zip(trajectories, paths)):
            shown = pts[: step + 1]
            extra = {}
            if hover:
                losses = np.array([float(f"{v:.5g}") for v in traj.losses[: len(shown)]])
                extra = {
                    "customdata": np.column_stack([np.arange(len(shown)), losses]),
                    "hovertemplate": "step %{customdata[0]}<br>x=%{x:.4g}, y=%{y:.4g}<br>"
                    "loss %{customdata[1]:.4g}<extra>" + traj.name + "</extra>",
                }
            traces.append(
                go.Scatter(
                    x=shown[:, 0].astype(np.float32),
                    y=shown[:, 1].astype(np.float32),
                    mode="lines+markers",
                    marker={"size": 4},
                    line={"color": _COLORS[index % len(_COLORS)], "width": 2},
                    name=traj.name,
                    **extra,
                )
            )
        return traces

    minima = go.Scatter(
        x=[m[0] for m in surface.minima],
        y=[m[1] for m in surface.minima],
        mode="markers",
        marker={"symbol": "star", "size": 16, "color": "gold", "line": {"color": "black", "width": 1}},
        name="minimum",
    )
    trace_ids = list(range(2, 2 + len(trajectories)))
    frames = [go.Frame(data=path_traces(step), traces=trace_ids, name=str(step)) for step in frames_at]
    slider = {
        "active": len(frames_at) - 1,
        "currentvalue": {"prefix": "step "},
        "steps": [
            {
                "label": str(step),
                "method": "animate",
                "args": [[str(step)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
            }
            for step in frames_at
        ],
    }
    play = {
        "type": "buttons",
        "direction": "left",
        "x": 0.0,
        "y": -0.08,
        "buttons": [
            {
                "label": "play",
                "method": "animate",
                "args": [None, {"frame": {"duration": 80, "redraw": True}, "fromcurrent": True}],
            },
            {
                "label": "pause",
                "method": "animate",
                "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}],
            },
        ],
    }
    fig = go.Figure(data=[contour, minima, *path_traces(frames_at[-1], hover=True)], frames=frames)
    fig.update_layout(
        title=title,
        xaxis={"title": "x", "range": list(surface.x_range)},
        yaxis={"title": "y", "range": list(surface.y_range)},
        template="plotly_white",
        sliders=[slider],
        updatemenus=[play],
        height=640,
    )
    fig.write_html(out, include_plotlyjs=True, full_html=True, auto_play=False)
