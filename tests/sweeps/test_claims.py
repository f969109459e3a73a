"""Two processes on one sweep: every run is trained exactly once, also when either process is
killed (SIGKILL) at any moment, and a killed sweep leaves no worker behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrlab.store import Store

pytestmark = pytest.mark.slow

SWEEP = """name = "claims"
task = "digits-linear"
task_options = {{ train_size = 256, val_size = 64 }}
epochs = {epochs}
batch_size = 16
seeds = [0, 1]

[grid]
lr = [0.01, 0.03, 0.1]
"""


def _start(sweep: Path, db: Path, jobs: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lrlab.cli", "sweep", str(sweep), "--db", str(db), "--jobs", str(jobs)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,
    )  # fmt: skip


def _trained(output: str) -> list[str]:
    """Run ids this process trained to an outcome (not the ones it found claimed)."""
    return [
        line.split()[2]
        for line in output.splitlines()
        if line.startswith("[") and line.split()[1] in ("done", "diverged") and "claimed by another" not in line
    ]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_the_same_sweep_started_twice_at_once_trains_every_run_once(tmp_path):
    sweep, db = tmp_path / "s.toml", tmp_path / "runs.db"
    sweep.write_text(SWEEP.format(epochs=6))
    Store(db).close()
    a, b = _start(sweep, db), _start(sweep, db)
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    assert a.returncode == b.returncode == 0, out_a + out_b
    trained = _trained(out_a) + _trained(out_b)
    store = Store(db)
    runs = store.runs(sweep="claims")
    assert len(runs) == 6 and all(r.status.is_finished for r in runs)
    assert sorted(t for t in trained) == sorted(r.id[:8] for r in runs)  # each exactly once
    assert _trained(out_a) and _trained(out_b)  # both did some of the work


@pytest.mark.parametrize("trial", range(3))
def test_a_sigkill_at_a_random_moment_loses_no_finished_run_and_duplicates_none(tmp_path, trial):
    rng = random.Random(trial)
    sweep, db = tmp_path / "s.toml", tmp_path / "runs.db"
    sweep.write_text(SWEEP.format(epochs=12))
    Store(db).close()
    victim_jobs = 2
    a, b = _start(sweep, db, jobs=victim_jobs), _start(sweep, db)
    victim, survivor = (a, b) if rng.random() < 0.5 else (b, a)
    time.sleep(rng.uniform(4.0, 10.0))
    workers = _children(victim.pid)
    victim.send_signal(signal.SIGKILL)  # the parent only: its workers must follow by themselves
    victim.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if _alive(w)], "workers outlived their killed sweep"
    survivor.communicate(timeout=600)
    store = Store(db)
    finished = {r.id: (r.started_at, r.finished_at) for r in store.runs(sweep="claims") if r.status.is_finished}
    again = _start(sweep, db)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    store = Store(db)
    runs = store.runs(sweep="claims")
    assert len(runs) == 6 and all(r.status.is_finished for r in runs), [(r.id, r.status) for r in runs]
    for run in runs:
        if run.id in finished:  # finished before the restart: never touched again
            assert (run.started_at, run.finished_at) == finished[run.id]
        assert store.epochs(run.id)[-1].epoch == 12 or run.status.value == "diverged"
    assert set(_trained(out)) == {r.id[:8] for r in runs if r.id not in finished}
    assert store.integrity_check() == "ok"
