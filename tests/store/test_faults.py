"""A store that survives bad files and bad disks: every command refuses what is no sound
store in one line (exit code 2) and changes nothing; read-only stores open read-only."""

from __future__ import annotations

import gc
import hashlib
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrlab.cli import app
from lrlab.core.records import EpochRecord
from lrlab.store import RunConfig, RunRecord, Store
from lrlab.store.sqlite import SCHEMA_VERSION, StoreError, new_owner

runner = CliRunner()


def _good_store(path: Path, runs: int = 60) -> Path:
    store = Store(path)
    store.upsert_sweep("s", {"name": "s"})
    for i in range(runs):
        config = RunConfig(task="digits-linear", lr=0.01 * (i + 1), epochs=1, batch_size=32)
        store.begin_run(RunRecord(id=f"r{i:03d}", sweep="s", status="queued", config=config, seed=0))
        store.append_metrics(f"r{i:03d}", [(s, 1, [0.1], None, 2.0 - s / 50, 1.0) for s in range(50)],
                             [EpochRecord(f"r{i:03d}", 1, 50, 1.5, 1.4, 0.3, 0.7, 1.0)])  # fmt: skip
        store.end_run(f"r{i:03d}", "done")
    store.close()
    # A closed store is checkpointed: the data is in the main file, no -wal beside it.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _damage(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "bad.db"
    if kind == "garbage":
        path.write_bytes(b"x\n" * 3000)
    elif kind == "zero-length":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "newer-schema":
        _good_store(path, runs=2)
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    elif kind == "foreign":
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    elif kind == "truncated":
        _good_store(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "damaged-pages":
        _good_store(path)
        data = bytearray(path.read_bytes())
        page = 4096
        for index in (3, 5, 8):  # b-tree pages of the runs and metrics tables
            data[index * page + 8 : index * page + 600] = b"\xff" * 592
        path.write_bytes(bytes(data))
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


KINDS = ["garbage", "zero-length", "directory", "newer-schema", "foreign", "truncated", "damaged-pages"]


def _digest(path: Path) -> str:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("readonly", [False, True])
def test_no_sound_store_is_refused_by_name_and_left_as_it_was(tmp_path, kind, readonly):
    path = _damage(kind, tmp_path)
    before = _digest(path)
    with pytest.raises(StoreError) as info:
        store = Store(path, readonly=readonly)
        store.runs()  # a reader that opened must still refuse before it reads garbage
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert _digest(path) == before


def _commands(db: Path, tmp_path: Path) -> list[list[str]]:
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        'name = "s"\ntask = "digits-linear"\ntask_options = { train_size = 64, val_size = 32 }\n'
        "epochs = 1\nbatch_size = 32\n\n[grid]\nlr = [0.1]\n"
    )
    d = str(db)
    return [
        ["runs", "list", "--db", d],
        ["runs", "show", "r000", "--db", d],
        ["runs", "export", "--db", d],
        ["runs", "rm", "--sweep", "s", "--yes", "--db", d],
        ["report", "--sweep", "s", "--out", str(tmp_path / "r.html"), "--db", d],
        ["sweep", str(sweep), "--db", d, "-q"],
        ["find", "--task", "digits-linear", "--num-iter", "5", "--db", d],
        ["study", "--task", "digits-linear", "--epochs", "1", "--db", d, "--out", str(tmp_path / "st"), "-q"],
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_gives_one_line_and_exit_2_on_a_bad_store(tmp_path, kind):
    path = _damage(kind, tmp_path)
    before = _digest(path)
    for args in _commands(path, tmp_path):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.output)
        assert "Traceback" not in result.output
    assert _digest(path) == before


def _mount_read_only(source: Path, target: Path) -> bool:
    target.mkdir()
    ok = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True).returncode:
        subprocess.run(["umount", str(target)], capture_output=True)
        ok = False
    return ok


