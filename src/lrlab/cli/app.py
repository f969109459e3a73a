"""The typer app; each command lives in its own module and registers itself here."""

from __future__ import annotations

import typer

from lrlab import __version__

HELP = """lrlab: a learning-rate lab for PyTorch.

Examples:

  lrlab study

  lrlab schedule "cyclic(base_lr=0.001, max_lr=0.1, step_size=200)" --steps 2000 --out clr.png

  lrlab find --task digits-mlp --out finder.png

  lrlab sweep examples/digits-lr.toml --jobs 2 && lrlab report --sweep digits-lr --out report.html

  lrlab surface --scenario ravine-story --out ravine.png
"""

app = typer.Typer(
    name="lrlab",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """lrlab: a learning-rate lab for PyTorch."""
    from lrlab.cli._common import close_stores

    ctx.call_on_close(close_stores)  # however the command ends, its stores are closed
    _fit_consoles()


def _fit_consoles() -> None:
    # The consoles are made at import; a width asked for in the environment of this call
    # (COLUMNS) applies to this call, also when the app runs in-process more than once.
    import os

    from lrlab.cli._common import console, err_console

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        console.width = err_console.width = int(columns)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from lrlab.cli import (  # noqa: F401
        find,
        report,
        runs,
        schedule,
        study,
        surface,
        sweep,
        transfer,
        tune,
    )


_register()
