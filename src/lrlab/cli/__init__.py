"""The ``lrlab`` command line: one typer app, one module per command."""

from __future__ import annotations

import sys

from lrlab.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="lrlab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
