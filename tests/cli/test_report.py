"""``lrlab report``: from a real store to an HTML page and PNGs; bad input exits 2 in one line."""

from __future__ import annotations

import pytest
from tests.report.synthetic import save_to_store, synthetic_sweep
from typer.testing import CliRunner

from lrlab.cli.app import app
from lrlab.store.sqlite import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "lrlab.db"
    store = Store(path)
    save_to_store(
        store, synthetic_sweep(lrs=(0.01, 0.1, 2.0), seeds=(0,), epochs=4, steps_per_epoch=30), "grid"
    )
    store.close()
    return path


def test_report_of_a_sweep_writes_the_page_and_lists_the_diagnostics(db, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "--db", str(db), "--sweep", "grid", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1_000_000  # plotly.js is inside
    assert "3 runs in 3 configurations" in result.output
    assert "divergence starts at lr=2" in result.output


@pytest.mark.slow
def test_report_of_chosen_runs_with_png_and_svg(db, tmp_path):
    ids = [r.id for r in Store(db).runs(sweep="grid")][:2]
    result = runner.invoke(
        app, ["report", "--db", str(db), "--runs", ",".join(ids), "--out", str(tmp_path / "r.html"),
              "--png", str(tmp_path / "png"), "--svg"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert "report_loss.png" in names and "report_loss.svg" in names
    assert len(names) % 2 == 0 and len(names) >= 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "nope"], "sweep 'nope' has no runs"),
        (["--runs", "zzz"], "run id 'zzz': no run matches it"),
        (["--sweep", "grid", "--runs", "x"], "either --sweep or --runs"),
        (["--sweep", "grid", "--out", "r.pdf"], "--out must end in .html"),
        (["--sweep", "grid", "--svg"], "--svg needs --png"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(db, tmp_path, args, message):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "r.html")]
    result = runner.invoke(app, ["report", "--db", str(db), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_or_empty_store_exits_2(tmp_path):
    result = runner.invoke(
        app, ["report", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2 and "no run store" in result.output
    assert not (tmp_path / "none.db").exists()  # never created by a report
    Store(tmp_path / "empty.db").close()
    result = runner.invoke(
        app, ["report", "--db", str(tmp_path / "empty.db"), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2 and "has no runs" in result.output


@pytest.mark.slow
def test_end_to_end_from_a_real_tiny_sweep(tmp_path):
    sweep = tmp_path / "tiny.toml"
    sweep.write_text(
        'name = "e2e"\ntask = "digits-linear"\ntask_options = { train_size = 96, val_size = 48 }\n'
        "epochs = 3\nbatch_size = 32\nseeds = [0]\n\n[grid]\nlr = [0.05, 0.5, 200.0]\n"
        'optimizer = ["sgd"]\nschedule = ["cosine(lr={lr}, total_steps={total_steps})"]\n'
    )
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["sweep", str(sweep), "--db", str(db), "-q"])
    assert result.exit_code in (0, 1), result.output  # 1: a run diverged or failed
    out = tmp_path / "e2e.html"
    result = runner.invoke(
        app, ["report", "--db", str(db), "--sweep", "e2e", "--out", str(out), "--png", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "Best configuration" in result.output
    assert (tmp_path / "report_loss.png").stat().st_size > 20_000
    statuses = {r.config.lr: r.status for r in Store(db).runs(sweep="e2e")}
    if statuses[200.0] == "diverged":
        assert "divergence starts at lr=200" in result.output
