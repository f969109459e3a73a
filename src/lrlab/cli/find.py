"""``lrlab find``: run an LR range test on a task, show and store the suggestions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lrlab.cli._common import (
    bad_input,
    console,
    db_option,
    err_console,
    open_store,
    task_option_flag,
    task_options,
)
from lrlab.cli.app import app
from lrlab.formatting import num

if TYPE_CHECKING:
    from lrlab.core.records import FinderRecord
    from lrlab.finder.result import FinderResult
    from lrlab.training.tasks import Task

EXAMPLES = """

Examples:

  lrlab find --task digits-mlp --out finder.png

  lrlab find --task chars-lstm --optimizer "adam(betas=[0.9, 0.99])" --num-iter 200 --out finder.html

  lrlab find --task my_tasks.py:make_task --optimizer "sgd(momentum=0.9, nesterov=true)" --start-lr 1e-6 --end-lr 1

  lrlab find --task digits-cnn --halving --db runs.db --sweep cnn-study

  lrlab find --task digits-mlp --optimizer adam --repeats 3

  lrlab find --task sunspots-gru --task-option window=33 --task-option hidden=64 --optimizer adam

Exit codes: 0 a recommendation; 2 bad input, or a range test that cannot give a trustworthy
LR (every LR diverged, a flat curve, too few steps): one line says why and what to try.
"""

FIGURE_SUFFIXES = (".png", ".svg", ".html")


def _as_flags(message: str) -> str:
    """Name the command's options in the library's messages (``end_lr`` -> ``--end-lr``)."""
    for name in ("start_lr", "end_lr", "num_iter", "amp", "confirm", "repeats"):
        message = message.replace(f"{name} ", f"--{name.replace('_', '-')} ").replace(
            f"{name}=", f"--{name.replace('_', '-')} "
        )
    return message


def _fmt(lr: float) -> str:
    return "-" if not math.isfinite(lr) else num(lr, 3)


@app.command(
    help="Run a learning-rate range test on a task: a table of every rule's suggestion, the "
    "recommended LR and its reason, cyclic bounds (base_lr, max_lr), a loss-vs-LR figure with the "
    "suggestions marked, and the result stored for `lrlab report`." + EXAMPLES
)
def find(
    task: str = typer.Option(
        ..., "--task", "-t", help="Built-in task name, 'package.module:function' or 'file.py:function'."
    ),
    optimizer: str = typer.Option(
        "sgd(momentum=0.9)", "--optimizer", help="Optimizer spec, e.g. 'adam' or 'sgd(momentum=0.9)'."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help="Default: the task's."),
    num_iter: int = typer.Option(100, "--num-iter", "-n", help="Optimizer steps of the test."),
    start_lr: float = typer.Option(1e-7, "--start-lr", help="First LR of the test."),
    end_lr: float = typer.Option(10.0, "--end-lr", help="Last LR of the test."),
    mode: str = typer.Option("exp", "--mode", help="How the LR rises: exp (geometric) or linear."),
    seed: int = typer.Option(0, "--seed", help="Seed of the model's weights and the batch order."),
    halving: bool = typer.Option(False, "--halving", help="Also run the article's halving search."),
    confirm: int | None = typer.Option(
        None, "--confirm", help="Steps each confirmation candidate trains (0: off; default: find_lr's)."
    ),
    repeats: int = typer.Option(
        1, "--repeats", help="Range tests to average, each on the next batches (steadier, N times the cost)."
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]."),
    amp: bool = typer.Option(False, "--amp", help="CUDA automatic mixed precision (float16)."),
    db: Path = db_option("The store (SQLite file) the result goes to."),
    sweep: str | None = typer.Option(None, "--sweep", help="Tag the stored result with this sweep name."),
    store: bool = typer.Option(True, "--store/--no-store", help="Store the result for the report."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the figure: .png, .svg or .html."),
    task_option: list[str] | None = task_option_flag(),
) -> None:
    _check_options(out, batch_size, mode, confirm, repeats)
    if not (math.isfinite(start_lr) and start_lr > 0):  # before the optimizer is built with it
        bad_input(f"--start-lr must be a finite number > 0, got {start_lr}")
    the_task = _task(task, device, optimizer, seed, task_options(task_option))
    size = batch_size or the_task.default_batch_size
    the_store = open_store(db) if store else None  # checked before anything trains
    options = {"start_lr": start_lr, "end_lr": end_lr, "num_iter": num_iter, "mode": mode, "amp": amp,
               "halving": halving, "confirm": confirm, "repeats": repeats}  # fmt: skip
    result, record = _range_test(the_task, task, optimizer, size, seed, device, sweep, options)
    if not math.isfinite(result.lr):  # no LR to act on or to store: one line, nothing printed or stored
        bad_input(_as_flags(f"the range test found no LR: {result.problem or result.reason}"))
    _print_result(result, the_task.name, optimizer, size)
    if out is not None:
        result.plot(out, title=f"LR range test: {the_task.name}, {optimizer}")
        console.print(f"wrote {escape(str(out))}")
    if the_store is not None:
        the_store.save_finder_result(record)
        console.print(f"stored finder result {record.id} in {escape(str(db))}")
    if result.problem is not None or not math.isfinite(result.lr):
        # The result is stored (the report shows the curve), but it is no answer to act on.
        bad_input(f"no trustworthy LR: {result.problem or result.reason}")


def _check_options(out: Path | None, batch_size: int | None, mode: str, confirm: int | None, repeats: int) -> None:
    if out is not None and out.is_dir():
        bad_input(f"--out must be a file path ending in {', '.join(FIGURE_SUFFIXES)}, {str(out)!r} is a folder")
    if out is not None and out.suffix.lower() not in FIGURE_SUFFIXES:
        bad_input(f"--out must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")
    for parent in out.parents if out is not None else ():
        if parent.exists():  # the nearest folder that exists: the figure's folder is made under it
            if not parent.is_dir():
                bad_input(f"--out {str(out)!r} is under {str(parent)!r}, which is a file, not a folder")
            break
    if batch_size is not None and batch_size < 1:
        bad_input(f"--batch-size must be >= 1, got {batch_size}")
    if mode not in ("exp", "linear"):
        bad_input(f"--mode must be exp or linear, got {mode!r}")
    if confirm is not None and confirm < 0:
        bad_input(f"--confirm must be >= 0 (steps per candidate; 0 turns it off), got {confirm}")
    if repeats < 1:
        bad_input(f"--repeats must be >= 1 (range tests to average), got {repeats}")


def _task(task: str, device: str, optimizer: str, seed: int, options: dict[str, Any]) -> Task:
    """The task, built once with its ``--task-option`` values, after the device, the optimizer
    and the seed are checked."""
    from lrlab.optim.grammar import parse_optimizer
    from lrlab.training.resolve import resolve_device
    from lrlab.training.tasks import check_task, get_task

    try:
        the_task = get_task(task, **options)
        check_task(the_task, task)
        resolve_device(device)
    except ValueError as exc:
        bad_input(str(exc))
    try:
        parse_optimizer(optimizer)
    except ValueError as exc:
        bad_input(f"bad --optimizer {optimizer!r}: {exc}")
    if not 0 <= seed < 2**63:
        bad_input(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")
    return the_task


def _range_test(
    the_task: Task,
    task: str,
    optimizer: str,
    size: int,
    seed: int,
    device: str,
    sweep: str | None,
    options: dict[str, Any],
) -> tuple[FinderResult, FinderRecord]:
    """The range test under a progress bar; a bad finder option is bad input."""
    from lrlab.study.range_tests import task_range_test

    with Progress(
        TextColumn("range test"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}  lr {task.fields[lr]}  loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        job = bar.add_task("test", total=options["num_iter"] * options["repeats"], lr="-", loss="-")

        def progress(iteration: int, total: int, lr: float, loss: float) -> None:
            bar.update(job, completed=iteration + 1, lr=f"{lr:.2e}", loss=f"{loss:.4g}")

        try:
            return task_range_test(the_task, task, optimizer, batch_size=size, seed=seed, device=device, sweep=sweep,
                                   progress=progress, **options)  # fmt: skip
        except ValueError as exc:
            bad_input(_as_flags(str(exc)))


def _print_result(result, task: str, optimizer: str, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    from lrlab.finder.suggest import RULE_DESCRIPTIONS

    stopped = (
        f"stopped early at iteration {len(result)} (diverged)"
        if result.diverged
        else f"{len(result)} iterations"
    )
    repeats = result.config.get("repeats", 1)
    if repeats > 1:
        stopped = f"mean of {repeats} tests, {stopped}"
    table = Table(
        title=f"LR range test: {escape(task)}, {escape(optimizer)}, batch {batch_size} ({stopped}, "
        f"{result.seconds:.1f}s)"
    )
    table.add_column("rule")
    table.add_column("LR", justify="right")
    table.add_column("reason", overflow="fold")
    for name, lr in result.suggestions.items():
        mark = " [bold green](recommended)[/]" if name == result.rule else ""
        table.add_row(escape(name) + mark, _fmt(lr), escape(RULE_DESCRIPTIONS.get(name, "")))
    console.print(table)
    if result.skipped:
        console.print(f"skipped {result.skipped} batch(es) with a non-finite loss")
    console.print(f"[bold]recommended LR: {_fmt(result.lr)}[/]  {escape(result.reason)}")
    try:
        base_lr, max_lr = result.cyclic_bounds()
        console.print(
            f"cyclic / one-cycle bounds (Smith): base_lr={base_lr:.3g}, max_lr={max_lr:.3g}  "
            f"e.g. cyclic(base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, step_size=...) or "
            f"one_cycle(max_lr={max_lr:.3g}, total_steps=...)"
        )
    except ValueError:
        console.print("cyclic bounds: not enough finite losses")
