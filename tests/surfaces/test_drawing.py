"""Pictures: a PNG contour map, a GIF with one frame per shown step, an offline HTML slider."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from lrlab.surfaces import run_trajectories
from lrlab.surfaces.drawing import frame_steps, surface_figure, write_surface_figure


@pytest.fixture(scope="module")
def trajectories():  # type: ignore[no-untyped-def]
    return run_trajectories("ravine", ["sgd(lr=0.25)", "nesterov(lr=0.05)", "sgd(lr=1.0)"], steps=24)


def test_frame_steps_cover_start_and_end_without_repeats() -> None:
    assert frame_steps(24, 5) == [0, 6, 12, 18, 24]
    assert frame_steps(3, 60) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="max_frames"):
        frame_steps(10, 1)


def test_png_is_a_contour_map_with_a_loss_panel(trajectories, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = write_surface_figure(trajectories, tmp_path / "ravine.png", resolution=40)
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 2 * height  # map and loss panel side by side
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # contours, not a blank canvas


def test_gif_has_one_frame_per_shown_step(trajectories, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = write_surface_figure(trajectories, tmp_path / "ravine.gif", max_frames=5, resolution=40)
    with Image.open(out) as image:
        assert image.format == "GIF"
        assert image.n_frames == 5
        image.seek(0)
        first = image.convert("RGB").tobytes()
        image.seek(4)
        assert image.convert("RGB").tobytes() != first  # the paths grow


def test_html_is_self_contained_with_a_step_slider(trajectories, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = write_surface_figure(trajectories, tmp_path / "ravine.html", max_frames=6, resolution=40)
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=\"https?://", html)  # plotly.js is embedded: works offline
    assert "plotly" in html.lower() and len(html) > 1_000_000
    labels = re.findall(r'"label":"(\d+)","method":"animate"', html)
    assert labels == ["0", "5", "10", "14", "19", "24"]
    assert html.count('"name":"24"') >= 1  # a frame per slider position
    for name in ("sgd(lr=0.25)", "nesterov(lr=0.05)"):
        assert name in html


def test_a_diverged_path_is_still_drawn(trajectories, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert trajectories[2].diverged
    assert write_surface_figure([trajectories[2]], tmp_path / "boom.png", resolution=30).stat().st_size > 0


def test_bad_output_names_the_allowed_suffixes(trajectories, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.gif, \.html"):
        write_surface_figure(trajectories, tmp_path / "x.jpg")


def test_the_picture_is_a_figure_spec_of_a_map_and_a_loss_panel(trajectories) -> None:  # type: ignore[no-untyped-def]
    spec = surface_figure(trajectories, resolution=40)
    assert spec.animation is None and [p.title for p in spec.panels][1] == "distance to the minimum's value"
    surface_map, losses = spec.panels
    assert surface_map.contour is not None and surface_map.contour.z.shape == (40, 40)
    assert (surface_map.xlim, surface_map.ylim) == (
        trajectories[0].surface.x_range,
        trajectories[0].surface.y_range,
    )
    names = [t.name for t in surface_map.traces]
    assert names == [t.name for t in trajectories] + ["start", "minimum"]
    assert all(len(t.x) == traj.steps + 1 for t, traj in zip(surface_map.traces, trajectories))
    assert losses.ylog and [t.name for t in losses.traces][-1].startswith("tolerance")


def test_an_animated_spec_grows_each_path_with_its_current_point(trajectories) -> None:  # type: ignore[no-untyped-def]
    spec = surface_figure(trajectories, resolution=30, loss_panel=False, max_frames=5)
    assert spec.animation is not None and spec.animation.steps == [0, 6, 12, 18, 24]
    [surface_map] = spec.panels
    assert [t.animate for t in surface_map.traces[:2]] == ["grow", "head"]
    path, head = spec.frame(6).panels[0].traces[:2]
    assert len(path.x) == 7 and len(head.x) == 1 and head.x[0] == path.x[-1]


def test_png_and_html_render_from_the_spec(trajectories, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from lrlab.plot import save_figure
    from lrlab.plot.interactive import plotly_figure

    spec = surface_figure(trajectories[:1], resolution=30, loss_panel=False, max_frames=3)
    with Image.open(save_figure(spec, tmp_path / "s.png", dpi=50)) as image:
        assert image.format == "PNG"
    figure = plotly_figure(spec)
    assert [t["type"] for t in figure["data"]] == ["contour", "scatter", "scatter", "scatter", "scatter"]
    assert [f["name"] for f in figure["frames"]] == ["0", "12", "24"]
    assert "plotly" in save_figure(spec, tmp_path / "s.html").read_text()


def test_importing_the_drawing_does_not_import_the_report() -> None:
    import subprocess
    import sys

    code = "import sys, lrlab.surfaces.drawing; sys.exit('lrlab.report' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
