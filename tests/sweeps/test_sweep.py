"""Sweep files, grid expansion, stable ids, resuming, failures and executors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from tests.run_configs import typed_config

from lrlab.core.records import RunConfig
from lrlab.store.sqlite import Store
from lrlab.sweeps import SweepProgress, SweepSpecError, expand, load_sweep, run_id_for, run_sweep
from lrlab.training.loop import RunProgress

ROOT = Path(__file__).resolve().parents[2]
ISSUE_SWEEP = ROOT / "examples" / "digits-lr.toml"

TINY = {
    "name": "tiny",
    "task": "digits-mlp",
    "task_options": {"train_size": 128, "val_size": 64, "hidden": 16},
    "epochs": 2,
    "batch_size": 32,
    "seeds": [0, 1],
    "grid": {"lr": [0.05, 0.2], "optimizer": ["sgd(momentum=0.9)"], "schedule": ["cosine(lr={lr}, total_steps={total_steps})"]},
}  # fmt: skip


def test_the_issue_sweep_file_works_as_written():
    spec = load_sweep(ISSUE_SWEEP)
    plans = expand(spec)
    assert len(plans) == 7 * 2 * 3 * 2
    assert len({p.id for p in plans}) == len(plans)
    lrs = sorted({p.config.lr for p in plans})
    assert lrs[0] == 0.001 and lrs[-1] == 1.0 and len(lrs) == 7
    # 1437 training digits / 64 per batch = 23 steps per epoch, 5 epochs.
    schedules = {str(p.config.schedule) for p in plans if p.config.lr == 0.1}
    assert schedules == {
        "constant(lr=0.1)",
        "cosine(lr=0.1, total_steps=115)",
        "one_cycle(max_lr=0.1, total_steps=115)",
    }
    assert {p.config.optimizer for p in plans} == {"sgd(momentum=0.9)", "adam"}
    assert {p.seed for p in plans} == {0, 1}
    assert [p.id for p in expand(load_sweep(ISSUE_SWEEP))] == [p.id for p in plans]


def test_run_ids_hash_the_resolved_config():
    from lrlab.schedules import constant

    config = RunConfig(task="digits-mlp", lr=0.1)
    assert run_id_for("s", config) == run_id_for("s", RunConfig(task="digits-mlp", lr=0.1, schedule=constant(0.1)))
    assert run_id_for("s", config) != run_id_for("s", config.replace(lr=0.2))
    assert run_id_for("s", config) != run_id_for("other", config)
    # The id of a run is the one a sweep file of earlier versions gave it (stores resume).
    assert run_id_for("s", config) == "b6533e09ede518c7"


def test_grid_axes_momentum_lr_mult_batch_size_and_steps_per_epoch():
    spec = load_sweep({**TINY, "grid": {"lr": {"linspace": [0.1, 0.3, 3]}, "batch_size": [32, 64],
                       "momentum": ["linear(start_lr=0.95, end_lr=0.85, total_steps={total_steps})"],
                       "lr_mult": [{"4.*": 10.0}, {}],
                       "schedule": ["step_decay(lr={lr}, step_size={steps_per_epoch})"]}})  # fmt: skip
    plans = expand(spec)
    assert len(plans) == 3 * 2 * 2 * 2
    big = [p for p in plans if p.config.batch_size == 64 and p.config.lr == 0.2]
    assert {str(p.config.schedule) for p in big} == {"step_decay(lr=0.2, step_size=2)"}
    assert {str(p.config.momentum) for p in big} == {"linear(start_lr=0.95, end_lr=0.85, total_steps=4)"}
    assert sum(p.config.lr_mult is not None for p in plans) == len(plans) // 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        pytest.param({"grid": {"lr": "fast"}}, 'grid.lr = "fast": expected a learning rate', id="lr-type"),
        pytest.param(
            {"grid": {"lr": [0.1, -1]}},
            "grid.lr = [0.1, -1]: learning rates must be finite and > 0",
            id="lr-neg",
        ),
        pytest.param(
            {"grid": {"lr": {"logspace": [0, 1, 3]}}}, "logspace needs start and stop > 0", id="logspace"
        ),
        pytest.param(
            {"grid": {"lr": [0.1], "optimizer": ["adam", "adamm"]}}, "grid.optimizer", id="optimizer"
        ),
        pytest.param(
            {"grid": {"lr": [0.1], "optimizer": ["adamm"]}},
            "unknown optimizer 'adamm' (known: ",
            id="opt-known",
        ),
        pytest.param(
            {"grid": {"lr": [0.1], "schedule": ["cosin(lr={lr})"]}},
            "unknown schedule 'cosin' (known: ",
            id="schedule",
        ),
        pytest.param(
            {"grid": {"lr": [0.1], "schedule": ["constant(lr={rate})"]}},
            "unknown placeholder",
            id="placeholder",
        ),
        pytest.param({"task": "digitz"}, 'task = "digitz": unknown task (built-in: digits-linear', id="task"),
        pytest.param({"epochs": 0}, "epochs = 0: Input should be greater than or equal to 1", id="epochs"),
        pytest.param({"seeds": []}, "seeds = []: expected at least one seed", id="seeds"),
        pytest.param({"colour": "red"}, 'colour = "red": unknown key', id="unknown-key"),
        pytest.param(
            {"grid": {"lr": [0.1], "learning_rate": [1]}},
            "grid.learning_rate = [1]: unknown key",
            id="grid-key",
        ),
    ],
)
def test_errors_name_key_path_value_and_expectation(change, fragment):
    with pytest.raises(SweepSpecError) as info:
        load_sweep({**TINY, **change})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_toml_errors_and_missing_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(SweepSpecError, match="not valid TOML"):
        load_sweep(bad)
    with pytest.raises(SweepSpecError, match="no sweep file"):
        load_sweep(tmp_path / "missing.toml")
    missing = tmp_path / "m.toml"
    missing.write_text('name = "x"\ntask = "digits-mlp"\n')
    with pytest.raises(SweepSpecError, match="grid: missing required key"):
        load_sweep(missing)


def test_sweep_runs_then_skips_finished_and_restarts_interrupted(tmp_path):
    store = Store(tmp_path / "runs.db")
    events = []
    records = run_sweep(TINY, store, progress=events.append)
    assert [r.status for r in records] == ["done"] * 4
    assert store.sweeps() == ["tiny"] and store.sweep_spec("tiny")["epochs"] == 2
    assert isinstance(events[0], SweepProgress) and events[0].total == 4 and events[0].skipped == 0
    assert sum(isinstance(e, RunProgress) and e.event == "end" for e in events) == 4
    assert events[-1].counts == {"done": 4}
    # Pretend the process died during the last run.
    last = records[-1].id
    store.begin_run(store.run(last))
    started = {r.id: r.started_at for r in records}
    events.clear()
    again = run_sweep(TINY, store, progress=events.append)
    assert events[0].skipped == 3
    assert [r.status for r in again] == ["done"] * 4
    assert all(r.started_at == started[r.id] for r in again if r.id != last)
    assert store.run(last).started_at > started[last]
    assert len(store.epochs(last)) == 2


def test_a_raising_task_fails_its_run_and_the_sweep_goes_on(tmp_path):
    task_file = tmp_path / "flaky.py"
    task_file.write_text(textwrap.dedent(
        """
        from lrlab.training.tasks.digits import digits_mlp

        def flaky(**options):
            task = digits_mlp(**options)
            make = task.make_model

            def make_model(seed):
                if seed == 1:
                    raise RuntimeError("seed 1 is cursed")
                return make(seed)

            task.make_model = make_model
            return task
        """
    ))  # fmt: skip
    store = Store(tmp_path / "runs.db")
    records = run_sweep({**TINY, "task": f"{task_file}:flaky"}, store)
    by_seed = {(r.seed, r.config.lr): r for r in records}
    assert [by_seed[(1, lr)].status for lr in (0.05, 0.2)] == ["failed", "failed"]
    assert by_seed[(1, 0.05)].error == "RuntimeError: seed 1 is cursed"
    assert [by_seed[(0, lr)].status for lr in (0.05, 0.2)] == ["done", "done"]


def test_bad_arguments(tmp_path):
    store = Store(tmp_path / "runs.db")
    with pytest.raises(ValueError, match="backend must be one of local, ray"):
        run_sweep(TINY, store, backend="dask")
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        run_sweep(TINY, store, jobs=0)


@pytest.mark.slow
def test_two_worker_processes(tmp_path):
    store = Store(tmp_path / "runs.db")
    events = []
    records = run_sweep(TINY, store, jobs=2, progress=events.append)
    assert [r.status for r in records] == ["done"] * 4
    assert {e.run_id for e in events if isinstance(e, RunProgress) and e.event == "epoch"} == {
        r.id for r in records
    }
    # Same numbers as in-process training: reproducible across processes.
    inline = Store(tmp_path / "inline.db")
    run_sweep(TINY, inline)
    for record in records:
        assert [e.val_loss for e in store.epochs(record.id)] == [e.val_loss for e in inline.epochs(record.id)]
    assert store.integrity_check() == "ok"


SLOW_SWEEP = """
name = "killme"
task = "digits-mlp"
task_options = {{ train_size = 256, val_size = 64, hidden = 32 }}
epochs = 3
batch_size = 16
seeds = [0, 1, 2, 3, 4, 5]
[grid]
lr = [0.05]
"""


@pytest.mark.slow
def test_sigkill_loses_only_runs_in_flight(tmp_path):
    sweep_file = tmp_path / "kill.toml"
    sweep_file.write_text(SLOW_SWEEP.format())
    db = tmp_path / "runs.db"
    code = "import sys; from lrlab.sweeps import run_sweep; from lrlab.store.sqlite import Store; run_sweep(sys.argv[1], Store(sys.argv[2]))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(sweep_file), str(db)], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and done < 2:
            time.sleep(0.2)
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as conn:
                        done = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
        assert done >= 2, "the sweep did not finish two runs in time"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    store = Store(db)
    assert store.integrity_check() == "ok"
    finished = store.runs(sweep="killme", status="done")
    assert len(finished) >= 2
    for record in finished:
        assert len(store.epochs(record.id)) == 3
        assert len(store.steps(record.id)) == 3 * 16
    started = {r.id: r.started_at for r in finished}
    records = run_sweep(sweep_file, store)
    assert [r.status for r in records] == ["done"] * 6
    assert all(store.run(rid).started_at == at for rid, at in started.items())
    assert store.integrity_check() == "ok"


@pytest.mark.slow
def test_ray_backend_streams_results_into_the_store(tmp_path):
    pytest.importorskip("ray")
    store = Store(tmp_path / "runs.db")
    spec = {**TINY, "seeds": [0], "grid": {**TINY["grid"], "lr": [0.1]}, "name": "ray-tiny"}
    spec["grid"]["lr"] = [0.1, 0.2]
    events = []
    records = run_sweep(spec, store, jobs=2, backend="ray", progress=events.append)
    assert [r.status for r in records] == ["done", "done"]
    for record in records:
        assert record.extras["backend"] == "ray"
        assert len(store.epochs(record.id)) == 2 and len(store.steps(record.id)) == 2 * 4
    assert sum(isinstance(e, RunProgress) and e.event == "end" for e in events) == 2
    # Same numbers as a local run.
    local = Store(tmp_path / "local.db")
    run_sweep(spec, local)
    for record in records:
        assert [e.val_loss for e in store.epochs(record.id)] == [e.val_loss for e in local.epochs(record.id)]


@pytest.mark.parametrize(
    "name", ["digits-lr.toml", "my_task.toml", "chars-warmup.toml", "digits-linear-clr.toml"]
)
def test_example_sweep_files_validate_and_expand(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # the user-task example names its file relative to the repository root
    plans = expand(load_sweep(ROOT / "examples" / name))
    assert plans and all("{" not in str(p.config.schedule) for p in plans)


def test_user_task_example_trains(tmp_path, monkeypatch):
    from lrlab.training.loop import train_run

    monkeypatch.chdir(ROOT)
    config = {"task": "examples/my_task.py:two_moons", "task_options": {"samples": 200}, "optimizer": "adam",
              "schedule": "constant(lr={lr})", "lr": 0.01, "seed": 0, "epochs": 2}  # fmt: skip
    record = train_run(typed_config(config), Store(tmp_path / "r.db"), "moons")
    assert record.status == "done", record.error
    assert record.config.epochs == 2


def test_one_sweep_gives_bit_identical_metrics_with_one_job_and_with_two(tmp_path):
    """Each run trains with its own thread count (RunConfig.threads, default 1), so a run's
    numbers do not depend on how many runs train beside it."""
    import torch

    spec = {**TINY, "name": "jobs", "seeds": [0, 1], "grid": {"lr": [0.3, 0.05], "optimizer": ["sgd(momentum=0.9)"]}}
    before = torch.get_num_threads()
    one, two = Store(tmp_path / "one.db"), Store(tmp_path / "two.db")
    run_sweep(spec, one, jobs=1)
    assert torch.get_num_threads() == before  # the parent's own count is left as it was
    run_sweep(spec, two, jobs=2)
    ids = [r.id for r in one.runs(sweep="jobs")]
    assert len(ids) == 4 and ids == [r.id for r in two.runs(sweep="jobs")]
    for rid in ids:
        a, b = one.steps(rid), two.steps(rid)
        np.testing.assert_array_equal(a.loss, b.loss)
        np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
        assert [e.val_loss for e in one.epochs(rid)] == [e.val_loss for e in two.epochs(rid)]
        assert one.run(rid).extras["threads"] == two.run(rid).extras["threads"] == 1
