"""Helpers shared by the commands: one-line usage errors (exit code 2) and consoles."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from lrlab.store.location import DEFAULT_DB, resolve_default_db

console = Console()
err_console = Console(stderr=True)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}


def safe(text: object) -> str:
    r"""``text`` with control characters escaped (``\x1b``), so that stored names and user
    input never drive the terminal.

    >>> safe("run\x1b[2J")
    'run\\x1b[2J'
    """
    return str(text).translate(_CONTROL)


def bad_input(message: str) -> NoReturn:
    """Report bad input in one line on stderr and exit with code 2, no traceback."""
    err_console.print(f"[bold red]error:[/] {escape(safe(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def db_option(help: str = "The run store (SQLite file).") -> Path:
    """The ``--db`` option of every command, with the one default path."""
    return typer.Option(DEFAULT_DB, "--db", help=help, callback=resolve_default_db)  # finds an older default


def open_store(db: Path, *, readonly: bool = False):  # -> lrlab.store.Store
    """The run store at ``db`` for a command: read-only for commands that only read (it must
    exist), else writable. A file that is no store, a damaged or newer one: one line, exit 2.
    The store is closed when the command ends, however it ends, so no connection outlives
    the command (its write-ahead log is folded into the file there and then)."""
    from lrlab.store import StoreError
    from lrlab.store import open_store as open_run_store

    try:
        store = open_run_store(db, readonly=readonly)
    except (StoreError, FileNotFoundError) as exc:
        bad_input(str(exc))
    _opened.append(store)
    return store


_opened: list = []  # the stores the running command opened (closed by close_stores)


def close_stores() -> None:
    """Close every store the command opened (the root callback has the command's context
    call it when the command ends, whichever way)."""
    while _opened:
        _opened.pop().close()


# ---------------------------------------------------------------- task options

TASK_OPTION_HELP = (
    "A task option key=value, repeatable; values are TOML scalars (hidden=32, dropout=0.1, bidirectional=true, "
    "cell=gru or cell='gru'), checked against the task function's keyword arguments."
)


def task_option_flag() -> Any:
    """The ``--task-option`` option (repeatable) of ``find``, ``study``, ``tune`` and ``transfer``."""
    return typer.Option(None, "--task-option", help=TASK_OPTION_HELP, show_default=False)


def task_options(values: list[str] | None) -> dict[str, Any]:
    """``--task-option key=value`` values read into ``{key: value}`` (TOML scalars; a bare word is
    a string); a malformed one is bad input (one line, exit 2). Whether the task takes these keys
    and types is checked where the task is built (``get_task(ref, **options)`` raises
    ``ValueError`` in one line naming the keys it takes)."""
    from lrlab.training.tasks.options import parse_options

    try:
        return parse_options(values or [])
    except ValueError as exc:
        bad_input(f"--task-option: {exc}")
