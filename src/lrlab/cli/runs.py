"""``lrlab runs list|show|export|rm``: look at and manage stored runs."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lrlab.cli._common import bad_input, console, db_option, open_store, safe
from lrlab.cli._runs_table import STATUS_STYLE, ListOptions, metric_columns, recorded_lrs, runs_table
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
_STATUS_STYLE = STATUS_STYLE


def _text(value: object) -> str:
    """A stored name for a rich table: control characters and markup escaped."""
    return escape(safe(value))


def _store(db: Path, *, readonly: bool = True):  # -> Store
    return open_store(db, readonly=readonly)


def _check_sweep(store, db: Path, sweep: str | None) -> None:  # store: Store
    """Bad input (exit 2) when ``sweep`` is given and not in the store, naming the ones there."""
    if sweep is not None and sweep not in store.sweeps():
        bad_input(f"no sweep {sweep!r} in {db} (sweeps: {', '.join(store.sweeps()) or 'none'})")


@runs_app.command(
    "list",
    help="List runs, one line each, with the task's objective and metrics.\n\nAt the terminal's width each run keeps one line: schedules as their shape, optimizers by name, the peak LR each schedule reaches, the objective and one more metric. --wide shows whole specs and every metric; --full-ids whole ids.\n\nExamples:\n\n  lrlab runs list\n\n  lrlab runs list --sweep digits-lr --status diverged\n\n  lrlab runs list --sweep digits-lr --wide --full-ids",
)
def list_runs(
    db: Path = _DB,
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep."),
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
    wide: bool = typer.Option(False, "--wide", "-w", help="Whole specs, the sweep and task, every metric."),
    full_ids: bool = typer.Option(
        False, "--full-ids", help="Whole run ids (default: the first 8 characters)."
    ),
) -> None:
    from lrlab.core.records import RunStatus

    try:
        wanted = None if status is None else RunStatus.parse(status)
    except ValueError as exc:
        bad_input(f"--{exc}")
    store = _store(db)
    _check_sweep(store, db, sweep)
    runs = store.runs(status=wanted) if sweep is None else store.sweep_runs(sweep, status=wanted)
    epochs = store.epochs_for([r.id for r in runs])
    finals = {r.id: (epochs[r.id][-1] if epochs[r.id] else None) for r in runs}
    # the title above the table, not in it: a long store path wraps instead of cutting the task off
    console.print(_text(_list_title(runs, db, sweep)), highlight=False, justify="center")
    options = ListOptions(wide=wide, full_ids=full_ids)
    table, left_out = runs_table(runs, finals, options, console.width, recorded_lrs(store, runs))
    if wide:  # whole cells, however wide: no folding at the terminal's edge (pipe to `less -S`)
        width = max(
            console.width, console.measure(table, options=console.options.update_width(10_000)).maximum
        )
        Console(width=width, force_terminal=console.is_terminal, no_color=console.no_color).print(table)
    else:
        console.print(table)
    console.print(_text(_list_footer(runs, left_out)), highlight=False)


def _list_title(runs, db: Path, sweep: str | None) -> str:  # runs: list[RunRecord]
    """``154 runs in DB, sweep S, task T, optimizer O; objective val_mae (lower is better)``:
    what every listed run shares (left out of the table's columns)."""
    tasks, sweeps = {r.config.task for r in runs}, {r.sweep for r in runs}
    if sweep is None and len(sweeps) == 1 and None not in sweeps:  # one sweep: named here, not in a column
        sweep = next(iter(sweeps))
    optimizers = {str(r.config.optimizer) for r in runs}
    title = f"{len(runs)} runs in {db}" + (f", sweep {sweep}" if sweep else "")
    title += f", task {next(iter(tasks))}" if len(tasks) == 1 else ""
    title += f", optimizer {next(iter(optimizers))}" if len(optimizers) == 1 else ""
    objectives = {(o.metric, o.higher_is_better) for r in runs if (o := r.objective) is not None}
    if len(objectives) == 1:
        metric, higher = next(iter(objectives))
        title += f"; objective {metric} ({'higher' if higher else 'lower'} is better)"
    return title


def _list_footer(runs, left_out: list[str]) -> str:  # runs: list[RunRecord]
    """The count of each status, and the metrics the table left out (shown by --wide)."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    line = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no runs"
    if left_out:
        line += f"; {', '.join(left_out)} with --wide"
    return line


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
    objective = record.objective
    if objective is not None:
        console.print(f"objective: {objective.metric} ({'higher' if objective.higher_is_better else 'lower'} "
                      f"is better); loss {objective.loss_label}", markup=False, highlight=False)  # fmt: skip
    epochs = store.epochs(record.id)
    metrics = metric_columns([record], {record.id: epochs[-1] if epochs else None})
    metrics += [m for m in dict.fromkeys(k for e in epochs for k in e.metrics) if m not in metrics]
    table = Table(title=f"{len(epochs)} epochs, {store.step_count(record.id)} steps")
    for column in ("epoch", "step", "train_loss", *metrics, "time (s)"):
        table.add_column(column, justify="right")
    for e in epochs:
        values = [num(e.value(m), 3 if m in ("val_error", "val_accuracy") else 4) for m in metrics]
        table.add_row(str(e.epoch), str(e.step), num(e.train_loss), *values, f"{e.wall_time:.2f}")
    console.print(table)


@runs_app.command(
    "export",
    help="Write runs out: to stdout as JSON or CSV (one record per run), or to TensorBoard or MLflow.\n\nJSON/CSV fields: id, sweep, status, seed, config (the resolved spec), error, the objective the task declared, final {epoch, train_loss, val_loss, val_error, val_accuracy and every named metric such as val_mae} (CSV: final_<metric> columns).\n\n--to tensorboard DIR writes event files (DIR/<sweep>/<run id>; view with tensorboard --logdir DIR); --to mlflow DIR writes an MLflow store (DIR/mlflow.db; a tracking URI works too): LR per group, momentum, loss, grad norm, epoch metrics, instruments, findings and config.\n\nExamples:\n\n  lrlab runs export --format json > runs.json\n\n  lrlab runs export --sweep digits-lr --format csv > digits-lr.csv\n\n  lrlab runs export --to tensorboard tb --sweep digits-lr\n\n  lrlab runs export --to mlflow mlruns --run 3f2a9c1e",
)
def export(
    dest: str | None = typer.Argument(
        None, help="With --to: the folder (or MLflow tracking URI) to write to."
    ),
    db: Path = _DB,
    sweep: str | None = typer.Option(None, "--sweep", help="Only this sweep."),
    run: list[str] = typer.Option(None, "--run", help="Only this run (a unique id prefix; repeatable)."),
    format: str = typer.Option("json", "--format", "-f", help="json or csv (to stdout)."),
    to: str | None = typer.Option(
        None, "--to", help="tensorboard or mlflow: write there (DEST) instead of stdout."
    ),
) -> None:
    if to is not None:
        _export_to(to, dest, db, sweep, run or [])
        return
    if dest is not None:
        bad_input(
            f"a destination ({dest!r}) needs --to tensorboard or --to mlflow; JSON and CSV go to stdout"
        )
    if format not in ("json", "csv"):
        bad_input(f"--format must be json or csv, got {format!r}")
    from lrlab.store.queries import export_records

    store = _store(db)
    _check_sweep(store, db, sweep)
    ids = [_resolve(store, r) for r in run] if run else None
    records = export_records(store, sweep, ids)
    if format == "json":
        sys.stdout.write(json.dumps(records, indent=2, sort_keys=False) + "\n")
        return
    _write_csv(records)


def _write_csv(records: list[dict]) -> None:
    """The stable columns, then the objective and every named final metric (``final_val_mae``)."""
    from lrlab.store.queries import flat_records

    columns, rows = flat_records(records)
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _export_to(to: str, dest: str | None, db: Path, sweep: str | None, run: list[str]) -> None:
    """``--to tensorboard|mlflow DEST``: every selected run written there, one line at the end."""
    from lrlab.export import KINDS, export_runs, exporter

    if to not in KINDS:
        bad_input(f"--to must be one of {', '.join(KINDS)}, got {to!r}")
    if not dest:
        bad_input(f"--to {to} needs a destination: lrlab runs export --to {to} DIR")
    if "://" not in dest and Path(dest).exists() and not Path(dest).is_dir():
        bad_input(f"{dest!r} is a file, not a folder: give a folder to write the {to} export into")
    store = _store(db)
    _check_sweep(store, db, sweep)
    ids = [_resolve(store, r) for r in run] if run else None
    try:
        writer = exporter(to, dest)
    except ImportError as exc:
        bad_input(str(exc))
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its table migrations, line by line
    count = export_runs(store, writer, sweep=sweep, ids=ids)
    console.print(
        f"exported {count} run(s) to {to} at {safe(dest)} (view: {safe(writer.view_command())})",
        markup=False,
        highlight=False,
    )


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
