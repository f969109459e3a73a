"""``lrlab runs list|show|export|rm`` on a store filled by real training runs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
    # one sweep and one task: named in the title (whole, however long the store's path), not in columns
    assert f"4 runs in {db}, sweep runs-cli, task digits-linear" in " ".join(result.output.split())
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
    assert list(rows[0])[: len(EXPORT_COLUMNS)] == list(EXPORT_COLUMNS)
    assert list(rows[0])[len(EXPORT_COLUMNS) :] == ["objective", "objective_higher_is_better"]
    assert {r["objective"] for r in rows} == {"val_error"}
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
    assert list(runs.columns)[: len(EXPORT_COLUMNS)] == list(EXPORT_COLUMNS) and len(runs) == 4
    assert list(runs.columns)[len(EXPORT_COLUMNS) :] == ["objective", "objective_higher_is_better"]
    assert set(runs["status"]) == {"done", "diverged"}
    epochs = epochs_frame(db, "runs-cli")
    assert set(epochs.groupby("run_id")["epoch"].max()) <= {1, 2}
    done_id = runs.loc[runs["status"] == "done", "id"].iloc[0]
    steps = steps_frame(db, done_id)
    assert len(steps) == 2 * 3 and (steps["lr"] == 0.2).all()


# ------------------------------------------------------------------ a study's worth of runs

SCHEDULES = [
    "constant(lr={lr})",
    "cosine(lr={lr}, total_steps=400)",
    "warmup(cosine(lr={lr}, total_steps=360, final_lr=0.0), steps=40)",
    "one_cycle(max_lr={lr}, total_steps=400, pct_start=0.3)",
    "cyclic(base_lr={low}, max_lr={lr}, step_size=50, mode='triangular2')",
    "wsd(lr={lr}, total_steps=400, warmup_steps=40, decay_steps=80, decay_shape='1-sqrt')",
    "step_decay(lr={lr}, step_size=100, gamma=0.5)",
]
OPTIMIZERS = ["sgd(momentum=0.9, nesterov=True)", "adamw(weight_decay=0.01)"]
LRS = [10 ** (-4 + i * 0.4) for i in range(11)]  # 1e-4 .. 1: the top ones diverge


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """154 runs in a real store, as a study of a regression task leaves them: 7 schedules x 11
    LRs x 2 seeds (the optimizer alternating), the task's objective val_mae, val_r2 beside it."""
    from lrlab.core.records import EpochRecord, Objective, RunConfig, RunRecord

    path = tmp_path_factory.mktemp("study") / "study.db"
    store = Store(path)
    store.upsert_sweep("reg-study", {"name": "reg-study"})
    objective = Objective("val_mae", False, "MSE", "", ("val_r2",)).to_dict()
    count = 0
    for s, schedule in enumerate(SCHEDULES):
        for i, lr in enumerate(LRS):
            for seed in (0, 1):
                spec = schedule.format(lr=f"{lr:.4g}", low=f"{lr / 10:.4g}")
                config = RunConfig(task="reg-custom", lr=float(f"{lr:.4g}"), schedule=spec, seed=seed,
                                   optimizer=OPTIMIZERS[(s + i) % 2], epochs=2, batch_size=32)  # fmt: skip
                run_id = f"{count:04d}" + "abcdef0123456789" * 2
                store.begin_run(RunRecord(id=run_id, sweep="reg-study", status="queued", config=config, seed=seed),
                                {"objective": objective})  # fmt: skip
                diverged = i >= 9
                loss = (
                    [1.0 / (1 + lr * 10 * k) for k in range(1, 5)]
                    if not diverged
                    else [1.0, 5.0, float("nan")]
                )
                rows = [(k, 1, [lr], 0.9, v, 1.0) for k, v in enumerate(loss)]
                epochs = [] if diverged else [
                    EpochRecord.of(run_id, e, 2 * e, loss[2 * e - 1], {"val_loss": loss[2 * e - 1] * 1.1,
                                   "val_mae": 0.5 * loss[2 * e - 1] + 0.01 * seed, "val_r2": 1 - loss[2 * e - 1]}, 0.1)
                    for e in (1, 2)
                ]  # fmt: skip
                store.append_metrics(run_id, rows, epochs)
                store.end_run(
                    run_id, "diverged" if diverged else "done", diverged_step=2 if diverged else None
                )
                count += 1
    assert count == 154
    return path


