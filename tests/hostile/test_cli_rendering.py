"""Hostile input to the commands that read and write stores and files (runs, report,
schedule, sweep): each case is one line on stderr naming what is wrong, exit code 2, no
traceback, and the store and every earlier output byte for byte as they were. User text
(paths, names, ids) is printed as text, never read as rich markup."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrlab.cli import app
from lrlab.core.records import EpochRecord
from lrlab.store import RunConfig, RunRecord, Store

runner = CliRunner()


def _store(path: Path, sweep: str = "s") -> Path:
    store = Store(path)
    store.upsert_sweep(sweep, {"name": sweep})
    for i in range(3):
        rid = f"r{i:03d}abcdef"
        config = RunConfig(task="digits-linear", lr=0.05 * (i + 1), epochs=2, batch_size=32)
        store.begin_run(RunRecord(id=rid, sweep=sweep, status="queued", config=config, seed=0))
        store.append_metrics(rid, [(s, s // 10 + 1, [config.lr], None, 2.0 - s / 20, 1.0) for s in range(20)],
                             [EpochRecord(rid, e, 10 * e, 1.5 / e, 1.4 / e, 0.3, 0.7, 1.0) for e in (1, 2)])  # fmt: skip
        store.end_run(rid, "done")
    store.close()
    with closing(sqlite3.connect(path)) as conn:  # checkpointed: the digest is the file's
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def place(tmp_path):
    """A good store, an earlier report, a file, an empty file, garbage, a foreign SQLite file,
    a folder: what the cases point at."""
    _store(tmp_path / "runs.db")
    (tmp_path / "previous.html").write_text("<!DOCTYPE html><html>the earlier report</html>\n")
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "garbage.db").write_bytes(b"x\n" * 3000)
    with closing(sqlite3.connect(tmp_path / "foreign.db")) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "out.html").mkdir()
    (tmp_path / "fig.png").mkdir()
    (tmp_path / "s.toml").write_text(
        'name = "s2"\ntask = "digits-linear"\ntask_options = { train_size = 32, val_size = 16 }\n'
        "epochs = 1\nbatch_size = 16\n\n[grid]\nlr = [0.1]\n"
    )
    return tmp_path


def _digest(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``: its name and content."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if key.endswith("-shm") or (key.endswith("-wal") and path.stat().st_size == 0):
            continue  # a reader's shared-memory index and empty log: no data
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


GOOD, S = "{d}/runs.db", "s"
# (command line with {d} for the folder, a fragment of the one line)
CASES = [
    # runs list
    ("runs list --db {d}/folder.db", "is a folder, not a run store"),
    ("runs list --db {d}/missing.db", "no run store at"),
    ("runs list --db {d}/empty.db", "is an empty file, not a run store"),
    ("runs list --db {d}/garbage.db", "not a usable run store"),
    ("runs list --db {d}/foreign.db", "another program, not a run store"),
    ("runs list --db {d}/afile/runs.db", "no run store at"),
    (f"runs list --db {GOOD} --sweep nope", "no sweep 'nope'"),
    (f"runs list --db {GOOD} --status sleeping", "sleeping"),
    # runs show
    (f"runs show zzzz --db {GOOD}", "no run 'zzzz'"),
    (f"runs show r --db {GOOD}", "ambiguous (3 runs)"),
    (f"runs show [bold]x[/] --db {GOOD}", "no run '[bold]x[/]'"),
    (f"runs show \x1b[2Jx --db {GOOD}", "no run '\\x1b[2Jx'"),
    ("runs show r000 --db {d}/missing.db", "no run store at"),
    ("runs show r000 --db {d}/folder.db", "is a folder"),
    # runs export
    (f"runs export --db {GOOD} --format xml", "--format must be json or csv, got 'xml'"),
    (f"runs export --db {GOOD} --format [red]csv", "--format must be json or csv, got '[red]csv'"),
    (f"runs export --db {GOOD} --sweep nope", "no sweep 'nope'"),
    ("runs export --db {d}/folder.db", "is a folder"),
    ("runs export --db {d}/empty.db", "is an empty file"),
    # runs rm
    (f"runs rm --db {GOOD} --yes", "give run ids or --sweep NAME"),
    (f"runs rm zzzz --db {GOOD} --yes", "no run 'zzzz'"),
    (f"runs rm r --db {GOOD} --yes", "ambiguous"),
    (f"runs rm --sweep nope --db {GOOD} --yes", "no sweep 'nope'"),
    ("runs rm r000 --db {d}/missing.db --yes", "no run store at"),
    ("runs rm r000 --db {d}/empty.db --yes", "is an empty file"),
    ("runs rm r000 --db {d}/garbage.db --yes", "not a usable run store"),
    ("runs rm r000 --db {d}/folder.db --yes", "is a folder"),
    # report
    (f"report --db {GOOD} --sweep s --out {{d}}/r.txt", "--out must end in .html, got 'r.txt'"),
    (f"report --db {GOOD} --sweep s --out {{d}}/afile/r.html", "which is a file, not a folder"),
    (f"report --db {GOOD} --sweep s --out {{d}}/afile/deeper/r.html", "which is a file, not a folder"),
    (f"report --db {GOOD} --sweep s --out {{d}}/out.html", "is a folder: give a file name inside it"),
    (f"report --db {GOOD} --sweep s --out {{d}}/r.html --svg", "--svg needs --png DIR"),
    (f"report --db {GOOD} --sweep s --out {{d}}/r.html --png {{d}}/afile", "--png must be a folder"),
    (
        f"report --db {GOOD} --sweep s --out {{d}}/r.html --png {{d}}/afile/figs",
        "which is a file, not a folder",
    ),
    (f"report --db {GOOD} --sweep s --runs r000 --out {{d}}/r.html", "either --sweep or --runs"),
    (f"report --db {GOOD} --sweep nope --out {{d}}/r.html", "nope"),
    (f"report --db {GOOD} --runs zzzz --out {{d}}/r.html", "zzzz"),
    ("report --db {d}/missing.db --out {d}/r.html", "no run store at"),
    ("report --db {d}/folder.db --out {d}/r.html", "is a folder"),
    ("report --db {d}/foreign.db --out {d}/r.html", "another program"),
    # schedule
    ("schedule constant(lr=1) --steps 100000000000", "--steps must be between 1 and 10,000,000"),
    ("schedule constant(lr=1) --steps 10000001", "got 10,000,001"),
    ("schedule constant(lr=1) --steps 0", "--steps must be >= 1"),
    ("schedule cosine( --steps 10", "bad schedule spec"),
    ("schedule [red]boom[/] --steps 10", "[red]boom[/]"),
    ("schedule constant(lr=1) --out {d}/x.txt", "--out must end in one of"),
    ("schedule constant(lr=1) --out {d}/afile/x.png", "which is a file, not a folder"),
    ("schedule constant(lr=1) --out {d}/fig.png", "is a folder: give a file name inside it"),
    # sweep
    ("sweep {d}/s.toml --db {d}/folder.db -q", "is a folder"),
    ("sweep {d}/s.toml --db {d}/empty.db -q", "is an empty file"),
    ("sweep {d}/s.toml --db {d}/afile/runs.db -q", "is a file, not a folder"),
    ("sweep {d}/s.toml --db {d}/garbage.db -q", "not a usable run store"),
    ("sweep {d}/missing.toml --db {d}/new.db -q", "missing.toml"),
]


@pytest.mark.parametrize(
    ("line", "fragment"), CASES, ids=[f"{i:02d}-{c[0].split(' --')[0][:30]}" for i, c in enumerate(CASES)]
)
def test_hostile_input_is_one_line_exit_2_and_changes_nothing(place, line, fragment):
    args = [part.replace("{d}", str(place)) for part in line.replace("{{d}}", "{d}").split(" ")]
    before = _digest(place)
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    lines = [text for text in result.output.strip().splitlines() if text.strip()]
    assert result.exit_code == 2, (result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert fragment.replace("{d}", str(place)) in lines[0], lines[0]
    assert "Traceback" not in result.output and "\x1b" not in result.output
    assert _digest(place) == before


# ------------------------------------------------------------------ user text as text


def test_report_out_with_markup_characters_writes_and_says_so(place):
    out = place / "r[/x].html"
    result = runner.invoke(app, ["report", "--db", str(place / "runs.db"), "--sweep", "s", "--out", str(out),
                                 "-q"], env={"COLUMNS": "400"})  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out} (" in result.output
    assert out.is_file() and out.read_text().rstrip().endswith("</html>")


def test_report_png_folder_with_markup_characters_is_named_as_it_is(place):
    out, figures = place / "r.html", place / "figs[bold]"
    result = runner.invoke(app, ["report", "--db", str(place / "runs.db"), "--sweep", "s", "--out", str(out),
                                 "--png", str(figures), "-q"], env={"COLUMNS": "400"})  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"figure files into {figures}" in result.output
    assert len(list(figures.glob("*.png"))) >= 3


def test_schedule_out_with_markup_characters_writes_and_says_so(place):
    out = place / "s[/x].png"
    result = runner.invoke(app, ["schedule", "constant(lr=1)", "--steps", "50", "--out", str(out)],
                           env={"COLUMNS": "400"})  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out}" in result.output and out.stat().st_size > 1000


def test_a_sweep_named_with_markup_is_printed_as_it_is(tmp_path):
    db = _store(tmp_path / "runs.db", sweep="[bold]odd[/bold] [/x]")
    result = runner.invoke(app, ["runs", "list", "--db", str(db)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert "[bold]odd[/bold]" in result.output
    show = runner.invoke(app, ["runs", "show", "r000", "--db", str(db)], env={"COLUMNS": "300"})
    assert show.exit_code == 0 and "sweep [bold]odd[/bold] [/x]" in show.output, show.output


def test_schedule_steps_at_the_limit_still_tabulate(tmp_path):
    from lrlab.cli.schedule import MAX_STEPS

    result = runner.invoke(app, ["schedule", "cosine(lr=0.1, total_steps=1000)", "--steps", str(MAX_STEPS)],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Key points over {MAX_STEPS} steps" in result.output


@pytest.mark.parametrize("kind", ["trajectories", "scenario"])
def test_surface_out_with_markup_characters_writes_and_says_so(tmp_path, kind):
    out = tmp_path / "r[/x].png"
    args = (["surface", "ravine", "--opt", "sgd(lr=0.1)", "--steps", "20"] if kind == "trajectories"
            else ["surface", "--scenario", "valley-story", "--steps", "20"])  # fmt: skip
    result = runner.invoke(app, [*args, "--out", str(out)], env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"wrote {out}" in result.output
    assert out.is_file() and out.stat().st_size > 1000
