"""The ``lrlab`` command line: one typer app, one module per command."""

from __future__ import annotations

import sys

from lrlab.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point. Ctrl-C anywhere ends with one line and exit code 130."""
    try:
        app(prog_name="lrlab")
    except KeyboardInterrupt:
        from lrlab.cli._common import err_console

        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
