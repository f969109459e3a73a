"""Nothing lost: every file lrlab writes is written beside its target and renamed over it,
so that a reader, or a user whose command was killed half-way, finds the previous file or
the new one, never part of one. Checked on the helper, on every writer that uses it, and
on ``lrlab report`` killed with SIGKILL at several moments while it writes."""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrlab.core.records import EpochRecord
from lrlab.files import atomic_path, check_out_path, write_bytes, write_text
from lrlab.store import RunConfig, RunRecord, Store

SRC = Path(__file__).resolve().parents[2] / "src" / "lrlab"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ the helper


def test_a_write_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path):
    out = tmp_path / "page.html"
    write_text(out, "old")
    os.chmod(out, 0o640)
    write_text(out, "new ü")
    assert out.read_text(encoding="utf-8") == "new ü"
    assert out.stat().st_mode & 0o777 == 0o640  # a rewrite keeps the file's mode
    assert _names(tmp_path) == ["page.html"]
    write_bytes(tmp_path / "deep" / "er" / "f.bin", b"\x00\x01")
    assert (tmp_path / "deep" / "er" / "f.bin").read_bytes() == b"\x00\x01"


def test_a_new_file_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        out = write_text(tmp_path / "a.md", "x")
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644


def test_a_write_that_fails_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    out = tmp_path / "recommendation.md"
    write_text(out, "previous answer")
    with pytest.raises(RuntimeError, match="drawing failed"), atomic_path(out) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("drawing failed")
    assert out.read_text() == "previous answer"
    assert _names(tmp_path) == ["recommendation.md"]


def test_the_temporary_file_keeps_the_suffix_so_writers_pick_the_format(tmp_path):
    with atomic_path(tmp_path / "fig.svg") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".svg" and tmp.name.startswith(".")
        tmp.write_text("<svg/>")
    assert (tmp_path / "fig.svg").read_text() == "<svg/>"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "is a folder"),
        (lambda d: (d / "file.txt", (d / "file.txt").write_text("x"))[0] / "r.html", "which is a file"),
        (lambda d: (d / "f2", (d / "f2").write_text("x"))[0] / "sub" / "r.html", "which is a file"),
    ],
    ids=["a-folder", "under-a-file", "deep-under-a-file"],
)
def test_check_out_path_names_what_is_wrong(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        check_out_path(target)
    assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_no_module_writes_a_file_but_through_the_helper():
    """The class of the bug: a plain write truncates the previous file first. Every write in
    the package goes through lrlab.files: into the temporary path it gives (``tmp``), renamed."""
    import ast

    methods = {
        "write_text",
        "write_bytes",
        "savefig",
        "save",
        "to_csv",
        "to_parquet",
        "write_html",
        "write_image",
    }
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            args = [*node.args, *(k.value for k in node.keywords)]
            into_tmp = any(isinstance(a, ast.Name) and a.id == "tmp" for a in args)
            opens_to_write = name == "open" and any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value[:1] in "wax"
                for a in args[1:]
            )
            method = (
                isinstance(func, ast.Attribute) and name in methods
            )  # a bare write_text(...) is the helper
            if (method or opens_to_write) and not into_tmp:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert offenders == []


# ------------------------------------------------------------------ every writer


def _spec():
    from lrlab.plot.schedules import schedule_figure
    from lrlab.schedules import parse

    return schedule_figure([parse("cosine(lr=0.1, total_steps=100)")], 100)


@pytest.mark.parametrize("suffix", [".png", ".svg", ".html", ".gif"])
def test_a_figure_that_fails_to_draw_leaves_the_previous_figure(tmp_path, suffix, monkeypatch):
    from lrlab.plot import save_figure

    out = tmp_path / f"figure{suffix}"
    save_figure(_spec(), out)
    before = _digest(out)
    assert out.stat().st_size > 500
    import lrlab.files

    real = lrlab.files.os.replace

    def refuse(src, dst):  # the rename never comes: as if the process died just before it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lrlab.files.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        save_figure(_spec(), out)
    monkeypatch.setattr(lrlab.files.os, "replace", real)
    assert _digest(out) == before and _names(tmp_path) == [out.name]


# ------------------------------------------------------------------ lrlab report, killed


def _store(path: Path, runs: int, steps: int) -> Path:
    store = Store(path)
    store.upsert_sweep("s", {"name": "s"})
    for i in range(runs):
        lr = 0.01 * (i + 1)
        config = RunConfig(task="digits-linear", lr=lr, epochs=4, batch_size=32, seed=i % 2)
        rid = f"r{i:03d}"
        per = steps // 4
        store.begin_run(RunRecord(id=rid, sweep="s", status="queued", config=config, seed=i % 2))
        rows = [(s, s // per + 1, [lr], None, 2.0 * math.exp(-s * lr / 50) + 0.01 * math.sin(s + i), 1.0)
                for s in range(steps)]  # fmt: skip
        epochs = [
            EpochRecord(rid, e, e * per, 1.5 / e, 1.4 / e + lr, 0.3, 0.7, float(e)) for e in range(1, 5)
        ]
        store.append_metrics(rid, rows, epochs)
        store.end_run(rid, "done")
    store.close()
    return path


def _report(db: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lrlab", "report", "--db", str(db), "--sweep", "s", "--out", str(out), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _complete(text: bytes) -> bool:
    return text.startswith(b"<!DOCTYPE html>") and text.rstrip().endswith(b"</html>")


def test_lrlab_report_killed_while_writing_leaves_the_previous_report_or_the_new_one(tmp_path):
    db = _store(tmp_path / "runs.db", runs=12, steps=1200)
    out = tmp_path / "report.html"
    first = _report(db, out)
    assert first.wait(timeout=300) == 0
    previous = out.read_bytes()
    assert _complete(previous) and len(previous) > 100_000
    store_digest = _digest(db)
    # Killed the moment the report file is seen to change (the writing itself), and at
    # moments spread over the command (reading, drawing).
    for moment in ("on-change", 0.5, 1.5, 3.0):
        before = out.stat()
        proc = _report(db, out)
        seen: list[bytes] = []
        deadline = time.monotonic() + 300
        started = time.monotonic()
        while proc.poll() is None and time.monotonic() < deadline:
            now = out.stat() if out.exists() else None
            changed = now is None or (now.st_ino, now.st_size, now.st_mtime_ns) != (
                before.st_ino, before.st_size, before.st_mtime_ns)  # fmt: skip
            if (moment == "on-change" and changed) or (
                moment != "on-change" and time.monotonic() - started > moment
            ):
                proc.send_signal(signal.SIGKILL)
                break
            if changed:  # a reader never sees part of a page
                seen.append(out.read_bytes())
        proc.wait(timeout=60)
        data = out.read_bytes()
        assert data == previous or _complete(data), (moment, len(data))
        assert all(_complete(text) for text in seen), moment
    assert _digest(db) == store_digest  # the report only reads the store
