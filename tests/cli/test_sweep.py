"""``lrlab sweep``: a real sweep through the CLI, resumable; bad input exits 2 in one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lrlab.cli.app import app
from lrlab.store.sqlite import Store

runner = CliRunner()

SWEEP = """
name = "cli-tiny"
task = "digits-linear"
task_options = { train_size = 96, val_size = 48 }
epochs = 2
batch_size = 32
seeds = [0]

[grid]
lr = [0.1, 0.5]
optimizer = ["sgd"]
schedule = ["cosine(lr={lr}, total_steps={total_steps})"]
"""


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SWEEP)
    return path


def test_sweep_runs_records_and_resumes(sweep_file, tmp_path):
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "sweep cli-tiny: 2 runs" in result.output
    assert "[2/2] done" in result.output and "cosine(lr=0.5, total_steps=6)" in result.output
    runs = Store(db).runs(sweep="cli-tiny")
    assert [r.status for r in runs] == ["done", "done"]
    again = runner.invoke(app, ["sweep", str(sweep_file), "--db", str(db)])
    assert again.exit_code == 0 and "(2 already finished)" in again.output
    quiet = runner.invoke(app, ["sweep", str(sweep_file), "--db", str(db), "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_failed_run_exits_1(tmp_path):
    task = tmp_path / "broken.py"
    task.write_text(
        "import itertools\n"
        "import torch.nn.functional as F\n"
        "from lrlab.training.tasks.digits import digits_linear\n"
        "calls = itertools.count()\n"
        "def loss(output, target):\n"
        "    # fits its data (the task check before the sweep passes), then fails in training\n"
        "    return F.cross_entropy(output, target) if next(calls) < 2 else 1 / 0\n"
        "def make():\n"
        "    task = digits_linear(train_size=32, val_size=16)\n"
        "    task.loss_fn = loss\n"
        "    return task\n"
    )
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'name = "b"\ntask = "{task}:make"\nepochs = 1\n[grid]\nlr = 0.1\n')
    result = runner.invoke(app, ["sweep", str(sweep), "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 1
    assert "failed" in result.output and "ZeroDivisionError" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--jobs", "0"], "--jobs must be >= 1", id="jobs"),
        pytest.param(["--backend", "spark"], "--backend must be one of local, ray", id="backend"),
        pytest.param(["--device", "tpu"], "device must be cpu, cuda or auto", id="device"),
        pytest.param(["--address", "auto"], "--address needs --backend ray", id="address"),
    ],
)
def test_bad_options_exit_2_in_one_line(sweep_file, tmp_path, args, fragment):
    result = runner.invoke(app, ["sweep", str(sweep_file), "--db", str(tmp_path / "r.db"), *args])
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param('name = "x"\ntask = "digits-mlp"\n[grid]\nlr = "fast"\n', 'grid.lr = "fast"', id="lr"),
        pytest.param(
            'name = "x"\ntask = "mnist"\n[grid]\nlr = 0.1\n',
            "unknown task (built-in: digits-linear",
            id="task",
        ),
        pytest.param(
            'name = "x"\ntask = "digits-mlp"\n[grid]\nlr = 0.1\noptimizer = ["sgx"]\n',
            "unknown optimizer 'sgx'",
            id="opt",
        ),
        pytest.param("name = \n", "not valid TOML", id="toml"),
        pytest.param(
            'name = "x"\ntask = "nomod_xyz.sub:make"\n[grid]\nlr = 0.1\n', "cannot import task", id="import"
        ),
    ],
)
def test_bad_sweep_files_exit_2_naming_the_key(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(app, ["sweep", str(path), "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert result.output.startswith("error:") and "Traceback" not in result.output


def test_help_has_examples():
    result = runner.invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0 and "Examples" in result.output and "--jobs" in result.output


def test_export_after_sweep_is_valid_json(sweep_file, tmp_path):
    db = tmp_path / "runs.db"
    runner.invoke(app, ["sweep", str(sweep_file), "--db", str(db), "--quiet"])
    result = runner.invoke(app, ["runs", "export", "--db", str(db)])
    records = json.loads(result.stdout)
    assert {r["config"]["lr"] for r in records} == {0.1, 0.5}


INTERRUPTED = """
name = "ctrl-c"
task = "digits-mlp"
task_options = { train_size = 192, val_size = 64, hidden = 32 }
epochs = 60
batch_size = 16
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]

[grid]
lr = [0.05]
"""  # runs of 720 steps each: the interrupt lands while the sweep still trains, also on an idle machine


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_cleanly_and_the_sweep_resumes(tmp_path, jobs):
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time
    from contextlib import closing

    sweep = tmp_path / "c.toml"
    sweep.write_text(INTERRUPTED)
    db = tmp_path / "runs.db"
    command = [sys.executable, "-m", "lrlab.cli", "sweep", str(sweep), "--db", str(db), "--jobs", jobs]
    proc = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell's background job ignores SIGINT and children inherit that; a terminal's
        # foreground process does not: give the sweep the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and done < 1:
            time.sleep(0.2)
            try:  # read-only: a plain connect would create an empty file, which is no store
                with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
        assert done >= 1
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err
    store = Store(db)
    assert store.integrity_check() == "ok"
    statuses = [r.status for r in store.runs(sweep="ctrl-c")]
    assert "running" not in statuses and statuses.count("done") >= 1
    result = runner.invoke(app, ["sweep", str(sweep), "--db", str(db), "--quiet"])
    assert result.exit_code == 0
    assert [r.status for r in store.runs(sweep="ctrl-c")] == ["done"] * 12


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, says",
    [
        (["--address", "auto"], "cannot join the Ray cluster at 'auto'"),
        (["--address", "127.0.0.1:9"], "no Ray cluster answers at 127.0.0.1:9"),
        (["--gpus-per-run", "1"], "asks for more GPUs than the Ray cluster has"),
    ],
)
def test_ray_requests_that_cannot_be_met_fail_fast_in_one_line(tmp_path, extra, says):
    import subprocess
    import sys
    import time

    sweep = tmp_path / "r.toml"
    sweep.write_text(
        'name = "r"\ntask = "digits-linear"\ntask_options = { train_size = 64, val_size = 32 }\n'
        "epochs = 1\nbatch_size = 32\n\n[grid]\nlr = [0.1]\n"
    )
    command = [sys.executable, "-m", "lrlab.cli", "sweep", str(sweep), "--db", str(tmp_path / "r.db"),
               "--backend", "ray", *extra]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60  # it used to hang for minutes, or forever
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and says in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
