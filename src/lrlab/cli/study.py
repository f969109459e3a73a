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

from lrlab.cli._common import bad_input, console, err_console
from lrlab.cli.app import app

EXAMPLES = """

Examples:

  lrlab study

  lrlab study --task digits-cnn --budget medium --optimizers sgdm,adam --out cnn-study

  lrlab study --task chars-transformer --optimizers adam,adamw --jobs 2

  lrlab study --task my_tasks.py:make_task --backend ray --address auto

Re-running the same study skips what is finished (range tests and runs are in the store).
"""


class _Display:
    """A rich progress display of the phases and runs on a terminal; plain lines otherwise."""

    def __init__(self, live: bool, quiet: bool) -> None:
        self.live, self.quiet = live and not quiet, quiet
        self.done = self.total = 0
        self.started = time.monotonic()
        self.phase = "starting"
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("runs"), TimeElapsedColumn(), console=err_console,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task(self.phase, total=None)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text, completed=self.done, total=self.total or None)
        elif not self.quiet:
            err_console.print(
                f"[{time.monotonic() - self.started:5.0f}s] {text}", highlight=False, markup=False
            )

    def __call__(self, event: Any) -> None:
        from lrlab.experiments.loop import RunProgress
        from lrlab.experiments.sweep import SweepProgress
        from lrlab.study import StudyEvent

        if isinstance(event, StudyEvent):
            self.phase = {"finder": "range test", "sweep": "sweep", "done": "report"}[event.phase]
            what = "" if event.phase == "done" else f" {event.detail} ({event.index + 1}/{event.total})"
            self._say(f"{self.phase}{what}")
        elif isinstance(event, SweepProgress) and event.event == "start":
            self.total += event.total
            self.done += event.skipped
            self._say(f"{self.phase}: {event.sweep}")
        elif isinstance(event, RunProgress) and event.event == "end":
            self.done += 1
            if self._progress is not None:
                self._progress.update(self._task, completed=self.done, total=self.total or None)
            elif not self.quiet:
                self._say(f"run {self.done}/{self.total} {event.status}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


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
    budget: str = typer.Option("small", "--budget", "-b", help="small, medium or large."),
    optimizers: str = typer.Option(
        "sgd,sgdm,adam",
        "--optimizers",
        help="Comma-separated: sgd, sgdm, nesterov, adam, adamw, rmsprop, adagrad, or optimizer specs.",
    ),
    out: Path = typer.Option(
        Path("lrlab-study"), "--out", "-o", help="Folder for report.html, figures and recommendation.md."
    ),
    db: Path = typer.Option(Path("lrlab-runs") / "lrlab.db", "--db", help="The run store (SQLite file)."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Runs trained at once."),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epochs per run (default: from the budget and the task)."
    ),
    backend: str = typer.Option("local", "--backend", help="local or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --backend ray)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    from lrlab.study.plan import BUDGETS

    if budget not in BUDGETS:
        bad_input(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if jobs < 1:
        bad_input(f"--jobs must be >= 1, got {jobs}")
    if epochs is not None and epochs < 1:
        bad_input(f"--epochs must be >= 1, got {epochs}")
    if backend not in ("local", "ray"):
        bad_input(f"--backend must be local or ray, got {backend!r}")
    names = [o.strip() for o in _split_optimizers(optimizers) if o.strip()]
    if not names:
        bad_input("--optimizers must name at least one optimizer, e.g. sgd,sgdm,adam")
    if out.exists() and not out.is_dir():
        bad_input(f"--out must be a folder, got the file {str(out)!r}")

    from lrlab.experiments.store import Store
    from lrlab.experiments.tasks import get_task
    from lrlab.study import keras_snippet, run_study, torch_snippet
    from lrlab.study.plan import resolve_optimizer

    try:
        get_task(task)
        from lrlab.experiments.optimizers import parse_optimizer

        for name in names:
            parse_optimizer(resolve_optimizer(name))
    except ValueError as exc:
        bad_input(str(exc).splitlines()[0])
    store = Store(db)
    with _Display(live=sys.stderr.isatty(), quiet=quiet) as display:
        try:
            result = run_study(task, store, budget=budget, optimizers=names, jobs=jobs, backend=backend,
                               device=device, address=address, epochs=epochs, progress=display)  # fmt: skip
        except ValueError as exc:
            bad_input(str(exc).splitlines()[0])
        except RuntimeError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(code=1) from None

    from lrlab.report import load_report_data, write_report

    out.mkdir(parents=True, exist_ok=True)
    data = load_report_data(store, run_ids=[r.id for r in result.runs])
    files = write_report(data, out / "report.html", image_dir=out / "figures")
    rec = result.recommendation
    best = rec.best
    torch_code = torch_snippet(best.optimizer, best.schedule)
    keras_code = keras_snippet(best.optimizer, best.schedule)
    _print_summary(result)
    console.print(Panel(Syntax(torch_code, "python", word_wrap=True), title="PyTorch"))
    console.print(Panel(Syntax(keras_code, "python", word_wrap=True), title="Keras"))
    (out / "recommendation.md").write_text(_markdown(result, torch_code, keras_code), encoding="utf-8")
    console.print(
        f"wrote {escape(str(out / 'report.html'))}, {len(files.images)} figures in "
        f"{escape(str(out / 'figures'))} and {escape(str(out / 'recommendation.md'))}; "
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


def _peak(spec: str, total_steps: int) -> float:
    from lrlab.schedules import parse
    from lrlab.schedules.summary import key_points

    return key_points(parse(spec), total_steps).peak


def _verdict_lines(result: Any) -> list[str]:
    rec = result.recommendation
    best = rec.best
    what = "validation error" if rec.metric == "val_error" else "validation loss (nats)"
    lines = [
        f"Recommended: {best.optimizer} with {best.schedule_name} peaking at lr={_peak(best.schedule, result.total_steps):.4g}: "
        f"{best.schedule}",
        f"final {what} {_num(best.score)}"
        + (f" (accuracy {_pct(best.accuracy)})" if best.accuracy is not None else "")
        + f", mean of {best.seeds} seed(s)",
    ]
    if rec.runner_up is not None:
        up = rec.runner_up
        if rec.margin_over_runner_up == 0 and best.val_loss is not None and up.val_loss is not None:
            lines.append(
                f"ties with the runner-up ({up.optimizer}, {up.schedule_name}) on {what}; chosen for its "
                f"lower validation loss ({_num(best.val_loss)} vs {_num(up.val_loss)})"
            )
        else:
            lines.append(
                f"margin over the runner-up ({up.optimizer}, {up.schedule_name}): {_num(rec.margin_over_runner_up)}"
            )
    if rec.best_constant is not None:
        c = rec.best_constant
        lines.append(
            f"margin over the best constant LR ({c.optimizer}, lr={c.lr:.4g}): {_num(rec.margin_over_constant)}"
        )
    if rec.diverged:
        lines.append(f"{rec.diverged} run(s) diverged")
    return lines


def _print_summary(result: Any) -> None:
    rec = result.recommendation
    table = Table(title=f"Study {escape(result.name)}: {len(result.runs)} runs, {result.epochs} epochs each")
    for column in (
        "optimizer",
        "schedule",
        "peak lr",
        "val error" if rec.metric == "val_error" else "val loss",
        "accuracy",
    ):
        table.add_column(column)
    for cand in rec.candidates[:12]:
        peak = _peak(cand.schedule, result.total_steps)
        table.add_row(
            escape(cand.optimizer),
            escape(cand.schedule_name),
            f"{peak:.3g}",
            _num(cand.score),
            _pct(cand.accuracy),
        )
    console.print(table)
    from lrlab.study.plan import BUDGETS
    from lrlab.study.run import ANCHOR_RULE, anchor_lr

    factors = BUDGETS[result.budget].lr_factors
    for name, finder in result.finders.items():
        anchor = anchor_lr(finder)
        console.print(
            f"range test {escape(name)}: recommends lr {finder.lr:.3g} ({escape(str(finder.config.get('rule')))}); "
            f"study LRs {', '.join(f'{anchor * f:.3g}' for f in factors)} "
            f"(x{', x'.join(f'{f:g}' for f in factors)} {ANCHOR_RULE}); "
            f"cyclic bounds {_num(finder.base_lr)}-{_num(finder.max_lr)}",
            highlight=False,
        )
    console.print(Panel("\n".join(escape(line) for line in _verdict_lines(result)), title="Recommendation"))


def _markdown(result: Any, torch_code: str, keras_code: str) -> str:
    rec = result.recommendation
    rows = "\n".join(
        f"| {c.optimizer} | {c.schedule_name} | {_peak(c.schedule, result.total_steps):.4g} | {_num(c.score)} "
        f"| {_pct(c.accuracy)} | `{c.schedule}` |"
        for c in rec.candidates
    )
    metric = "val error" if rec.metric == "val_error" else "val loss"
    verdict = "\n".join(f"- {line}" for line in _verdict_lines(result))
    return (
        f"# Study {result.name}\n\nTask `{result.task}`, budget `{result.budget}`, {result.epochs} epochs "
        f"({result.total_steps} steps) per run, {len(result.runs)} runs.\n\n## Recommendation\n\n{verdict}\n\n"
        f"## PyTorch\n\n```python\n{torch_code}```\n\n## Keras\n\n```python\n{keras_code}```\n\n"
        f"## All configurations\n\n| optimizer | schedule | peak lr | {metric} | accuracy | spec |\n|---|---|---|---|---|---|\n"
        f"{rows}\n\nThe figures are in `report.html` and `figures/`.\n"
    )
