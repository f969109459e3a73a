"""``lrlab study``: the one-command learning-rate study."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from lrlab.cli._common import (
    bad_input,
    console,
    db_option,
    err_console,
    open_store,
    safe,
    task_option_flag,
    task_options,
)
from lrlab.cli.app import app
from lrlab.formatting import num, pct

EXAMPLES = """

Examples:

  lrlab study

  lrlab study --task digits-cnn --budget medium --optimizers sgdm,adam --out cnn-study

  lrlab study --task chars-transformer --optimizers adam,adamw --jobs 2

  lrlab study --schedules constant,cosine,one-cycle,plateau

  lrlab study --task my_tasks.py:make_task --backend ray --address auto

  lrlab study --task sunspots-gru --task-option window=33 --task-option hidden=64

  lrlab study --train examples/cartpole.py:reinforce --optimizers adam

Re-running the same study skips what is finished (range tests and runs are in the store).
"""


class _Display:
    """A rich progress bar over the study's whole plan (range tests and runs, known up front)
    with its ETA on a terminal; plain lines otherwise; nothing with --quiet."""

    def __init__(self, live: bool, quiet: bool) -> None:
        self.live, self.quiet = live and not quiet, quiet
        self.done = self.total = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("steps of the plan, ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
                console=err_console,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("planning", total=None)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _advance(self, text: str, by: int = 1) -> None:
        self.done += by
        self._say(text)

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text, completed=self.done, total=self.total or None)
        elif not self.quiet:
            err_console.print(
                f"[{time.monotonic() - self.started:5.0f}s] {self.done}/{self.total} {text}",
                highlight=False, markup=False,
            )  # fmt: skip

    def __call__(self, event: Any) -> None:
        from lrlab.study import StudyEvent
        from lrlab.sweeps import SweepProgress
        from lrlab.training.recorder import RunProgress

        if isinstance(event, StudyEvent):
            if event.phase == "plan":
                self.total = event.total
                self._say(f"plan: {event.detail}")
            elif event.phase == "finder":
                self._say(f"range test {safe(event.detail)}")
            elif event.phase == "sweep":
                self._advance(f"range test {safe(event.detail)} done; training its schedules")
            elif event.phase == "no-range-test":
                self._advance(f"{safe(event.detail)} estimates its own LR (no range test); training it at lr=1")
            elif event.phase == "grid":  # a task without a range test: its LRs in one line
                self._advance(safe(event.detail))
            elif event.phase == "bracket":  # a bracketing round: the plan's total is updated
                self.total = event.total or self.total
                self._say(safe(event.detail))
            else:
                self._say(event.phase)
        elif isinstance(event, SweepProgress) and event.event == "start" and event.skipped:
            self._advance(f"{event.skipped} runs of {safe(event.sweep)} already in the store", event.skipped)
        elif isinstance(event, RunProgress) and event.event == "end":
            self._advance(f"run {event.status}")


@app.command(
    help="The one-command learning-rate study: for each optimizer a range test, then the schedules "
    "derived from it (constant, step, exponential, cosine, warmup+cosine, cyclic triangular, "
    "triangular2, sine with per-cycle decay, one-cycle) trained over seeds, stored, reported, and a "
    "recommendation with code for PyTorch and Keras." + EXAMPLES
)
def study(
    task: str = typer.Option(
        "digits-mlp", "--task", "-t", help="Built-in task, 'pkg.module:function' or 'file.py:function'."
    ),
    train: str | None = typer.Option(
        None,
        "--train",
        help="A training function declared with @lrlab.trainable, 'file.py:function' "
        "(studied in place of --task: no range test, the LR bracketed by short trials from its lr_range).",
    ),
    budget: str = typer.Option("small", "--budget", "-b", help="small, medium or large."),
    optimizers: str = typer.Option(
        "sgd,sgdm,adam",
        "--optimizers",
        help="Comma-separated: sgd, sgdm, nesterov, adam, adamw, rmsprop, adagrad, or optimizer specs.",
    ),
    out: Path = typer.Option(
        Path("lrlab-study"), "--out", "-o", help="Folder for report.html, figures and recommendation.md."
    ),
    db: Path = db_option(),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Runs trained at once."),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epochs per run (default: from the budget and the task)."
    ),
    backend: str = typer.Option("local", "--backend", help="local or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --backend ray)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    vectorize: bool = typer.Option(
        True, "--vectorize/--no-vectorize",
        help="Train the runs that differ only in LR and schedule stacked in one process (same batches).",
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Replace a stored study of this name trained on another model, data or task options."
    ),
    schedules: str | None = typer.Option(
        None, "--schedules",
        help="Comma-separated schedule families (default: the nine above); 'plateau' lowers the LR when "
        "the validation metric stalls.",
    ),
    task_option: list[str] | None = task_option_flag(),
) -> None:
    from lrlab.study.plan import BUDGETS, SCHEDULE_NAMES, check_families

    options = task_options(task_option)  # a variant of the task is a study of its own name

    if budget not in BUDGETS:
        bad_input(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if jobs < 1:
        bad_input(f"--jobs must be >= 1, got {jobs}")
    from lrlab.study.checks import MAX_EPOCHS

    if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
        bad_input(f"--epochs must be from 1 to {MAX_EPOCHS:,}, got {epochs:,}")
    if backend not in ("local", "ray"):
        bad_input(f"--backend must be local or ray, got {backend!r}")
    if address is not None and backend != "ray":
        bad_input("--address needs --backend ray")
    names = [o.strip() for o in _split_optimizers(optimizers) if o.strip()]
    if not names:
        bad_input("--optimizers must name at least one optimizer, e.g. sgd,sgdm,adam")
    if out.exists() and not out.is_dir():
        bad_input(f"--out must be a folder, got the file {str(out)!r}")
    try:
        families = SCHEDULE_NAMES if schedules is None else check_families(schedules.split(","))
    except ValueError as exc:
        bad_input(f"--{exc}")

    from lrlab.optim.grammar import parse_optimizer, resolve_optimizer
    from lrlab.study import run_study
    from lrlab.study.run import StudyFailed
    from lrlab.training.tasks import check_task, get_task
    from lrlab.training.trial_task import is_trainable

    if train is not None:
        task = train
    try:
        built = get_task(task, **options)
        if train is not None and not is_trainable(built):
            raise ValueError(f"--train wants a function declared with @lrlab.trainable ('file.py:function'), "
                             f"got {train!r}; give a task function with --task")  # fmt: skip
        skipped = check_task(built, task)
        for name in names:
            parse_optimizer(resolve_optimizer(name))
    except ValueError as exc:
        bad_input(str(exc).splitlines()[0])
    if skipped and not quiet:
        err_console.print(escape(skipped), highlight=False, soft_wrap=True)
    store = open_store(db)
    with _Display(live=sys.stderr.isatty(), quiet=quiet) as display:
        try:
            result = run_study(task, store, budget=budget, optimizers=names, jobs=jobs, backend=backend,
                               device=device, address=address, epochs=epochs, out=out,
                               progress=display, vectorize=vectorize, schedules=families,
                               fresh=fresh, task_options=options)  # fmt: skip
        except (ValueError, StudyFailed) as exc:  # no trustworthy answer: one line, exit 2, the store kept
            bad_input(str(exc).splitlines()[0])
        except RuntimeError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(code=1) from None

    from lrlab.study.summary import code_snippets

    torch_code, keras_code = code_snippets(result)
    _print_summary(result)
    console.print(Panel(Syntax(torch_code, "python", word_wrap=True), title="PyTorch"))
    console.print(Panel(Syntax(keras_code, "python", word_wrap=True), title="Keras"))
    files = result.files
    assert files is not None
    console.print(
        f"wrote {escape(str(files.report))}, {len(files.figures)} figures in "
        f"{escape(str(out / 'figures'))} and {escape(str(files.recommendation))}; "
        f"runs in {escape(str(db))} (sweeps {escape(', '.join(result.sweeps))})",
        highlight=False,
    )


def _split_optimizers(text: str) -> list[str]:
    """Split on commas outside parentheses: ``sgd(momentum=0.9, nesterov=true),adam``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _print_summary(result: Any) -> None:
    from lrlab.study.plan import BUDGETS, factor_label
    from lrlab.study.run import anchor_lr
    from lrlab.study.summary import column_name

    verdict = result.verdict
    table = Table(
        title=f"Study {escape(verdict.name)}: {verdict.compute.runs} runs, {verdict.epochs} epochs each",
        caption="mean ± sd over the seeds that finished; finalists first, and in each part a configuration "
        "with a diverged seed after those without",
    )
    for column in ("optimizer", "schedule", "peak lr", column_name(verdict.metric) + " ± sd", "accuracy"):
        table.add_column(column)
    for row in verdict.leaderboard[:12]:
        table.add_row(
            escape(row.optimizer),
            escape(row.schedule),
            num(row.peak_lr, 3),
            num(row.score) + (f" ± {num(row.sd, 2)}" if row.seeds > 1 else " (1 seed)")
            + (f" ({row.diverged} diverged)" if row.diverged else ""),
            pct(row.accuracy),
        )
    console.print(table)
    _print_optima(verdict)
    factors = BUDGETS[result.budget].lr_factors
    for name, finder in result.finders.items():
        anchor = anchor_lr(finder)
        trained = ", ".join(f"{anchor * f:.3g}" for f in factors)
        console.print(
            f"range test {escape(name)}: recommends lr {finder.lr:.3g} ({escape(str(finder.config.get('rule')))}); "
            f"study LRs {trained} ({', '.join(factor_label(f) for f in factors)} the recommendation); "
            f"cyclic bounds {num(finder.base_lr)}-{num(finder.max_lr)}",
            highlight=False,
        )
        note = _optimizer_note(name)
        if note:
            console.print(f"  {escape(note)}", highlight=False)
    for name, grid in result.grids.items():
        if name not in result.finders:  # a task without a range test
            console.print(escape(grid.words()), highlight=False)
    from lrlab.study.summary import lr_free_family, no_range_test_line

    for name in result.lr_free.steps if result.lr_free is not None else ():
        if lr_free_family(name) == "estimator":
            console.print(escape(no_range_test_line(name, result.total_steps)), highlight=False)
    finalists, seeds = verdict.compute.finalists, verdict.compute.seeds
    contenders = result.extras.get("contenders") or 0
    if finalists:
        console.print(
            f"successive halving: every configuration trained with seed {seeds[0]}; the best {finalists - contenders}"
            + (f" and {contenders} LR-free contender(s) (the best configuration of an LR-free optimizer that "
               "missed the cut)" if contenders else "")
            + f" also with seeds {', '.join(str(s) for s in seeds[1:])} (same batches and initial weights per seed), "
            "ranked by their mean",
            highlight=False,
        )
    console.print(Panel("\n".join(escape(line) for line in verdict.lines), title="Recommendation"))


