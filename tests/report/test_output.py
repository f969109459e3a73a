"""The HTML page and the PNG/SVG files written from a known sweep."""

import re

import numpy as np
import pytest
from tests.report.synthetic import synthetic_sweep

from lrlab.plot.static import write_figure
from lrlab.report.data import build_report_data
from lrlab.report.figures import build_figures
from lrlab.report.render import write_report

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def data():
    sw = synthetic_sweep(lrs=(0.01, 0.3, 2.0), seeds=(0, 1), epochs=5, steps_per_epoch=40, task=XSS)
    return build_report_data(sw.runs, sw.epochs, sw.steps, title=f"Sweep {XSS}")


@pytest.fixture(scope="module")
def page(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    write_report(data, out)
    return out.read_text()


def test_plotly_js_is_embedded_exactly_once_and_nothing_is_fetched(page):
    # Booleans only: pytest's diff of a 5 MB string on failure takes minutes.
    copies = page.count("* plotly.js v")
    external = re.findall(r"<(?:script|link|img|iframe)[^>]+(?:src|href)=", page)
    assert copies == 1
    assert external == []


def test_user_text_never_appears_as_markup(page):
    raw = XSS in page
    escaped = page.count("&lt;img src=x onerror=alert(1)&gt;")
    assert not raw
    assert escaped >= 3  # title, heading, shared-axes line / table (the page's own markup)


def test_every_figure_has_a_div_and_a_log_toggle(page):
    missing = [
        key for key in ("loss", "metrics", "gap", "lr", "ucurve", "steps") if f'id="fig-{key}"' not in page
    ]
    toggles = page.count('"label":"log y"')
    assert missing == []
    assert toggles == 6


@pytest.mark.slow
def test_png_of_every_figure_and_svg(data, tmp_path):
    files = write_report(data, None, image_dir=tmp_path, formats=("png",))
    assert [p.name for p in files.images] == [f"report_{k}.png" for k in files.figures]
    assert len(files.figures) == 6
    from PIL import Image

    for path in files.images:
        with Image.open(path) as im:
            assert im.width >= 1200 and im.height >= 600
            pixels = np.asarray(im.convert("L"))
        assert (pixels < 128).mean() > 0.005  # something is drawn, not a blank canvas
    svg = write_figure(build_figures(data)[0], tmp_path / "loss.svg")
    assert "<svg" in svg.read_text()[:2000]


def test_bad_output_names_are_rejected(data, tmp_path):
    with pytest.raises(ValueError, match=r"out must end in \.html"):
        write_report(data, tmp_path / "r.pdf")
    with pytest.raises(ValueError, match="formats"):
        write_report(data, None, image_dir=tmp_path, formats=("jpg",))


def test_matplotlib_shows_dollar_signs_and_leading_underscores_as_text(tmp_path):
    from lrlab.plot.static import plain

    sw = synthetic_sweep(
        lrs=(0.1,), seeds=(0,), optimizers=("$x^2$", "_hidden"), epochs=2, steps_per_epoch=10
    )
    data = build_report_data(sw.runs, sw.epochs, sw.steps)
    out = write_figure(build_figures(data)[0], tmp_path / "loss.svg")
    text = out.read_text()
    assert plain("_hidden").endswith("_hidden") and plain("$x$") == r"\$x\$"
    assert text.count("<path") > 10  # drawn without a mathtext error


# ---------------------------------------------------------------- one figure, either renderer


def map_spec():
    """A contour map with a growing path and its moving head, a vertical line and a band."""
    from lrlab.plot.spec import Animation, Contour, FigureSpec, Panel, Span, Trace, VLine

    grid = np.linspace(-1.0, 1.0, 30)
    z = grid[None, :] ** 2 + 4 * grid[:, None] ** 2
    path = np.linspace(-0.9, 0.0, 11)
    panel = Panel(
        "", "x", "y", xlim=(-1, 1), ylim=(-1, 1), contour=Contour(grid, grid, z, np.linspace(0.1, 4, 12)),
        traces=[
            Trace(path, -path, "walker", "walker", "#d62728", mode="lines+markers", animate="grow"),
            Trace(path, -path, "walker now", "walker", "#d62728", mode="markers", show_legend=False,
                  marker_edge="#000000", animate="head"),
        ],
        vlines=[VLine(0.5, "a line")], spans=[Span(-0.5, -0.2, "a band")], hline=0.0,
    )  # fmt: skip
    return FigureSpec("map", "A map", "caption", [panel], log_toggle=False, animation=Animation([0, 5, 10]))


def test_plotly_draws_contours_marks_and_a_step_slider():
    from lrlab.plot.interactive import plotly_figure

    fig = plotly_figure(map_spec())
    kinds = [t["type"] for t in fig["data"]]
    assert kinds == ["contour", "scatter", "scatter"]
    assert fig["data"][0]["z"]["shape"] == "30, 30"
    shapes = fig["layout"]["shapes"]
    assert {s["type"] for s in shapes} == {"rect", "line"} and len(shapes) == 3  # band, vline, hline
    assert {s.get("name") for s in shapes if s.get("showlegend")} == {"a line", "a band"}  # in the legend
    assert not any(a["text"] in ("a line", "a band") for a in fig["layout"].get("annotations", ()))
    assert [f["name"] for f in fig["frames"]] == ["0", "5", "10"]
    assert all(f["traces"] == [1, 2] for f in fig["frames"])
    assert [s["label"] for s in fig["layout"]["sliders"][0]["steps"]] == ["0", "5", "10"]
    assert fig["layout"]["xaxis"]["range"] == [-1, 1]


def test_one_figure_is_written_as_png_svg_html_or_gif(tmp_path):
    from PIL import Image

    from lrlab.plot import save_figure

    spec = map_spec()
    with Image.open(save_figure(spec, tmp_path / "m.png", dpi=60)) as im:
        assert im.format == "PNG" and len(im.convert("RGB").getcolors(1 << 16)) > 30
    assert "<svg" in save_figure(spec, tmp_path / "m.svg").read_text()[:2000]
    page = save_figure(spec, tmp_path / "m.html").read_text()
    assert page.count("* plotly.js v") == 1 and '"name":"10"' in page and "<title>A map</title>" in page
    with Image.open(save_figure(spec, tmp_path / "m.gif", dpi=40)) as im:
        assert im.format == "GIF" and im.n_frames == 3
    with pytest.raises(ValueError, match=r"must end in one of \.png, \.svg, \.html, \.gif"):
        save_figure(spec, tmp_path / "m.jpg")


def test_the_report_page_draws_the_finder_line_and_bounds(tmp_path):
    from lrlab.core.records import FinderRecord
    from lrlab.plot.interactive import plotly_figure

    sw = synthetic_sweep(lrs=(0.01, 0.3), seeds=(0,), epochs=2, steps_per_epoch=10)
    lrs = np.geomspace(1e-4, 10, 40)
    finder = FinderRecord("f", "digits-mlp", "sgd", lrs, np.linspace(2, 1, 40), np.linspace(2, 1, 40), {"valley": 0.2},
                          0.2, "valley", base_lr=0.05, max_lr=0.2)  # fmt: skip
    data = build_report_data(sw.runs, sw.epochs, sw.steps, [finder])
    [spec] = [f for f in build_figures(data) if f.key == "finder"]
    layout = plotly_figure(spec)["layout"]
    # Shapes take data coordinates on a log axis; their labels are legend entries, not text on the curves.
    assert [(s["type"], s["x0"]) for s in layout["shapes"]] == [("rect", 0.05), ("line", 0.2)]
    assert [s["name"] for s in layout["shapes"]] == ["cyclic bounds 0.05-0.2", "chosen lr=0.2 (valley)"]
    assert all(s["showlegend"] for s in layout["shapes"])
    assert not any(a["text"].startswith("chosen") for a in layout.get("annotations", ()))
