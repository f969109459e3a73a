"""Files written whole or not at all: every file lrlab writes (reports, figures, pages,
``recommendation.md``) goes through here.

A file is written to a temporary file beside it (same folder, so the same file system)
and renamed over the target with ``os.replace``, which is atomic: a reader, or a user whose
command was killed half-way, sees the previous file or the new one, never part of one. A
write that fails removes its temporary file and leaves the previous file as it was.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_text(folder / "a.txt", "hello").read_text()
'hello'
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_out_path", "write_bytes", "write_text"]


def check_out_path(path: str | Path, what: str = "--out") -> None:
    """Raise a one-line ``ValueError`` naming ``path`` when no file can be written there: it
    is a folder, a folder on its way is a file, or its folder cannot be written to. A folder
    that does not exist yet is fine (it is made)."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{what} {str(target)!r} is a folder: give a file name inside it")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"{what} {str(target)!r} is under {str(parent)!r}, which is a file, not a folder"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(
                    f"{what} {str(target)!r} cannot be written: the folder {str(parent)!r} is read-only"
                )
            return


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (its suffix kept, so writers that pick a format from
    the suffix still do) to write the whole file to; renamed over ``path`` when the block
    ends without an error, removed when it raises. The folder is made if missing.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "b.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> out.read_text(), sorted(p.name for p in out.parent.iterdir())
    ('whole', ['b.txt'])
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    # Created here with the usual permissions (0o666 less the umask), as a plain write would.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        _fsync(tmp)
        if target.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp, target.stat().st_mode & 0o7777)  # a rewrite keeps the file's mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(target.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def _fsync(path: Path) -> None:
    """The data on disk before the rename, so that a power cut cannot leave an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or file system opens folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
