"""The store under concurrent processes, each a real process: a store that does not exist yet
made by several at once (never "an empty file" to any of them), ``lrlab runs rm`` while a
sweep writes to the same store (the removed runs skipped with one line, the sweep goes on),
and several writers at once (every run whole, the file sound)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrlab.store import RunConfig, RunRecord, Store

# Each child waits for the same moment, then opens the store and writes: the opening races.
_OPEN_AT_ONCE = """
import sys, time
start, path, name = float(sys.argv[1]), sys.argv[2], sys.argv[3]
from lrlab.store import Store, StoreError
time.sleep(max(0.0, start - time.time()))
try:
    store = Store(path)
    store.upsert_sweep(name, {"name": name})
    print("ok", len(store.sweeps()))
except StoreError as exc:
    print("refused:", exc)
    sys.exit(3)
"""


def _run_at_once(code: str, args: list[list[str]], delay: float = 4.0) -> list[subprocess.CompletedProcess]:
    start = time.time() + delay  # every child has imported lrlab by then
    procs = [subprocess.Popen([sys.executable, "-c", code, f"{start}", *a], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a in args]  # fmt: skip
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("round_", range(4))
def test_a_new_store_made_by_six_processes_at_once_is_made_once_and_used_by_all(tmp_path, round_):
    path = tmp_path / "deep" / "runs.db"  # its folder does not exist either
    results = _run_at_once(_OPEN_AT_ONCE, [[str(path), f"s{i}"] for i in range(6)])
    assert [r.returncode for r in results] == [0] * 6, [r.stdout + r.stderr for r in results]
    store = Store(path, readonly=True)
    assert sorted(store.sweeps()) == [f"s{i}" for i in range(6)]
    assert store.integrity_check() == "ok"
    # nothing of the making is left beside it
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith("runs.db")) == []


def test_four_lrlab_sweeps_on_a_store_that_does_not_exist_yet_all_run(tmp_path):
    db = tmp_path / "new" / "lrlab.db"
    specs = []
    for i in range(4):
        spec = tmp_path / f"s{i}.toml"
        spec.write_text(
            f'name = "s{i}"\ntask = "digits-linear"\ntask_options = {{ train_size = 32, val_size = 16 }}\n'
            "epochs = 1\nbatch_size = 16\n\n[grid]\nlr = [0.1]\n"
        )
        specs.append(spec)
    code = (
        "import sys, time; start = float(sys.argv[1]); sys.argv = ['lrlab', *sys.argv[2:]]\n"
        "import lrlab.cli, lrlab.sweeps, lrlab.training.loop\n"
        "time.sleep(max(0.0, start - time.time())); lrlab.cli.main()\n"
    )
    results = _run_at_once(code, [["sweep", str(s), "--db", str(db), "-q"] for s in specs], delay=8.0)
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    assert not any("empty file" in r.stderr for r in results)
    store = Store(db, readonly=True)
    assert sorted(store.sweeps()) == ["s0", "s1", "s2", "s3"]
    assert [r.status.value for r in store.runs()] == ["done"] * 4


def test_an_empty_file_left_by_someone_else_is_still_refused_by_name(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    from lrlab.store import StoreError

    with pytest.raises(StoreError, match="is an empty file, not a run store"):
        Store(path)
    assert path.stat().st_size == 0


def test_a_store_under_a_file_is_refused_in_one_line(tmp_path):
    from lrlab.store import StoreError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="afile is a file, not a folder") as info:
        Store(tmp_path / "afile" / "runs.db")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ runs rm during a sweep


def _wait_running(db: Path, timeout: float = 240.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                rows = conn.execute("SELECT id, status FROM runs ORDER BY created_at, rowid").fetchall()
            if any(status == "running" for _, status in rows):
                return rows
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    raise AssertionError("no run started")


@pytest.mark.parametrize("jobs", [1, 2])
def test_runs_rm_while_a_sweep_writes_skips_the_removed_runs_and_the_sweep_goes_on(tmp_path, jobs):
    db = tmp_path / "runs.db"
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "s"\ntask = "digits-linear"\ntask_options = { train_size = 256, val_size = 32 }\n'
        "epochs = 12\nbatch_size = 8\nseeds = [0, 1, 2]\n\n[grid]\nlr = [0.01, 0.02]\n"
    )
    sweep = subprocess.Popen([sys.executable, "-m", "lrlab", "sweep", str(spec), "--db", str(db), "--jobs", str(jobs)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    rows = _wait_running(db)
    running = [rid for rid, status in rows if status == "running"]
    queued = [rid for rid, status in rows if status == "queued"]
    removed = [running[0], queued[-1]]  # one in training, one not started yet
    for rid in removed:
        rm = subprocess.run([sys.executable, "-m", "lrlab", "runs", "rm", rid[:10], "--db", str(db), "--yes"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
        assert rm.returncode == 0 and "deleted 1 run(s)" in rm.stdout, rm.stderr
    stdout, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyError" not in stderr
    for rid in removed:
        lines = [line for line in stdout.splitlines() if rid[:8] in line]
        assert len(lines) == 1 and "removed from the store by another process: skipped" in lines[0], stdout
    store = Store(db, readonly=True)
    left = {r.id: r.status.value for r in store.runs()}
    assert set(left) == {rid for rid, _ in rows} - set(removed)
    assert set(left.values()) == {"done"}
    assert f"sweep s: 4 done -> {db}" in " ".join(stdout.split())
    assert store.integrity_check() == "ok"


# ------------------------------------------------------------------ several writers


_WRITER = """
import sys, time
start, path, k = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
from lrlab.store import Store, RunConfig, RunRecord
from lrlab.core.records import EpochRecord
time.sleep(max(0.0, start - time.time()))
store = Store(path)
for i in range(15):
    rid = f"w{k}-{i}"
    config = RunConfig(task="digits-linear", lr=0.1, epochs=1, batch_size=32)
    store.begin_run(RunRecord(id=rid, sweep=f"w{k}", status="queued", config=config, seed=i))
    for b in range(4):
        store.append_metrics(rid, [(b * 10 + s, 1, [0.1], None, 1.0 / (1 + s), 1.0) for s in range(10)])
    store.append_metrics(rid, epochs=[EpochRecord(rid, 1, 40, 0.5, 0.6, 0.2, 0.8, 1.0)])
    store.end_run(rid, "done")
