"""``lrlab runs list|show|export|rm``: look at and manage stored runs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from lrlab.cli._common import bad_input, console, db_option, open_store, safe
from lrlab.cli.app import app
from lrlab.formatting import num

HELP = """Look at and manage the runs in the store.

Examples:

  lrlab runs list --sweep digits-lr

  lrlab runs show 3f2a9c1e

  lrlab runs export --sweep digits-lr --format csv > digits-lr.csv

  lrlab runs rm --sweep digits-lr --yes
"""

runs_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(runs_app, name="runs")

_DB = db_option()
_STATUS_STYLE = {"done": "green", "diverged": "yellow", "failed": "red", "running": "cyan", "queued": "dim"}


def _text(value: object) -> str:
    """A stored name for a rich table: control characters and markup escaped."""
    return escape(safe(value))


def _store(db: Path, *, readonly: bool = True):  # -> Store
    return open_store(db, readonly=readonly)


def _check_sweep(store, db: Path, sweep: str | None) -> None:  # store: Store
    """Bad input (exit 2) when ``sweep`` is given and not in the store, naming the ones there."""
    if sweep is not None and sweep not in store.sweeps():
        bad_input(f"no sweep {sweep!r} in {db} (sweeps: {', '.join(store.sweeps()) or 'none'})")


_NUMERIC = ("lr", "seed", "val loss", "val acc")


@runs_app.command(
    "list",
    help="List runs with their final metrics.\n\nExamples:\n\n  lrlab runs list\n\n  lrlab runs list --sweep digits-lr --status diverged",
)
def list_runs(
    db: Path = _DB,
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep."),
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
) -> None:
    from lrlab.core.records import RunStatus

    try:
        wanted = None if status is None else RunStatus.parse(status)
    except ValueError as exc:
        bad_input(f"--{exc}")
    store = _store(db)
    _check_sweep(store, db, sweep)
    runs = store.runs(status=wanted) if sweep is None else store.sweep_runs(sweep, status=wanted)
    finals = store.epochs_for([r.id for r in runs])
    tasks = {r.config.task for r in runs}
    one_task = len(tasks) == 1  # then it goes in the title, not in a column
    title = f"{len(runs)} runs in {db}" + (f", task {next(iter(tasks))}" if one_task else "")
    # the title above the table, not in it: a long store path wraps instead of cutting the task off
    console.print(_text(title), highlight=False, justify="center")
    console.print(_runs_table(runs, finals, one_task))


def _runs_table(runs, finals, one_task: bool) -> Table:  # runs: list[RunRecord], finals: their epochs
    """One row per run: its final validation metrics; the task column only for several tasks."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)  # room for the names at 80 columns
    columns = ["id", "sweep", "status", *([] if one_task else ["task"]), "optimizer", "schedule", "lr", "seed",
               "val loss", "val acc"]  # fmt: skip
    for column in columns:  # names and specs fold; ids, statuses and numbers stay whole
        whole = column not in ("sweep", "task", "optimizer", "schedule")
        table.add_column(
            column, overflow="fold", no_wrap=whole, justify="right" if column in _NUMERIC else "left"
        )
    for r in runs:
        c, last = r.config, (finals[r.id][-1] if finals[r.id] else None)
        style = _STATUS_STYLE.get(r.status.value, "")
        cells = [_text(r.id[:8]), _text(r.sweep or "-"), f"[{style}]{r.status}[/]", *([] if one_task else [_text(c.task)]),
                 _text(c.optimizer), _text(c.schedule), num(c.lr), str(r.seed), num(last and last.val_loss),
                 num(last and last.val_accuracy, 3)]  # fmt: skip
        table.add_row(*cells)
    return table


def _resolve(store, run_id: str) -> str:
    matches = [r.id for r in store.runs() if r.id.startswith(run_id)]
    if not matches:
        bad_input(f"no run {run_id!r} in {store.path}")
    if len(matches) > 1:
        bad_input(f"run id prefix {run_id!r} is ambiguous ({len(matches)} runs); give more characters")
    return matches[0]