def test_an_archived_store_on_a_read_only_mount_is_read_by_every_reading_command(tmp_path):
    source = tmp_path / "archive"
    source.mkdir()
    _good_store(source / "runs.db", runs=3)
    mount = tmp_path / "ro"
    if not _mount_read_only(source, mount):
        pytest.skip("a read-only bind mount cannot be made here")
    try:
        db = mount / "runs.db"
        with pytest.raises(OSError):
            (mount / "probe").write_text("x")
        store = Store(db, readonly=True)
        assert len(store.runs()) == 3 and len(store.steps("r000")) == 50
        for args in (["runs", "list", "--db", str(db)], ["runs", "show", "r001", "--db", str(db)],
                     ["runs", "export", "--db", str(db)]):  # fmt: skip
            result = runner.invoke(app, args, env={"COLUMNS": "200"})
            assert result.exit_code == 0, (args, result.output)
        out = tmp_path / "report.html"
        result = runner.invoke(app, ["report", "--sweep", "s", "--db", str(db), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 10_000
        with pytest.raises(StoreError, match="read-only"):
            store.end_run("r000", "failed")
        store.close()
    finally:
        gc.collect()  # the commands' stores close their files, so that the mount can go
        subprocess.run(["umount", str(mount)], capture_output=True)
    assert Store(source / "runs.db").integrity_check() == "ok"


def test_reading_an_older_schema_read_only_does_not_migrate_it(tmp_path):
    from lrlab.store import schema

    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:
        for migration in schema._MIGRATIONS[:2]:
            conn.executescript(migration)
        conn.execute(
            "INSERT INTO runs (id, status, seed, config, schedule) VALUES "
            "('r', 'done', 0, '{\"task\": \"t\", \"lr\": 0.1, \"schedule\": \"constant(lr=0.1)\"}', 'constant(lr=0.1)')"
        )
        conn.execute("PRAGMA user_version = 2")
    before = _digest(path)
    (run,) = Store(path, readonly=True).runs()
    assert str(run.config.schedule) == "constant(lr=0.1)"
    assert _digest(path) == before
    assert Store(path).schema_version == SCHEMA_VERSION  # a writer migrates


def test_a_full_disk_fails_the_run_with_its_reason_and_one_line(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        pytest.skip("a small tmpfs cannot be mounted here")
    try:
        sweep = tmp_path / "big.toml"
        sweep.write_text(
            'name = "big"\ntask = "digits-linear"\nepochs = 40\nbatch_size = 8\n\n[grid]\nlr = [0.01, 0.02]\n'
        )
        db = mount / "runs.db"
        result = subprocess.run(
            [sys.executable, "-m", "lrlab.cli", "sweep", str(sweep), "--db", str(db), "-q"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and "could not be written" in lines[0] and "Traceback" not in result.stderr
        shutil.copy(db, tmp_path / "copy.db")
        for suffix in ("-wal", "-shm"):
            if Path(str(db) + suffix).exists():
                shutil.copy(str(db) + suffix, str(tmp_path / "copy.db") + suffix)
        store = Store(tmp_path / "copy.db")
        assert store.integrity_check() == "ok"
        runs = store.runs(sweep="big")
        statuses = sorted(r.status.value for r in runs)
        # The run in flight ends failed with the reason and releases its claim; the sweep stops
        # there (the next run is still queued), and re-running it resumes. Where the disk had
        # no room left even for that one status write (it depends on where the last page fell),
        # the run stays "running" under its dead owner, and the next claim takes it over.
        assert statuses in (["failed", "queued"], ["queued", "running"]), [(r.status, r.error) for r in runs]
        if statuses == ["failed", "queued"]:
            (failed,) = [r for r in runs if r.status.value == "failed"]
            assert "disk is full" in failed.error
            with closing(sqlite3.connect(tmp_path / "copy.db")) as conn:
                assert conn.execute("SELECT COUNT(*) FROM runs WHERE owner IS NOT NULL").fetchone()[0] == 0
        else:
            (stuck,) = [r for r in runs if r.status.value == "running"]
            assert store.begin_run(stuck, owner=new_owner())  # its owner is gone: re-running resumes it
            assert store.run(stuck.id).status.value == "running" and store.steps(stuck.id).step.size == 0
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