print("ok")
"""


def test_six_writers_at_once_each_run_lands_whole(tmp_path):
    path = tmp_path / "w.db"
    results = _run_at_once(_WRITER, [[str(path), str(k)] for k in range(6)])
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    store = Store(path, readonly=True)
    runs = store.runs()
    assert len(runs) == 90 and {r.status.value for r in runs} == {"done"}
    steps = store.steps_for([r.id for r in runs])
    assert {len(s.step) for s in steps.values()} == {40}
    assert store.integrity_check() == "ok"


def test_a_writer_whose_run_was_removed_is_told_it_lost_the_run_not_a_key_error(tmp_path):
    from lrlab.store.sqlite import ClaimLost, new_owner

    store = Store(tmp_path / "r.db")
    other = Store(tmp_path / "r.db")
    owner = new_owner()
    config = RunConfig(task="digits-linear", lr=0.1, epochs=1, batch_size=32)
    assert store.begin_run(RunRecord(id="a", sweep="s", status="queued", config=config, seed=0), owner=owner)
    assert other.delete_runs(["a"]) == 1
    with pytest.raises(ClaimLost):
        store.append_metrics("a", [(0, 1, [0.1], None, 1.0, 1.0)], owner=owner)
    with pytest.raises(ClaimLost):
        store.end_run("a", "done", owner=owner)
    assert store.runs() == [] and os.path.getsize(tmp_path / "r.db") > 0