@runs_app.command(
    "show",
    help="Show one run: config, status, timings and every epoch.\n\nExamples:\n\n  lrlab runs show 3f2a9c1e\n\n  lrlab runs show 3f2a --db runs/chars.db",
)
def show(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    db: Path = _DB,
) -> None:
    store = _store(db)
    record = store.run(_resolve(store, run_id))
    style = _STATUS_STYLE.get(record.status.value, "")
    console.print(
        f"[bold]run {_text(record.id)}[/]  sweep {_text(record.sweep or '-')}  [{style}]{record.status}[/]"
    )
    if record.error:
        console.print(f"error: {safe(record.error)}", markup=False, highlight=False)
    if record.started_at and record.finished_at:
        console.print(f"wall time: {record.finished_at - record.started_at:.2f} s  "
                      f"lrlab {record.lrlab_version}  torch {record.torch_version}")  # fmt: skip
    console.print_json(json.dumps(record.config.to_dict(), sort_keys=True))
    epochs = store.epochs(record.id)
    table = Table(title=f"{len(epochs)} epochs, {store.step_count(record.id)} steps")
    for column in ("epoch", "step", "train loss", "val loss", "val error", "val acc", "time (s)"):
        table.add_column(column, justify="right")
    for e in epochs:
        table.add_row(str(e.epoch), str(e.step), num(e.train_loss), num(e.val_loss), num(e.val_error, 3),
                      num(e.val_accuracy, 3), f"{e.wall_time:.2f}")  # fmt: skip
    console.print(table)


@runs_app.command(
    "export",
    help="Write runs to stdout, one record per run: a JSON array or CSV rows.\n\nFields: id, sweep, status, seed, config (the resolved spec), error, final {epoch, train_loss, val_loss, val_error, val_accuracy}.\n\nExamples:\n\n  lrlab runs export --format json > runs.json\n\n  lrlab runs export --sweep digits-lr --format csv > digits-lr.csv",
)
def export(
    db: Path = _DB,
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep."),
    format: str = typer.Option("json", "--format", "-f", help="json or csv."),
) -> None:
    from lrlab.store.queries import EXPORT_COLUMNS, export_records, flat_record

    if format not in ("json", "csv"):
        bad_input(f"--format must be json or csv, got {format!r}")
    store = _store(db)
    _check_sweep(store, db, sweep)
    records = export_records(store, sweep)
    if format == "json":
        sys.stdout.write(json.dumps(records, indent=2, sort_keys=False) + "\n")
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(flat_record(record))


@runs_app.command(
    "rm",
    help="Delete runs (and their metrics) after confirmation.\n\nExamples:\n\n  lrlab runs rm 3f2a9c1e 77b0c2d4\n\n  lrlab runs rm --sweep digits-lr --yes",
)
def rm(
    run_ids: list[str] = typer.Argument(None, help="Run ids (unique prefixes)."),
    db: Path = _DB,
    sweep: str | None = typer.Option(None, "--sweep", help="Delete every run of this sweep (and the sweep)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    if not run_ids and sweep is None:
        bad_input("give run ids or --sweep NAME")
    if not db.exists():  # rm never makes a store (a folder or a bad file: open_store names it)
        bad_input(f"no run store at {str(db)!r} (run 'lrlab sweep' first or pass --db)")
    store = _store(db, readonly=False)
    ids = [_resolve(store, rid) for rid in run_ids or []]
    if sweep is not None:
        _check_sweep(store, db, sweep)
        ids += [r.id for r in store.sweep_runs(sweep)]  # a study: its runs across its sweeps
    ids = list(dict.fromkeys(ids))
    what = f"{len(ids)} run(s)" + (f" and sweep {sweep!r}" if sweep else "")
    if not yes and not typer.confirm(f"Delete {what} from {db}?", default=False):
        console.print("nothing deleted")
        raise typer.Exit(code=1)
    count = store.delete_sweep(sweep) if sweep is not None else 0
    count += store.delete_runs(ids)
    console.print(f"deleted {count} run(s)")
