"""``lrlab schedule``: a table of key points, figures, and one-line errors for bad specs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lrlab.cli.app import app
from lrlab.schedules import parse

runner = CliRunner()
COSINE = "cosine(lr=0.1, total_steps=100, final_lr=0.001)"
CYCLIC = "cyclic(base_lr=0.1, max_lr=1.0, step_size=10)"


def lrlab(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a fresh process."""
    code = "import sys; from lrlab.cli import main; sys.argv = ['lrlab', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def table_rows(output: str) -> list[list[str]]:
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[1]:
            rows.append(cells)
    return rows


def test_table_shows_key_points_of_each_schedule():
    result = runner.invoke(app, ["schedule", COSINE, CYCLIC, "--steps", "101"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    header, cosine_row, cyclic_row = rows[0], rows[1], rows[-1]
    assert header[1:] == ["start", "peak (step)", "minimum (step)", "end", "peak / end"]
    assert cosine_row[1:] == ["0.1", "0.1 (0)", "0.001 (100)", "0.001", "100x"]
    # Cyclic: peak at step 10, back at base_lr at step 20 (first such step is 0), 0.1 at step 100.
    assert cyclic_row[1:] == ["0.1", "1 (10)", "0.1 (0)", "0.1", "10x"]
    assert "Key points over 101 steps" in result.output


def test_table_says_inf_when_a_schedule_ends_at_zero():
    result = runner.invoke(app, ["schedule", "linear(start_lr=1.0, end_lr=0.0, total_steps=9)", "-n", "10"])
    assert result.exit_code == 0
    assert table_rows(result.output)[1][1:] == ["1", "1 (0)", "0 (9)", "0", "inf"]


def check_png(path, log_y=False):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size == (960, 540)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    # A drawing, not a blank canvas: many distinct grey levels and a fair share of ink.
    assert len(np.unique(pixels)) > 20
    assert (pixels < 200).mean() > 0.01


@pytest.mark.parametrize("log_y", [False, True], ids=["linear", "log-y"])
def test_png_figure_is_written(tmp_path, log_y):
    out = tmp_path / "figs" / "schedules.png"
    args = ["schedule", COSINE, CYCLIC, "--steps", "300", "--out", str(out)]
    result = runner.invoke(app, [*args, "--log-y"] if log_y else args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    check_png(out)


def test_svg_figure_holds_one_line_per_schedule(tmp_path):
    out = tmp_path / "schedules.svg"
    result = runner.invoke(app, ["schedule", COSINE, CYCLIC, "--steps", "200", "--out", str(out)])
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert out.stat().st_size > 20_000
    # Both specs label their lines in the legend (matplotlib writes text as glyph paths,
    # so count the line2d elements instead).
    assert len(re.findall(r'id="line2d_\d+"', svg)) >= 2


def test_html_figure_is_interactive_offline_with_the_exact_values(tmp_path):
    out = tmp_path / "schedules.html"
    result = runner.invoke(app, ["schedule", COSINE, CYCLIC, "--steps", "150", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert out.stat().st_size > 1_000_000  # plotly.js embedded: works offline
    assert '<script src="https://cdn.plot.ly' not in html
    for spec in (COSINE, CYCLIC):
        assert json.dumps(str(parse(spec)))[1:-1] in html
    assert '"label":"log y"' in html  # drawn by the report's renderer: linear/log toggle


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param(
            "cosine(lr=0.1, total_steps=100",
            "expected ',' or ')', found the end at position 30",
            id="unclosed",
        ),
        pytest.param("cosin(lr=0.1)", "unknown schedule 'cosin'", id="unknown-name"),
        pytest.param(
            "cyclic(base_lr=1.0, max_lr=0.1, step_size=3)",
            "max_lr must be >= base_lr (1.0), got 0.1 at position 20",
            id="max-below-base",
        ),
        pytest.param(
            "step_decay(lr=0.1, step_size=0)", "step_size must be > 0, got 0 at position 19", id="zero-step"
        ),
        pytest.param(
            "__import__('os').system('echo hacked')", "unexpected character '.' at position 16", id="no-eval"
        ),
        pytest.param(
            'cyclic(base_lr=0.1, max_lr=1, step_size=5, mode="zigzag")', "mode must be one of", id="mode"
        ),
    ],
)
def test_bad_spec_is_one_line_naming_problem_and_position_exit_2(spec, fragment):
    result = lrlab("schedule", spec, "--steps", "10")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: bad schedule spec")
    assert fragment in lines[0]
    assert "position" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "hacked" not in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--out", "figure.pdf"], "--out must end in one of .png, .svg, .html"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, fragment, tmp_path):
    result = runner.invoke(app, ["schedule", COSINE, *args])
    assert result.exit_code == 2
    assert fragment in result.output
    assert not (tmp_path / "figure.pdf").exists()


def test_help_has_examples():
    result = runner.invoke(app, ["schedule", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "lrlab schedule" in result.output
