"""``lrlab runs list|show|export|rm`` on a store filled by real training runs."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from lrlab.cli.app import app
from lrlab.store.queries import EXPORT_COLUMNS, epochs_frame, export_records, runs_frame, steps_frame
from lrlab.store.sqlite import Store
from lrlab.sweeps import run_sweep

runner = CliRunner()

SPEC = {
    "name": "runs-cli",
    "task": "digits-linear",
    "task_options": {"train_size": 96, "val_size": 48},
    "epochs": 2,
    "batch_size": 32,
    "seeds": [0, 1],
    "grid": {"lr": [0.2, 300.0], "optimizer": ["sgd"]},
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "runs.db"
    run_sweep(SPEC, Store(path))
    return path


def test_list_shows_every_run(db):
    result = runner.invoke(app, ["runs", "list", "--db", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "4 runs" in result.output and "diverged" in result.output and "done" in result.output
    only = runner.invoke(
        app, ["runs", "list", "--db", str(db), "--status", "diverged"], env={"COLUMNS": "200"}
    )
    assert "2 runs" in only.output


def test_list_keeps_one_run_per_line_at_80_columns(db):
    result = runner.invoke(app, ["runs", "list", "--db", str(db)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    # one task: named in the title (whole, however long the store's path), not in a column
    assert f"4 runs in {db}, task digits-linear" in " ".join(result.output.split())
    rows = [line for line in result.output.splitlines() if any(s in line for s in (" done ", " diverged "))]
    assert len(rows) == 4 and all(len(line) <= 80 for line in result.output.splitlines())
    store = Store(db, readonly=True)
    ids = {r.id[:8] for r in store.runs()}
    assert {line.split()[0] for line in rows} == ids  # ids whole, never folded


def test_export_json_is_the_stable_record_format(db):
    result = runner.invoke(
        app, ["runs", "export", "--db", str(db), "--sweep", "runs-cli", "--format", "json"]
    )
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert len(records) == 4
    for record in records:
        assert {"id", "sweep", "status", "config", "error", "final"} <= set(record)
        assert record["sweep"] == "runs-cli"
    done = [r for r in records if r["status"] == "done"]
    assert len(done) == 2
    for record in done:
        assert record["error"] is None and record["config"]["lr"] == 0.2
        assert record["final"]["epoch"] == 2
        assert 0 < record["final"]["train_loss"] < 2.5 and 0 <= record["final"]["val_accuracy"] <= 1
    diverged = [r for r in records if r["status"] == "diverged"]
    assert all(r["error"] and r["config"]["lr"] == 300.0 for r in diverged)


def test_export_csv_has_stable_columns(db):
    result = runner.invoke(app, ["runs", "export", "--db", str(db), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert len(rows) == 4 and json.loads(rows[0]["config"])["task"] == "digits-linear"


def test_show_by_prefix(db):
    record = export_records(db, "runs-cli")[0]
    result = runner.invoke(app, ["runs", "show", record["id"][:6], "--db", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert record["id"] in result.output and "2 epochs" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["show", "zzzz"], "no run 'zzzz'", id="unknown-run"),
        pytest.param(["export", "--format", "xml"], "--format must be json or csv", id="format"),
        pytest.param(["list", "--status", "great"], "--status must be one of", id="status"),
        pytest.param(["list", "--sweep", "nope"], "no sweep 'nope'", id="sweep"),
        pytest.param(["rm"], "give run ids or --sweep NAME", id="rm-nothing"),
    ],
)
def test_bad_input_exits_2(db, args, fragment):
    result = runner.invoke(app, ["runs", *args, "--db", str(db)])
    assert result.exit_code == 2
    assert fragment in result.output


def test_missing_database_exits_2(tmp_path):
    result = runner.invoke(app, ["runs", "list", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "no run store at" in result.output
    assert not (tmp_path / "none.db").exists()


def test_rm_asks_for_confirmation(tmp_path):
    path = tmp_path / "rm.db"
    run_sweep({**SPEC, "name": "rm-me", "seeds": [0], "grid": {"lr": [0.2]}}, Store(path))
    (record,) = export_records(path)
    declined = runner.invoke(app, ["runs", "rm", record["id"], "--db", str(path)], input="n\n")
    assert declined.exit_code == 1 and len(Store(path).runs()) == 1
    accepted = runner.invoke(app, ["runs", "rm", record["id"], "--db", str(path)], input="y\n")
    assert accepted.exit_code == 0 and "deleted 1 run" in accepted.output
    assert Store(path).runs() == [] and Store(path).step_count(record["id"]) == 0


def test_rm_whole_sweep_with_yes(tmp_path):
    path = tmp_path / "rm.db"
    run_sweep({**SPEC, "name": "rm-all", "seeds": [0], "grid": {"lr": [0.2, 0.1]}}, Store(path))
    result = runner.invoke(app, ["runs", "rm", "--sweep", "rm-all", "--yes", "--db", str(path)])
    assert result.exit_code == 0 and "deleted 2 run" in result.output
    assert Store(path).sweeps() == [] and Store(path).integrity_check() == "ok"


def test_dataframes(db):
    pytest.importorskip("pandas")
    runs = runs_frame(db, "runs-cli")
    assert list(runs.columns) == list(EXPORT_COLUMNS) and len(runs) == 4
    assert set(runs["status"]) == {"done", "diverged"}
    epochs = epochs_frame(db, "runs-cli")
    assert set(epochs.groupby("run_id")["epoch"].max()) <= {1, 2}
    done_id = runs.loc[runs["status"] == "done", "id"].iloc[0]
    steps = steps_frame(db, done_id)
    assert len(steps) == 2 * 3 and (steps["lr"] == 0.2).all()
