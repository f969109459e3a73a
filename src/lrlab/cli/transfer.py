"""``lrlab transfer``: the optimal LR at a scale too large to sweep, predicted from small proxies."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from lrlab.cli._common import (
    bad_input,
    console,
    err_console,
    open_store,
    safe,
    task_option_flag,
    task_options,
)
from lrlab.cli.app import app
from lrlab.formatting import num
from lrlab.store.location import DEFAULT_DB, resolve_default_db

EXAMPLES = """

Examples:

  lrlab transfer --task digits-mlp --axis hidden --proxies 16,32,64 --target 512 --epochs 4

  lrlab transfer --task my_models.py:make_task --axis width --proxies 32,64,128 --target 1024 --optimizer adam

  lrlab transfer --task digits-mlp --axis steps --proxies 1,2,4 --target 16 --schedule cosine

  lrlab transfer --task my_models.py:make_task --axis width --proxies 32,64,128 --target 1024 --parametrization mup

Re-running the same transfer trains only what is missing (every run is in the store).
"""


class _Display:
    """A rich progress bar over the proxies (runs counted as they end) on a terminal; plain
    lines otherwise; nothing with --quiet."""

    def __init__(self, live: bool, quiet: bool) -> None:
        self.live, self.quiet = live and not quiet, quiet
        self.runs = self.skipped = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("proxies"),
                TimeElapsedColumn(),
                console=err_console,
            )
            self._progress.start()
            self._task = self._progress.add_task("planning", total=None)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _say(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text, completed=done, total=total)
        elif not self.quiet:
            err_console.print(
                f"[{time.monotonic() - self.started:5.0f}s] {text}", highlight=False, markup=False
            )

    def __call__(self, event: Any) -> None:
        from lrlab.sweeps import SweepProgress
        from lrlab.training.recorder import RunProgress
        from lrlab.transfer.api import TransferEvent

        if isinstance(event, TransferEvent):
            label = {"plan": "plan", "range-test": "range test", "coord": "coordinate check", "proxy": "proxy",
                     "fit": "fit"}[event.phase]  # fmt: skip
            runs = (
                f" ({self.runs} runs trained, {self.skipped} from the store)"
                if self.runs + self.skipped
                else ""
            )
            self._say(f"{label} {safe(event.detail)}{runs}", event.index, event.total or None)
        elif isinstance(event, SweepProgress) and event.event == "start":
            self.skipped += event.skipped
        elif isinstance(event, RunProgress) and event.event == "end":
            self.runs += 1
            if self._progress is not None:
                self._progress.update(self._task, description=f"{self.runs} runs trained")


@app.command(
    help="Predict the optimal peak LR at a scale too large to sweep (a wider model, a longer run, "
    "another batch size) from three or more small proxies: each proxy's optimum bracketed over seeds, "
    "a power law fitted through them, the prediction with its 80% interval, a figure and code." + EXAMPLES
)
def transfer(
    task: str = typer.Option(
        ..., "--task", "-t", help="The factory: a built-in task, 'pkg.module:function' or 'file.py:function'."
    ),
    axis: str = typer.Option(
        "width",
        "--axis",
        help="A keyword of the factory (width, depth, ...), or steps (epochs) or batch_size.",
    ),
    proxies: str = typer.Option(..., "--proxies", help="Comma-separated proxy values (three or more)."),
    target: float = typer.Option(
        ..., "--target", help="The value to predict the LR at (beyond the proxies)."
    ),
    optimizer: str = typer.Option("adam", "--optimizer", help="Optimizer name or spec."),
    schedule: str = typer.Option(
        "cosine",
        "--schedule",
        help="constant, cosine, warmup-cosine, step, exponential, one-cycle, or a spec.",
    ),
    seeds: int = typer.Option(2, "--seeds", help="Seeds per LR."),
    parametrization: str = typer.Option("standard", "--parametrization", help="standard or mup."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs per run (default: the task's)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default: the task's)."),
    lr: float | None = typer.Option(
        None, "--lr", help="Starting LR (default: a range test of the smallest proxy)."
    ),
    max_extra: int = typer.Option(4, "--max-extra", help="Extra LRs per proxy to bracket its optimum."),
    name: str | None = typer.Option(
        None, "--name", help="The transfer's name (its sweeps are named after it)."
    ),
    out: Path = typer.Option(
        Path("lrlab-transfer"), "--out", "-o", help="Folder for transfer.html and .png."
    ),
    db: Path = typer.Option(
        DEFAULT_DB, "--db", "--store", help="The run store.", callback=resolve_default_db
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs trained at once."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete this transfer's stored runs first."),
    vectorize: bool = typer.Option(
        False, "--vectorize/--no-vectorize", help="Train a grid's LRs stacked in one process (same batches)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    task_option: list[str] | None = task_option_flag(),
) -> None:
    values = _numbers(proxies)
    if jobs < 1:
        bad_input(f"--jobs must be >= 1, got {jobs}")
    if max_extra < 0:
        bad_input(f"--max-extra must be >= 0, got {max_extra}")
    if out.exists() and not out.is_dir():
        bad_input(f"--out must be a folder, got the file {str(out)!r}")
    if lr is not None and not lr > 0:
        bad_input(f"--lr must be a number > 0, got {lr!r}")
    options = task_options(task_option)
    factory = _factory(task)
    from lrlab.transfer.api import transfer as run_transfer

    store = open_store(db)
    with _Display(live=sys.stderr.isatty(), quiet=quiet) as display:
        try:
            result = run_transfer(
                factory, axis, values, target, optimizer, schedule, seeds, parametrization, store, epochs, jobs,
                display, name=name, batch_size=batch_size, lr=lr, options=options, max_extra=max_extra,
                fresh=fresh, vectorize=vectorize,
            )  # fmt: skip
        except ValueError as exc:  # TransferError, TaskChanged, a bad option: one line, the store kept
            bad_input(str(exc).splitlines()[0])
        except RuntimeError as exc:  # a run failed in training
            err_console.print(f"[bold red]error:[/] {escape(safe(exc))}", highlight=False)
            raise typer.Exit(code=1) from None
    _print(result)
    page = result.report(out / "transfer.html")
    console.print(
        f"wrote {escape(str(page))} and {escape(str(page.with_suffix('.png')))}; runs in {escape(str(db))} "
        f"(sweeps {escape(', '.join(result.sweeps))})",
        highlight=False,
    )


def _numbers(text: str) -> list[float]:
    """``32,64,128`` as numbers; anything else is bad input."""
    out = []
    for part in text.split(","):
        try:
            out.append(float(part.strip()))
        except ValueError:
            bad_input(f"--proxies must be comma-separated numbers such as 32,64,128, got {text!r}")
    return out


def _factory(ref: str) -> Any:
    """The task function ``ref`` names (not called: the transfer calls it at each proxy)."""
    from lrlab.training.tasks import REGISTRY, _import

    try:
        factory = _import(REGISTRY.get(ref, ref), ref)
    except ValueError as exc:
        bad_input(str(exc).splitlines()[0])
    if not callable(factory):
        bad_input(f"--task {ref!r} is {type(factory).__name__}, not a function of the axis returning a task")
    return factory


def _print(result: Any) -> None:
    table = Table(title=f"{safe(result.name)}: each proxy's optimum ({result.level:.0%} interval)")
    for column in (result.axis, "optimum", "interval", "bracketed", "LRs tried"):
        table.add_column(column, justify="right")
    for scale, optimum in zip(result.scales, result.proxies, strict=True):
        table.add_row(
            num(scale),
            num(optimum.lr, 3),
            f"{num(optimum.low, 3)} to {num(optimum.high, 3)}",
            "yes" if optimum.bracketed else "no",
            str(len(optimum.lrs)),
        )
    check = result.self_check  # the law of the other proxies at the one nearest the target
    table.add_row(
        f"{num(check.left_out)}: law of {', '.join(num(s) for s in check.fitted_on)}",
        num(check.predicted, 3),
        f"{num(check.predicted_low, 3)} to {num(check.predicted_high, 3)}",
        "self-check",
        "passed" if check.passed else "failed",
        style="dim" if check.passed else "yellow",
    )
    console.print(table)
    for line in result.lines():
        console.print(escape(safe(line)), highlight=False)
