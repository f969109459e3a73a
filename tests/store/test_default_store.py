"""One default store: ``lrlab-runs/lrlab.db`` for every caller, and the store that
``lrlab.study`` wrote at its older default (``lrlab-runs/runs.db``) found, with one line."""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrlab.core.records import RunRecord
from lrlab.store import DEFAULT_DB, Store, open_store, resolve_default_db
from lrlab.store.location import LEGACY_DB

OLD = Path("lrlab-runs") / "runs.db"


def _run(run_id: str) -> RunRecord:
    config = {"task": "digits-linear", "optimizer": "sgd", "schedule": "constant(lr=0.1)", "lr": 0.1, "epochs": 2}
    return RunRecord(id=run_id, sweep="study", status="queued", config=config, seed=0)


def _old_store(path: Path, ids: tuple[str, ...] = ("a", "b")) -> None:
    """A store at ``path`` whose last writes are still in its write-ahead log, as a process
    killed before it closed its store leaves it."""
    code = (
        "import os, sys\n"
        "from lrlab.core.records import RunRecord\n"
        "from lrlab.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "config = {'task': 'digits-linear', 'optimizer': 'sgd', 'schedule': 'constant(lr=0.1)', 'lr': 0.1}\n"
        "for rid in sys.argv[2:]:\n"
        "    store.begin_run(RunRecord(id=rid, sweep='study', status='queued', config=config, seed=0))\n"
        "    store.append_metrics(rid, [(0, 1, [0.1], None, 2.0, 1.0), (1, 1, [0.1], None, 1.5, 1.0)])\n"
        "    store.end_run(rid, 'done')\n"
        "os._exit(0)  # no close: the log is not folded into the file\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), *ids], check=True)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lrlab.store"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workdir(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.WARNING, logger="lrlab.store")
    return tmp_path


def test_every_default_is_the_stores_default():
    from lrlab.cli._common import db_option
    from lrlab.study import api
    from lrlab.track import Run, track

    assert str(DEFAULT_DB) == "lrlab-runs/lrlab.db" and LEGACY_DB == OLD
    assert inspect.signature(api.study).parameters["store"].default == DEFAULT_DB
    assert inspect.signature(track).parameters["db"].default == DEFAULT_DB
    assert inspect.signature(Run).parameters["db"].default == DEFAULT_DB
    assert inspect.signature(Store).parameters["path"].default == DEFAULT_DB
    assert db_option().default == DEFAULT_DB


def test_an_older_python_default_store_is_moved_to_the_default_with_its_log(workdir, caplog):
    _old_store(workdir / OLD)
    assert (workdir / f"{OLD}-wal").stat().st_size > 0  # the runs are in the log yet
    store = Store()
    assert Path(store.path) == DEFAULT_DB
    assert [r.id for r in store.runs()] == ["a", "b"] and store.step_count("b") == 2
    assert store.integrity_check() == "ok"
    assert not (workdir / OLD).exists()
    assert not any((workdir / f"{OLD}{suffix}").exists() for suffix in ("-wal", "-shm", "-journal"))
    (message,) = _messages(caplog)
    assert message.startswith(f"moved {OLD} ") and message.endswith(f"to {DEFAULT_DB}")
    store.close()
    Store(readonly=True).close()  # opened again: nothing more to say
    assert len(_messages(caplog)) == 1


def test_the_moved_store_is_written_in_wal_mode_again(workdir):
    _old_store(workdir / OLD)
    store = Store()
    store.begin_run(_run("c"))
    assert store._connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(store.runs()) == 3
    store.close()


def test_a_read_only_reader_of_the_default_finds_the_older_store(workdir, caplog):
    _old_store(workdir / OLD)
    assert [r.id for r in open_store().runs()] == ["a", "b"]
    assert (workdir / DEFAULT_DB).is_file() and not (workdir / OLD).exists()
    assert len(_messages(caplog)) == 1


def test_with_both_stores_the_default_is_used_and_the_old_one_left_alone(workdir, caplog):
    _old_store(workdir / OLD, ("old",))
    Store(workdir / OLD).close()  # its log folded: a file that must not change
    new = Store(workdir / DEFAULT_DB)
    new.begin_run(_run("new"))
    new.close()
    before = _digest(workdir / OLD)
    for _ in range(2):
        store = Store()
        assert [r.id for r in store.runs()] == ["new"]
        store.close()
    assert _digest(workdir / OLD) == before
    (message,) = _messages(caplog)  # said once, however often the default is opened
    assert "left alone" in message and f"--db {OLD}" in message
    assert [r.id for r in Store(OLD, readonly=True).runs()] == ["old"]  # as the message says


def test_an_old_store_open_elsewhere_is_used_where_it_is(workdir, caplog):
    _old_store(workdir / OLD)
    holder = sqlite3.connect(workdir / OLD)
    holder.execute("SELECT COUNT(*) FROM runs").fetchone()  # holds the file (WAL mode)
    try:
        store = Store()
        assert Path(store.path) == OLD and len(store.runs()) == 2
        store.close()
    finally:
        holder.close()
    assert not (workdir / DEFAULT_DB).exists()
    (message,) = _messages(caplog)
    assert "could not be moved" in message and "using it where it is" in message


def test_a_file_that_is_no_store_is_left_alone(workdir, caplog):
    (workdir / OLD).parent.mkdir()
    (workdir / OLD).write_bytes(b"not a database, just bytes " * 100)
    store = Store()
    assert Path(store.path) == DEFAULT_DB and store.runs() == []
    store.close()
    assert (workdir / OLD).read_bytes().startswith(b"not a database")
    (message,) = _messages(caplog)
    assert "no run store" in message and "left alone" in message


def test_a_path_other_than_the_default_is_never_resolved(workdir, caplog):
    _old_store(workdir / OLD)
    assert resolve_default_db("elsewhere.db") == Path("elsewhere.db")
    assert resolve_default_db(workdir / DEFAULT_DB) == workdir / DEFAULT_DB  # absolute: as given
    Store(workdir / "elsewhere.db").close()
    assert (workdir / OLD).exists() and _messages(caplog) == []


def test_a_pickled_store_opens_the_file_it_was_made_with(workdir):
    import pickle

    _old_store(workdir / OLD)
    holder = sqlite3.connect(workdir / OLD)
    holder.execute("SELECT COUNT(*) FROM runs").fetchone()
    try:
        store = Store()  # in use: the old file, where it is
    finally:
        holder.close()
    copy = pickle.loads(pickle.dumps(store))  # a worker: no second resolution, no move
    assert copy.path == store.path == str(OLD) and (workdir / OLD).exists()
    copy.close()
    store.close()


def test_lrlab_runs_list_sees_the_runs_of_an_older_python_study(workdir, caplog):
    from lrlab.cli.app import app

    _old_store(workdir / OLD)
    result = CliRunner().invoke(app, ["runs", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 runs" in result.output
    assert (workdir / DEFAULT_DB).is_file() and not (workdir / OLD).exists()
    assert len(_messages(caplog)) == 1
    assert os.listdir(workdir / "lrlab-runs") == ["lrlab.db"]
