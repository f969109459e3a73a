"""``lrlab sweep``: run a sweep file into the run store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from lrlab.cli._common import bad_input, console, db_option, err_console, open_store, safe
from lrlab.cli.app import app
from lrlab.core.records import RunConfig
from lrlab.formatting import num

if TYPE_CHECKING:
    from lrlab.sweeps import SweepSpec
    from lrlab.training.tasks import Task

EXAMPLES = """

Examples:

  lrlab sweep examples/digits-lr.toml --jobs 2

  lrlab sweep examples/chars-warmup.toml --device auto --db runs/chars.db

  lrlab sweep examples/digits-lr.toml --vectorize --max-group 16

  lrlab sweep examples/digits-lr.toml --backend ray --address auto --gpus-per-run 0.25

Re-running the same file skips finished runs and restarts interrupted ones.
"""


class _Display:
    """Rich live display on a terminal, plain lines otherwise, nothing with --quiet."""

    def __init__(self, labels: dict[str, str], live: bool, quiet: bool) -> None:
        self.labels = labels
        self.live = live and not quiet
        self.quiet = quiet
        self.total = 0
        self.done = 0
        self.current: dict[str, Any] = {}
        self.started = time.monotonic()
        self.finished_in_session = 0
        self._progress: Any = None
        self._task: Any = None
        self._live: Any = None

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def _start_live(self) -> None:
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=console,
        )  # fmt: skip
        self._task = self._progress.add_task("runs", total=self.total, completed=self.done)
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self._live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(box=None, show_header=bool(self.current), pad_edge=False)
        for column in ("run", "config", "epoch", "loss", "val loss"):
            table.add_column(column)
        for run_id, state in self.current.items():
            table.add_row(
                run_id[:8], escape(safe(self.labels.get(run_id, ""))), f"{state['epoch']}/{state['epochs']}",
                num(state.get("loss")), num(state.get("val_loss")),
            )  # fmt: skip
        return Group(self._progress, table)

    def __call__(self, event: Any) -> None:
        from lrlab.sweeps import SweepProgress
        from lrlab.training.recorder import RunProgress

        if isinstance(event, SweepProgress):
            if event.event == "start":
                self.total, self.done = event.total, event.skipped
                if self.live:
                    self._start_live()
                elif not self.quiet:
                    skipped = f" ({event.skipped} already finished)" if event.skipped else ""
                    console.print(f"sweep {safe(event.sweep)}: {event.total} runs{skipped}", highlight=False, markup=False)
            return
        if not isinstance(event, RunProgress):
            return
        if event.event == "end":
            self.current.pop(event.run_id, None)
            self.done += 1
            self.finished_in_session += 1
            if not self.live and not self.quiet:
                detail = f" ({event.error})" if event.error else ""
                console.print(
                    f"[{self.done}/{self.total}] {event.status:<8} {event.run_id[:8]} "
                    f"{self.labels.get(event.run_id, '')}{detail}{self._eta()}",
                    highlight=False, markup=False, soft_wrap=True,
                )  # fmt: skip
        else:
            state = self.current.setdefault(event.run_id, {"epoch": 0, "epochs": event.epochs})
            state["epoch"] = event.epoch
            if event.loss is not None:
                state["loss"] = event.loss
            if event.val_loss is not None:
                state["val_loss"] = event.val_loss
        if self._live is not None:
            self._progress.update(self._task, completed=self.done)
            self._live.update(self._render())

    def _eta(self) -> str:
        remaining = self.total - self.done
        if not remaining or not self.finished_in_session:
            return ""
        seconds = (time.monotonic() - self.started) / self.finished_in_session * remaining
        return f"  ETA {seconds / 60:.1f} min" if seconds >= 60 else f"  ETA {seconds:.0f} s"


def _check_options(jobs: int, max_group: int | None, backend: str, gpus_per_run: float, address: str | None) -> None:
    from lrlab.sweeps import BACKENDS

    if jobs < 1:
        bad_input(f"--jobs must be >= 1, got {jobs}")
    if max_group is not None and max_group < 1:
        bad_input(f"--max-group must be >= 1, got {max_group}")
    if backend not in BACKENDS:
        bad_input(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if gpus_per_run < 0:
        bad_input(f"--gpus-per-run must be >= 0, got {gpus_per_run}")
    if address is not None and backend != "ray":
        bad_input("--address needs --backend ray")


def _load(file: Path, backend: str, device: str) -> tuple[SweepSpec, Task, dict[str, str]]:
    """The sweep file, its task (built once: the labels and every run use it) and a label
    for each run; bad input in one line."""
    from lrlab.sweeps import SweepSpecError, build_task, expand, load_sweep
    from lrlab.training.resolve import resolve_device
    from lrlab.training.tasks import check_task

    try:
        if backend == "local":
            resolve_device(device)
        elif device not in ("cpu", "cuda", "auto") and not device.startswith("cuda:"):
            raise ValueError(f"device must be cpu, cuda or auto, got {device!r}")
        spec = load_sweep(file)
        task = build_task(spec)
        check_task(task, spec.task, spec.batch_size)  # a model that does not fit its data: one line, not N failed runs
        return spec, task, {plan.id: _label(plan.config) for plan in expand(spec, task)}
    except SweepSpecError as exc:
        bad_input(str(exc))
    except ValueError as exc:
        bad_input(str(exc))


def _label(config: RunConfig) -> str:
    return f"{config.optimizer} {config.schedule} lr={config.lr:g} seed={config.seed}"


@app.command(
    help="Run a sweep file (TOML): every grid combination and seed, recorded in the run store." + EXAMPLES
)
def sweep(
    file: Path = typer.Argument(..., help="Sweep file (TOML)."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", help="Runs trained at once (processes, or Ray tasks in flight)."
    ),
    backend: str = typer.Option("local", "--backend", help="local (processes) or ray."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (default: a local instance)."
    ),
    gpus_per_run: float = typer.Option(
        0.0, "--gpus-per-run", help="GPUs per run with --backend ray (fractions allowed)."
    ),
    db: Path = db_option(),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    vectorize: bool = typer.Option(
        False, "--vectorize", help="Train runs differing in lr/schedule/seed together."
    ),
    max_group: int | None = typer.Option(None, "--max-group", help="Most runs per vectorised group (32)."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Replace a stored sweep of this name trained on another model, data or task options."
    ),
) -> None:
    from lrlab.sweeps import run_sweep

    _check_options(jobs, max_group, backend, gpus_per_run, address)
    spec, task, labels = _load(file, backend, device)
    store = open_store(db)
    display = _Display(labels, live=console.is_terminal and sys.stdout.isatty(), quiet=quiet)
    try:
        with display:
            records = run_sweep(spec, store, jobs=jobs, backend=backend, progress=display, task=task,
                                device=device, address=address, gpus_per_run=gpus_per_run, vectorize=vectorize,
                                max_group=max_group, fresh=fresh)  # fmt: skip
    except KeyboardInterrupt:
        err_console.print("interrupted: runs in flight go back to the queue; run the same command to resume")
        raise typer.Exit(code=130) from None
    except ValueError as exc:
        bad_input(str(exc))
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status.value] = counts.get(record.status.value, 0) + 1
    if not quiet:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        console.print(f"sweep {safe(spec.name)}: {summary} -> {safe(db)}", highlight=False, markup=False)
    if counts.get("failed"):
        raise typer.Exit(code=1)