def _rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if " done " in line or " diverged " in line]


def test_a_study_of_154_runs_lists_one_line_per_run_at_80_columns(study_db):
    result = runner.invoke(app, ["runs", "list", "--db", str(study_db)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = _rows(result.output)
    assert len(rows) == 154
    assert len(lines) <= 154 + 8  # title (may wrap once), header, rule, footer
    header = next(line for line in lines if line.lstrip().startswith("id"))
    assert header.split()[-2:] == ["val_mae", "val_r2"]  # the task's objective, then its other metric
    done = [line for line in rows if " done " in line]
    for line in done:  # a number, not "-": the objective is the task's own metric
        float(line.split()[-2])
        float(line.split()[-1])
    assert "objective val_mae (lower is better)" in " ".join(result.output.split())
    assert "126 done, 28 diverged; val_loss with --wide" in result.output
    assert any("warmup-cosine" in line for line in rows)


def test_wide_shows_whole_specs_and_every_metric_full_ids_whole_ids(study_db):
    result = runner.invoke(
        app, ["runs", "list", "--db", str(study_db), "--wide", "--full-ids"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.lstrip().startswith("id"))
    assert header.split()[-3:] == ["val_mae", "val_r2", "val_loss"]
    rows = _rows(result.output)
    assert len(rows) == 154
    store = Store(study_db, readonly=True)
    assert {line.split()[0] for line in rows} == {r.id for r in store.runs()}
    assert any("warmup(cosine(lr=" in line and "steps=40)" in line for line in rows)
    assert any("adamw(weight_decay=0.01)" in line for line in rows)


def test_show_and_every_export_format_carry_the_tasks_own_metric(study_db):
    store = Store(study_db, readonly=True)
    run = store.runs()[0]
    last = store.epochs(run.id)[-1]
    shown = runner.invoke(app, ["runs", "show", run.id[:6], "--db", str(study_db)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "objective: val_mae (lower is better)" in shown.output
    header = next(line for line in shown.output.splitlines() if "train_loss" in line)
    assert "val_mae" in header and "val_r2" in header and "val_error" not in header
    assert f"{last.metrics['val_mae']:.4g}" in shown.output
    as_csv = runner.invoke(app, ["runs", "export", "--db", str(study_db), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 154 and {"final_val_mae", "final_val_r2", "objective"} <= set(rows[0])
    by_id = {r["id"]: r for r in rows}
    assert float(by_id[run.id]["final_val_mae"]) == last.metrics["val_mae"]
    assert by_id[run.id]["objective"] == "val_mae"
    as_json = json.loads(
        runner.invoke(app, ["runs", "export", "--db", str(study_db), "--run", run.id[:6]]).stdout
    )
    assert len(as_json) == 1 and as_json[0]["final"]["val_mae"] == last.metrics["val_mae"]
    assert as_json[0]["objective"]["metric"] == "val_mae"


def test_the_runs_dataframe_carries_the_tasks_objective_and_named_metrics(study_db):
    pandas = pytest.importorskip("pandas")
    store = Store(study_db, readonly=True)
    frame = runs_frame(study_db, "reg-study").set_index("id")
    assert len(frame) == 154 and {"final_val_mae", "final_val_r2", "objective"} <= set(frame.columns)
    for run in store.runs()[:20]:
        epochs = store.epochs(run.id)
        if epochs:  # a done run: the task's own metric as stored, not NaN
            assert frame.loc[run.id, "final_val_mae"] == epochs[-1].metrics["val_mae"]
            assert frame.loc[run.id, "final_val_r2"] == epochs[-1].metrics["val_r2"]
        else:  # a run that diverged before its first epoch: no value, not a made-up one
            assert pandas.isna(frame.loc[run.id, "final_val_mae"])
    assert set(frame["objective"]) == {"val_mae"} and not frame["objective_higher_is_better"].any()


@pytest.mark.slow  # an MLflow SQLite store is made (its migrations take seconds)
def test_export_to_tensorboard_and_mlflow_from_the_command_line(db, tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    store = Store(db, readonly=True)
    result = runner.invoke(app, ["runs", "export", "--db", str(db), "--to", "tensorboard", str(tmp_path / "tb"),
                                 "--sweep", "runs-cli"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "exported 4 run(s) to tensorboard" in result.output
    for record in store.runs():
        acc = event_accumulator.EventAccumulator(
            str(tmp_path / "tb" / "runs-cli" / record.id), size_guidance={event_accumulator.TENSORS: 0}
        )
        acc.Reload()
        loss = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors("loss")]
        assert np.array_equal(loss, store.steps(record.id).loss, equal_nan=True)
    one = store.runs()[0]
    result = runner.invoke(app, ["runs", "export", "--db", str(db), "--to", "mlflow", str(tmp_path / "ml"),
                                 "--run", one.id[:8]])  # fmt: skip
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("runs-cli").experiment_id])
    assert found.data.tags["lrlab_run_id"] == one.id
    history = client.get_metric_history(found.info.run_id, "lr/group0")
    assert sorted(m.step for m in history) == store.steps(one.id).step.tolist()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--to", "wandb", "out"], "--to must be one of tensorboard, mlflow", id="to"),
        pytest.param(["--to", "tensorboard"], "--to tensorboard needs a destination", id="no-dest"),
        pytest.param(["out"], "needs --to tensorboard or --to mlflow", id="dest-without-to"),
        pytest.param(["--to", "tensorboard", "out", "--run", "zzzz"], "no run 'zzzz'", id="run"),
    ],
)
def test_export_to_bad_input_exits_2_and_writes_nothing(db, tmp_path, args, fragment):
    result = runner.invoke(app, ["runs", "export", "--db", str(db), *[str(tmp_path / a) if a == "out" else a
                                                                      for a in args]])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_export_to_a_file_exits_2(db, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("mine")
    result = runner.invoke(app, ["runs", "export", "--db", str(db), "--to", "tensorboard", str(target)])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert target.read_text() == "mine"


def test_a_study_across_long_sweep_names_keeps_ids_and_numbers_whole_at_80_columns(tmp_path):
    from lrlab.core.records import EpochRecord, RunConfig, RunRecord

    path = tmp_path / "sweeps.db"
    store = Store(path)
    values = {}
    for s, sweep in enumerate(
        ["study-digits-mlp-small-sgd-x1/3", "study-digits-mlp-small-adam", "study-digits-mlp-small-seed1"]
    ):
        store.upsert_sweep(sweep, {"name": sweep})
        config = RunConfig(task="digits-mlp", lr=0.0001234 * (s + 1), optimizer="sgd(momentum=0.9, nesterov=True)",
                           schedule=f"warmup(cosine(lr={0.0001234 * (s + 1)}, total_steps=400), steps=40)")  # fmt: skip
        run_id = f"{s}" * 16
        store.begin_run(RunRecord(id=run_id, sweep=sweep, status="queued", config=config, seed=0))
        values[run_id[:8]] = 0.012345 + s
        store.append_metrics(run_id, [(0, 1, [config.lr], 0.9, 2.0, 1.0)],
                             [EpochRecord.of(run_id, 1, 1, 2.0, {"val_loss": values[run_id[:8]]}, 0.1)])  # fmt: skip
        store.end_run(run_id, "done")
    result = runner.invoke(app, ["runs", "list", "--db", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    rows = _rows(result.output)
    assert {line.split()[0]: float(line.split()[-1]) for line in rows} == {
        k: float(f"{v:.4g}") for k, v in values.items()
    }
    assert {line.split()[1] for line in rows} == {"\u2026sgd-x1/3", "\u2026adam", "\u2026seed1"}


# ------------------------------------------------------------------ what a study's runs look like in the list


def _schedule_store(path, optimizers):
    """Runs as a study stores them (their planned steps kept): a one-cycle and three cyclic
    schedules whose peak LR is not the run's lr, and a warmup-cosine, for each optimizer."""
    from lrlab.core.records import EpochRecord, RunConfig, RunRecord

    schedules = [
        "one_cycle(max_lr=0.03182, total_steps=230)",
        "cyclic(base_lr=0.007955, max_lr=0.03182, step_size=38)",
        'cyclic(base_lr=0.007955, max_lr=0.03182, step_size=38, mode="triangular2")',
        'cyclic(base_lr=0.007955, max_lr=0.03182, step_size=38, shape="sine", cycle_decay=0.5)',
        "warmup(cosine(lr=0.001061, total_steps=218), steps=12)",
    ]
    store = Store(path)
    store.upsert_sweep("s", {"name": "s"})
    for o, optimizer in enumerate(optimizers):
        for s, schedule in enumerate(schedules):
            config = RunConfig(
                task="digits-mlp", lr=0.001061, optimizer=optimizer, schedule=schedule, epochs=10
            )
            run_id = f"{o}{s}" + "0" * 14
            store.begin_run(RunRecord(id=run_id, sweep="s", status="queued", config=config, seed=0),
                            {"total_steps": 230})  # fmt: skip
            store.append_metrics(run_id, [(0, 1, [0.001], 0.9, 2.0, 1.0)],
                                 [EpochRecord.of(run_id, 10, 230, 0.1, {"val_loss": 0.2 + s}, 0.1)])  # fmt: skip
            store.end_run(run_id, "done")
    return path


def test_the_list_shows_the_peak_lr_each_schedule_reaches_and_tells_cyclic_modes_apart(tmp_path):
    path = _schedule_store(tmp_path / "peaks.db", ["adam"])
    result = runner.invoke(app, ["runs", "list", "--db", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    header = next(line for line in result.output.splitlines() if line.lstrip().startswith("id"))
    assert header.split() == [
        "id",
        "status",
        "schedule",
        "peak_lr",
        "seed",
        "val_loss",
    ]  # one optimizer: no column
    assert "optimizer adam" in " ".join(result.output.split())  # named in the title instead
    rows = {line.split()[2]: float(line.split()[3]) for line in _rows(result.output)}
    # the lr of these runs is 0.001061; the cyclic and one-cycle schedules train up to 0.03182
    assert rows == {"one_cycle": 0.03182, "cyclic": 0.03182, "triangular2": 0.03182,
                    "cyclic(sine)": 0.03182, "warmup-cosine": 0.001061}  # fmt: skip
    wide = runner.invoke(app, ["runs", "list", "--db", str(path), "--wide"], env={"COLUMNS": "300"})
    header = next(line for line in wide.output.splitlines() if line.lstrip().startswith("id"))
    assert header.split()[4:8] == ["optimizer", "schedule", "lr", "peak_lr"]


def test_optimizers_that_share_a_name_read_apart_in_the_list(tmp_path):
    path = _schedule_store(
        tmp_path / "opts.db", ["sgd", "sgd(momentum=0.9)", "sgd(momentum=0.9, nesterov=True)"]
    )
    result = runner.invoke(app, ["runs", "list", "--db", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.lstrip().startswith("id"))
    assert header.split()[2:4] == ["opt", "schedule"]  # a short header: the room goes to the schedule
    labels = {line.split()[0][:1]: line.split()[2] for line in _rows(result.output)}
    assert labels == {
        "0": "sgd",
        "1": "sgdm",
        "2": "nesterov",
    }  # each run's optimizer, by the id's first digit


OPTIMIZER_POOL = ["sgd", "sgd(momentum=0.9)", "sgd(momentum=0.9, nesterov=True)", "sgd(momentum=0.95)", "adam",
                  "adam(eps=1e-06)", "adamw", "adamw(weight_decay=0.01)", "rmsprop", "deltabardelta"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(OPTIMIZER_POOL), min_size=1, max_size=6))
def test_no_two_listed_optimizers_get_one_label(specs):
    from lrlab.cli._runs_table import optimizer_labels

    labels = optimizer_labels(specs)
    assert set(labels) == set(specs)
    assert len(set(labels.values())) == len(labels)


def test_a_run_from_your_own_trainer_lists_the_peak_lr_it_recorded(tmp_path):
    """torch's own OneCycleLR, which lrlab does not know: the peak is read from the steps."""
    import torch

    import lrlab

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=20)
    path = tmp_path / "track.db"
    with lrlab.track(optimizer, name="mine", db=path, total_steps=20) as run:
        for _ in range(20):
            optimizer.zero_grad()
            loss = model(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            optimizer.step()
            scheduler.step()
            run.log(loss=loss)
    result = runner.invoke(app, ["runs", "list", "--db", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.lstrip().startswith("id"))
    (row,) = _rows(result.output)
    peak = float(row.split()[header.split().index("peak_lr")])
    store = Store(path, readonly=True)
    assert peak == pytest.approx(max(store.steps(store.runs()[0].id).lr))
    assert peak == pytest.approx(0.5, rel=1e-3)  # not the 0.02 it started at