def failed_line(runs: Any) -> str | None:
    """How many runs failed and why, in one line (:func:`lrlab.study.summary.failed_line`,
    the line the study's verdict and ``tune`` print)."""
    from lrlab.study.summary import failed_line as line

    return line(runs)


def _print_optima(verdict: Any) -> None:
    """Each optimizer x family's optimum peak LR as an interval (the recommendation's first)."""
    from lrlab.report.optima import optimum_words

    if not verdict.optima:
        return
    level = f"{verdict.optima[0].level:.0%}"
    table = Table(
        title=f"Optimum peak LR per family ({level} interval)",
        caption="a fit in log LR over the LRs tried (two half-parabolas over five, a parabola over three): over every seed for the recommendation's family "
        "(bootstrapped), over one seed for the others (the interval is the grid's resolution)",
    )
    for column in ("optimizer", "schedule", "optimum (interval)", "seeds", "LRs tried"):
        table.add_column(column)
    for o in verdict.optima:
        table.add_row(
            escape(o.optimizer), escape(o.schedule) + (" (recommended)" if o.recommended else ""),
            escape(optimum_words(o)), str(o.seeds), f"{len(o.tried)} ({o.extra} added)" if o.extra else str(len(o.tried)),
        )  # fmt: skip
    console.print(table)


def _optimizer_note(spec: str) -> str | None:
    """The finder's word on an optimizer its rule was neither fitted nor checked on."""
    from lrlab.finder.suggest import optimizer_note
    from lrlab.optim.grammar import OPTIMIZER_CLASSES, parse_optimizer

    try:
        return optimizer_note(OPTIMIZER_CLASSES[parse_optimizer(spec)[0]].__name__)
    except (KeyError, ValueError):
        return None
