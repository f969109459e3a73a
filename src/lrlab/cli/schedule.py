"""``lrlab schedule``: draw or tabulate one or several schedules."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from lrlab.cli._common import bad_input, console, safe
from lrlab.cli.app import app
from lrlab.formatting import num
from lrlab.schedules import Schedule, SpecError, parse
from lrlab.schedules.summary import key_points

EXAMPLES = """

Examples:

  lrlab schedule "cyclic(base_lr=0.001, max_lr=0.1, step_size=250, shape=\\"sine\\", cycle_decay=0.7)" --steps 2000

  lrlab schedule "cosine(lr=0.1, total_steps=1000)" "step_decay(lr=0.1, step_size=300, gamma=0.1)" --steps 1000 --out decay.png --log-y

  lrlab schedule "warmup(cosine(lr=0.0003, total_steps=9500), steps=500)" --steps 10000 --out warmup.html
"""


def schedule_arg(spec: str) -> Schedule:
    """A schedule given on the command line; bad input (exit 2) naming what is wrong."""
    try:
        return parse(spec)
    except SpecError as exc:
        bad_input(f"bad schedule spec: {exc.reason} at position {exc.position} in {exc.spec!r}")
    except ValueError as exc:
        bad_input(f"bad schedule spec {spec!r}: {exc}")


# The most steps evaluated: each schedule's LR at every step is one float64 array.
MAX_STEPS = 10_000_000


def _parse_all(specs: list[str]) -> list[Schedule]:
    return [schedule_arg(spec) for spec in specs]




@app.command(help="Draw or tabulate learning-rate schedules given as spec strings." + EXAMPLES)
def schedule(
    specs: list[str] = typer.Argument(
        ..., help="Schedule spec strings, e.g. 'cosine(lr=0.1, total_steps=1000)'."
    ),
    steps: int = typer.Option(1000, "--steps", "-n", help="Number of optimizer steps to evaluate."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write a figure: .png, .svg or .html."),
    log_y: bool = typer.Option(False, "--log-y", help="Logarithmic LR axis."),
) -> None:
    if steps < 1:
        bad_input(f"--steps must be >= 1, got {steps}")
    if steps > MAX_STEPS:
        bad_input(
            f"--steps must be between 1 and {MAX_STEPS:,} (every step is evaluated exactly, "
            f"{8 * MAX_STEPS // 10**6} MB per schedule at the most), got {steps:,}"
        )
    schedules = _parse_all(specs)
    if out is not None:
        from lrlab.files import check_out_path
        from lrlab.plot.schedules import FIGURE_SUFFIXES, write_schedule_figure

        if out.suffix.lower() not in FIGURE_SUFFIXES:
            bad_input(f"--out must end in one of {', '.join(FIGURE_SUFFIXES)}, got {safe(out.name)!r}")
        try:
            check_out_path(out)
        except ValueError as exc:
            bad_input(str(exc))
        write_schedule_figure(schedules, steps, out, log_y=log_y)
        console.print(f"wrote {safe(out)}", markup=False, highlight=False)
        return
    table = Table(title=f"Key points over {steps} steps")
    for column in ("schedule", "start", "peak (step)", "minimum (step)", "end", "peak / end"):
        table.add_column(column, overflow="fold")
    for _spec, sched in zip(specs, schedules):
        kp = key_points(sched, steps)
        table.add_row(
            escape(safe(sched)),
            num(kp.start),
            f"{num(kp.peak)} ({kp.peak_step})",
            f"{num(kp.minimum)} ({kp.minimum_step})",
            num(kp.end),
            "inf" if kp.decay_factor == float("inf") else f"{kp.decay_factor:.3g}x",
        )
    console.print(table)
