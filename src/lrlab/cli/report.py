"""``lrlab report``: the interactive HTML report (and PNG/SVG figures) of stored runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from lrlab.cli._common import bad_input, console, db_option, err_console, open_store, safe
from lrlab.cli.app import app

if TYPE_CHECKING:
    from lrlab.report import ReportData

EXAMPLES = """

Examples:

  lrlab report --sweep lr-grid --out report.html

  lrlab report --db lrlab-runs/lrlab.db --sweep lr-grid --out report.html --png figures/ --svg

  lrlab report --runs 3f2a9c01 --runs 77b0e4d2 --out two-runs.html --log-y
"""



def _check_out(out: Path, png: Path | None) -> None:
    """Bad input (exit 2) when the page or the figures cannot be written where asked,
    before anything is read or drawn."""
    from lrlab.files import check_out_path

    try:
        check_out_path(out, "--out")
        if png is not None:
            check_out_path(png / "report.png", "--png")
    except ValueError as exc:
        bad_input(str(exc))


def _split_ids(values: list[str] | None) -> list[str]:
    ids: list[str] = []
    for value in values or []:
        ids += [part for part in value.replace(",", " ").split() if part]
    return ids


@app.command(
    help="Write the report of a sweep (or chosen runs): one offline HTML page with interactive "
    "figures and diagnostics, and optionally PNG/SVG figures." + EXAMPLES
)
def report(
    out: Path = typer.Option(Path("lrlab-report.html"), "--out", "-o", help="The HTML file to write (.html)."),
    db: Path = db_option(),
    sweep: str | None = typer.Option(None, "--sweep", "-s", help="Report the runs of this sweep."),
    runs: list[str] | None = typer.Option(
        None, "--runs", "-r", help="Report these runs (ids or unique id prefixes); repeat or comma-separate."
    ),
    png: Path | None = typer.Option(None, "--png", help="Also write every figure as PNG into this folder."),
    svg: bool = typer.Option(False, "--svg", help="With --png: write SVG files as well."),
    log_y: bool = typer.Option(False, "--log-y", help="Start the loss axes logarithmic."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    ids = _check_options(out, db, sweep, runs, png, svg)
    from lrlab.report import load_report_data, write_report

    store = open_store(db, readonly=True)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True, disable=quiet,
    ) as bar:  # fmt: skip
        reading = bar.add_task("reading runs", total=None)
        try:
            data = load_report_data(
                store, sweep=sweep, run_ids=ids or None,
                progress=lambda done, total: bar.update(reading, completed=done, total=total),
            )  # fmt: skip
        except ValueError as exc:
            bad_input(str(exc))
        bar.update(reading, description="drawing the figures and writing the page")
        formats = ("png", "svg") if svg else ("png",)
        files = write_report(data, out, image_dir=png, formats=formats, log_y=log_y)
    size_mb = out.stat().st_size / 1e6
    console.print(
        f"wrote [bold]{escape(safe(out))}[/] ({size_mb:.1f} MB, {len(files.figures)} figures, "
        f"{len(data.runs)} runs in {len(data.configs)} configurations)",
        highlight=False,
    )
    _print_verdicts(data)
    _print_findings(data)
    if files.images:
        console.print(f"wrote {len(files.images)} figure files into {safe(png)}", markup=False, highlight=False)


def _check_options(out: Path, db: Path, sweep: str | None, runs: list[str] | None, png: Path | None,
                   svg: bool) -> list[str]:  # fmt: skip
    """The run ids asked for, once every option is checked (one line and exit 2 otherwise)."""
    if out.suffix.lower() not in (".html", ".htm"):
        bad_input(f"--out must end in .html, got {out.name!r}")
    if svg and png is None:
        bad_input("--svg needs --png DIR (the folder for the figures)")
    if png is not None and png.exists() and not png.is_dir():
        bad_input(f"--png must be a folder, {str(png)!r} is a file")
    _check_out(out, png)
    ids = _split_ids(runs)
    if sweep is not None and ids:
        bad_input("give either --sweep or --runs, not both")
    if not db.exists():  # a folder or a bad file: open_store names what it is
        bad_input(f"no run store at {str(db)!r} (run `lrlab sweep` first or pass --db)")
    return ids


def _print_verdicts(data: ReportData) -> None:
    """A study's verdict, or the pointer from one of its sweeps to it, as `lrlab study` said it."""
    if data.part_of is not None:  # one sweep of a study: the study's verdict comes first
        parent = data.part_of
        head = f": {parent.headline}" if parent.lines else ""
        console.print(
            f"[green]*[/] this sweep is one part of the study {escape(safe(parent.name))}, whose verdict "
            f"over all its sweeps is{escape(safe(head))} (lrlab report --sweep {escape(safe(parent.name))})",
            highlight=False,
        )  # fmt: skip
    if data.study is not None:  # a study: its own verdict, as `lrlab study` printed it
        for line in data.study.lines:
            console.print(f"[green]*[/] {escape(safe(line))}", highlight=False)


def _print_findings(data: ReportData) -> None:
    """One line per kind of finding (the runs it concerns), then its first note."""
    from lrlab.core.diagnostics import kind_summary

    by_kind: dict[str, list] = {}
    for finding in data.findings:
        if not (data.study is not None and finding.kind == "best"):
            by_kind.setdefault(finding.kind, []).append(finding)
    for kind, items in by_kind.items():  # one line per kind: the runs it concerns, then its first note
        first = items[0]
        mark = "[yellow]![/]" if first.severity == "warning" else "[green]*[/]"
        if kind == "best":
            console.print(f"{mark} {escape(safe(first.message))}", highlight=False)
            continue
        console.print(f"{mark} {escape(safe(kind_summary(kind, items, data.configs, data.planned_steps)))}",
                      highlight=False)  # fmt: skip
        more = f" (+{len(items) - 1} more in the page)" if len(items) > 1 else ""
        console.print(f"  [dim]{escape(safe(first.message))}{more}[/]", highlight=False)
