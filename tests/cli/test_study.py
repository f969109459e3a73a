"""``lrlab study`` end to end on a real task, resuming, and its bad-input errors."""

import json
import sqlite3
import subprocess
import sys

import pytest

from lrlab.store.sqlite import Store


def _study(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "lrlab.cli", "study", *args],
        capture_output=True, text=True, cwd=cwd, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_study_trains_reports_recommends_and_resumes(tmp_path):
    db, out = tmp_path / "runs.db", tmp_path / "study"
    args = [
        "--task",
        "digits-linear",
        "--optimizers",
        "sgdm",
        "--db",
        str(db),
        "--out",
        str(out),
        "--jobs",
        "1",
        "--epochs",
        "3",
    ]
    first = _study(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    store = Store(db)
    runs = store.runs()
    assert len(runs) == 18  # one optimizer x two LRs (finder's, 3x) x nine schedules x one seed
    assert {r.status for r in runs} <= {"done", "diverged"}
    (finder,) = store.finder_results()
    anchor = finder.suggestions["minimum/10"]  # the study's LRs: 1x and 3x the anchor
    assert sorted({r.config.lr for r in runs}) == pytest.approx([anchor, 3 * anchor], rel=1e-12)
    assert finder.config["rule"] == "minimum/3"  # the finder's own recommendation for SGD, printed
    assert f"recommends lr {finder.lr:.3g} (minimum/3)" in first.stdout
    html = (out / "report.html").read_text()
    assert "plotly" in html.lower() and len(html) > 100_000
    assert len(list((out / "figures").glob("*.png"))) >= 4
    md = (out / "recommendation.md").read_text()
    assert "Recommended: sgd(momentum=0.9)" in md and "LRScheduler(optimizer, parse(" in md
    accuracy = float(md.split("accuracy ")[1].split("%")[0]) / 100
    assert accuracy > 0.9  # softmax regression on digits reaches ~95%
    assert "3 epochs (69 steps) per run" in md

    with sqlite3.connect(db) as conn:
        steps_before = conn.execute("SELECT COUNT(*) FROM step_metrics").fetchone()[0]
    again = _study(*args, "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as conn:
        steps_after = conn.execute("SELECT COUNT(*) FROM step_metrics").fetchone()[0]
    assert steps_after == steps_before  # nothing retrained
    assert len(Store(db).finder_results()) == 1  # the range test was reused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--budget", "huge"], "--budget must be one of small, medium, large", id="budget"),
        pytest.param(["--optimizers", "sgdx"], "unknown optimizer 'sgdx'", id="optimizer"),
        pytest.param(["--task", "no-such-task"], "no-such-task", id="task"),
        pytest.param(["--jobs", "0"], "--jobs must be >= 1", id="jobs"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = _study(*args, "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists() or not Store(tmp_path / "x.db").runs()


def test_help_has_examples():
    result = subprocess.run(
        [sys.executable, "-m", "lrlab.cli", "study", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Examples" in result.stdout and "lrlab study" in result.stdout
    json.dumps(result.stdout)


def test_a_tie_on_error_is_explained_by_the_validation_loss():
    from types import SimpleNamespace

    from lrlab.store.records import EpochRecord, RunRecord
    from lrlab.study.recommend import recommend
    from lrlab.study.summary import verdict_lines as _verdict_lines

    def run(run_id, optimizer):
        config = {"task": "t", "optimizer": optimizer, "schedule": "constant(lr=0.1)", "lr": 0.1, "seed": 0}
        return RunRecord(id=run_id, sweep="s", status="done", config=config, seed=0)

    epochs = {
        "a": [EpochRecord("a", 1, 10, 0.5, 0.30, 0.05, 0.95, 1.0)],
        "b": [EpochRecord("b", 1, 10, 0.5, 0.20, 0.05, 0.95, 1.0)],
    }
    rec = recommend([run("a", "sgd"), run("b", "adam")], epochs)
    lines = _verdict_lines(SimpleNamespace(recommendation=rec, total_steps=10))
    assert lines[0].startswith("Recommended: adam with constant peaking at lr=0.1")
    assert "ties with the runner-up (sgd, constant) on validation error" in lines[2]
    assert "(0.2 vs 0.3)" in lines[2]
