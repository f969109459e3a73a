"""The ``lrlab`` command line: one typer app, one module per command."""

from __future__ import annotations

import sys

from lrlab.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point. Ctrl-C anywhere ends with one line and exit code 130; a
    store that cannot be written (a full disk, an I/O error) with one line and exit code 1."""
    import sqlite3

    from lrlab.cli._common import err_console

    try:
        app(prog_name="lrlab")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
