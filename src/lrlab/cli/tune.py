"""``lrlab tune``: search a schedule space with Optuna (or train a PBT population)."""

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
from lrlab.formatting import num

EXAMPLES = """

Examples:

  lrlab tune examples/tune-digits.toml

  lrlab tune examples/tune-digits.toml --resume

  lrlab tune examples/tune-chars.toml --backend ray --jobs 2 --out chars-tune

  lrlab tune examples/tune-digits.toml --storage postgresql://user@host/optuna --backend ray --address auto

  lrlab tune examples/tune-pbt.toml

  lrlab tune examples/tune-sunspots.toml --task-option cell=gru

  lrlab tune my-tune.toml --train my_loop.py:train

After Ctrl-C or a killed process, the same command with --resume continues: finished trials
are kept, the trial in flight is trained again, none twice.
"""


class _Display:
    """A rich progress bar over the trial budget (done, pruned, best so far, ETA) on a
    terminal; plain lines otherwise; nothing with --quiet."""

    def __init__(self, live: bool, quiet: bool) -> None:
        self.live, self.quiet = live and not quiet, quiet
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                TextColumn("ETA"), TimeRemainingColumn(), console=err_console,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _say(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text, completed=done, total=total)
        elif not self.quiet:
            err_console.print(f"[{time.monotonic() - self.started:5.0f}s] {text}", highlight=False, markup=False)

    def __call__(self, event: Any) -> None:
        from lrlab.tune.engine import TuneEvent
        from lrlab.tune.pbt import PbtEvent

        if isinstance(event, TuneEvent):
            state = f"{event.done}/{event.total} done, {event.pruned} pruned, best {num(event.best)}"
            if event.event == "finder":
                self._say(f"range test {safe(event.detail)}")
            elif event.event in ("start", "trial"):
                last = "" if event.event == "start" else f" (trial {event.number} {event.state} {num(event.value)})"
                if self._progress is not None:
                    self._say(f"{event.pruned} pruned, best {num(event.best)}{last}", event.done, event.total)
                else:
                    self._say(state + last)
            elif event.event == "audit":
                self._say(f"audit: pruned trial {event.number} trained to full length")
            elif event.event == "skipped":
                self._say(safe(event.detail))
        elif isinstance(event, PbtEvent):
            if event.event == "exploit":
                self._say(f"PBT step {event.step}/{event.total_steps}: best {num(event.best)}, "
                          f"{len(event.copies)} member(s) replaced", event.step, event.total_steps)  # fmt: skip
            else:
                self._say("PBT: replaying the winner's lineage as an lrlab run")


