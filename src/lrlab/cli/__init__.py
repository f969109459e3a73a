"""The ``lrlab`` command line: one typer app, one module per command."""

from __future__ import annotations

import sys

from lrlab.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point. Ctrl-C anywhere ends with one line and exit code 130; a
    store that cannot be written (a full disk, an I/O error) with one line and exit code 1."""
    import sqlite3

    import typer
    from rich.markup import escape

    from lrlab.cli._common import err_console, safe

    # click's UsageError as typer ships it (BadParameter, MissingParameter, NoSuchOption...).
    usage_error = typer.BadParameter.__base__
    try:
        code = app(prog_name="lrlab", standalone_mode=False)
    except usage_error as exc:  # a missing or malformed option: one line, not click's box
        if not exc.format_message():  # no arguments at all: the help was printed
            sys.exit(2)
        path = exc.ctx.command_path.removeprefix("lrlab").strip() if getattr(exc, "ctx", None) else ""
        command = f" {path}" if path else ""
        err_console.print(
            f"[bold red]error:[/] {escape(safe(exc.format_message()))} (see lrlab{escape(command)} --help)",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        sys.exit(2)
    except typer.Abort:
        err_console.print("interrupted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except sqlite3.Error as exc:
        err_console.print(
            f"[bold red]error:[/] the run store could not be written ({exc}); the run in flight is "
            "marked failed where the store allowed it, and re-running the command resumes",
            highlight=False, soft_wrap=True, markup=True,
        )  # fmt: skip
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
