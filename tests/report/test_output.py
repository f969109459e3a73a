"""The HTML page and the PNG/SVG files written from a known sweep."""

import re

import numpy as np
import pytest

from lrlab.report.data import build_report_data
from lrlab.report.figures import build_figures
from lrlab.report.render import write_report
from lrlab.report.static import write_figure
from tests.report.synthetic import synthetic_sweep

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
    from lrlab.report.static import plain

    sw = synthetic_sweep(
        lrs=(0.1,), seeds=(0,), optimizers=("$x^2$", "_hidden"), epochs=2, steps_per_epoch=10
    )
    data = build_report_data(sw.runs, sw.epochs, sw.steps)
    out = write_figure(build_figures(data)[0], tmp_path / "loss.svg")
    text = out.read_text()
    assert plain("_hidden").endswith("_hidden") and plain("$x$") == r"\$x\$"
    assert text.count("<path") > 10  # drawn without a mathtext error