@app.command(
    help="Search a schedule space with Optuna: every trial an ordinary lrlab run in the store, weak "
    "trials pruned from their per-epoch validation metric, the best schedule reported with code to paste; "
    "or population-based training of the LR (method = \"pbt\"). See docs/tune.md for the file format."
    + EXAMPLES
)
def tune(
    file: Path = typer.Argument(..., help="The tune file (TOML)."),
    db: Path = db_option(),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for tune.html, runs.html, figures and recommendation.md "
        "(default: lrlab-tune-NAME)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue a tune that was stopped."),
    storage: str | None = typer.Option(
        None, "--storage", help="Optuna storage: sqlite:///FILE, postgresql://..., mysql://..., journal:FILE "
        "(default: the file's, else optuna.db beside --db)."
    ),
    backend: str = typer.Option("local", "--backend", help="local or ray."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Trials trained at once (with --backend ray)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (with --backend ray)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    train: str | None = typer.Option(
        None,
        "--train",
        help="A training function declared with @lrlab.trainable, 'file.py:function': "
        "tuned in place of the file's task (the file may then leave out task).",
    ),
    task_option: list[str] | None = task_option_flag(),
) -> None:
    _check_backend(backend, jobs, address)
    spec = _with_task_options(_load(file, train), task_options(task_option))
    # Every option is checked before the task is built, a storage opened or the store made.
    if spec.method == "pbt" and (backend != "local" or resume or storage):
        bad_input("method = \"pbt\" trains in one process: no --backend ray, --resume or --storage")
    out = out or Path(f"lrlab-tune-{spec.name}")
    _check_options(out, device, backend)
    _ready(spec, storage)
    store = open_store(db)
    with _Display(live=sys.stderr.isatty(), quiet=quiet) as display:
        try:
            if spec.method == "pbt":
                from lrlab.tune.pbt import run_pbt

                pbt = run_pbt(spec, store, device=device, progress=display)
            else:
                from lrlab.tune import tune as run_tune

                result = run_tune(spec, store, resume=resume, backend=backend, jobs=jobs, address=address,
                                  device=device, storage=storage, out=out, progress=display)  # fmt: skip
        except ValueError as exc:
            bad_input(str(exc).splitlines()[0])
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            err_console.print(f"[bold red]error:[/] {escape(safe(first))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
    if spec.method == "pbt":
        _print_pbt(pbt, db)
        return
    _print_result(result, db)


def _check_backend(backend: str, jobs: int, address: str | None) -> None:
    if backend not in ("local", "ray"):
        bad_input(f"--backend must be local or ray, got {backend!r}")
    if jobs < 1:
        bad_input(f"--jobs must be >= 1, got {jobs}")
    if jobs > 1 and backend != "ray":
        bad_input("--jobs above 1 needs --backend ray (a local tune trains one trial at a time)")
    if address is not None and backend != "ray":
        bad_input("--address needs --backend ray")


def _load(file: Path, train: str | None = None) -> Any:  # -> TuneSpec
    """The tune file, validated (its task replaced by ``--train``'s function); bad input
    (exit 2) otherwise."""
    from lrlab.sweeps.spec import read_toml
    from lrlab.tune.spec import TuneSpecError, load_tune

    try:
        if train is None:
            return load_tune(file)
        data, _ = read_toml(file, "tune", TuneSpecError)
        _check_train(train)
        return load_tune({**data, "task": train})
    except (TuneSpecError, ValueError) as exc:
        bad_input(str(exc).splitlines()[0])


def _check_train(train: str) -> None:
    """``--train`` names a function declared with ``@lrlab.trainable`` (``ValueError`` otherwise)."""
    from lrlab.training.tasks import get_task
    from lrlab.training.trial_task import is_trainable

    try:
        trainable = ":" in train and is_trainable(get_task(train))
    except ValueError as exc:
        raise ValueError(f"--train wants a function declared with @lrlab.trainable ('file.py:function'): {exc}") from None
    if not trainable:
        raise ValueError(f"--train wants a function declared with @lrlab.trainable ('file.py:function'), got "
                         f"{train!r}; a task function goes in the file's task (or --task of lrlab study)")  # fmt: skip


def _with_task_options(spec: Any, options: dict[str, Any]) -> Any:
    """The tune file's spec with ``--task-option`` values over its ``task_options``, under its own
    name (``NAME-hidden-64``): a variant of the task never resumes into, or mixes with, the
    trials of another (the tune's fingerprint and each run's config carry the options too)."""
    if not options:
        return spec
    from lrlab.training.tasks.options import options_label

    merged = {**spec.task_options, **options}
    variant = spec.model_copy(
        update={"name": f"{spec.name}-{options_label(options)}", "task_options": merged}
    )
    variant._raw = {**spec.raw, "name": variant.name, "task_options": merged}  # what the fingerprint reads
    return variant


def _check_options(out: Path, device: str, backend: str) -> None:
    """--out (a folder that can be made and written) and --device (one torch has)."""
    from lrlab.tune.engine import check_folder
    from lrlab.tune.tuner import check_device

    try:
        check_folder(out, "--out")
        check_device(device, backend)
    except ValueError as exc:
        bad_input(str(exc).splitlines()[0])


def _ready(spec: Any, storage: str | None) -> None:
    """The task built once, the space checked against its runs' numbers and the Optuna
    storage opened once, so that a bad one is bad input (exit 2) before anything is trained."""
    try:
        from lrlab.training.tasks import get_task
        from lrlab.tune.tuner import run_numbers

        try:
            task = get_task(spec.task, **spec.task_options)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        except Exception as exc:  # the task's own code raised
            raise ValueError(f"task {spec.task!r} could not be built: {type(exc).__name__}: {exc}") from None
        run_numbers(spec, task)
        if storage is not None or spec.storage is not None:
            from lrlab.tune.storage import open_storage

            open_storage(storage or spec.storage or "")
    except ValueError as exc:
        bad_input(str(exc).splitlines()[0])


def _print_result(result: Any, db: Path) -> None:
    from lrlab.tune.report import code, verdict_lines

    table = Table(title=f"Tune {escape(result.name)}: {len(result.trials)} trials, best first")
    for column in ("trial", "state", "score", "optimizer", "schedule"):
        table.add_column(column)
    key = (lambda t: -t.value) if result.direction == "maximize" else (lambda t: t.value)
    scored = sorted((t for t in result.trials if t.value is not None), key=key)
    for t in scored[:10]:
        table.add_row(str(t.number), t.state, num(t.value), escape(t.optimizer), escape(t.schedule))
    console.print(table)
    console.print(Panel("\n".join(escape(line) for line in verdict_lines(result)), title="Recommendation"))
    from lrlab.study.summary import failed_line

    pruned = {rid for t in result.trials if t.state == "pruned" for rid in t.run_ids}
    failed = failed_line([r for r in result.runs if r.id not in pruned])
    if failed:
        console.print(escape(failed), highlight=False)
    torch_code, keras_code = code(result)
    console.print(Panel(Syntax(torch_code, "python", word_wrap=True), title="PyTorch"))
    console.print(Panel(Syntax(keras_code, "python", word_wrap=True), title="Keras"))
    files = result.files
    if files is not None:
        console.print(f"wrote {escape(str(files.page))}, {escape(str(files.runs))}, {len(files.figures)} figures "
                      f"and {escape(str(files.recommendation))}; runs in {escape(str(db))} (sweep "
                      f"{escape(result.name)}), trials in {escape(result.storage)}", highlight=False)  # fmt: skip


def _print_pbt(result: Any, db: Path) -> None:
    from lrlab.study.codegen import torch_snippet

    lines = [
        f"winner: member {result.winner} of {len(result.scores)}, {result.metric} {num(result.winner_score)}",
        f"its lineage as a schedule: {result.schedule}",
        f"replayed as run {result.replay.id}: {result.metric} {num(result.replay_score)}; same LR at every step: "
        f"{'yes' if result.replay_exact else 'NO'}",
        f"compute: {result.compute_steps} optimizer steps",
    ]
    console.print(Panel("\n".join(escape(line) for line in lines), title="Population-based training"))
    console.print(Panel(Syntax(torch_snippet(result.optimizer, str(result.schedule), study_steps=result.total_steps), "python", word_wrap=True),
                        title="PyTorch"))  # fmt: skip
    console.print(f"runs in {escape(str(db))} (sweep {escape(result.name)})", highlight=False)
