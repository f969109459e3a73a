"""``lrlab surface``: optimizer trajectories on 2-D error surfaces."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from lrlab.cli._common import bad_input, console, err_console, safe
from lrlab.cli.app import app
from lrlab.cli.schedule import schedule_arg
from lrlab.formatting import num

if TYPE_CHECKING:
    from lrlab.schedules import Schedule
    from lrlab.surfaces import Surface

EXAMPLES = """

Examples:

  lrlab surface --list

  lrlab surface ravine --opt "sgd(lr=0.25)" --opt "sgd(lr=0.05, momentum=0.9)" --opt "nesterov(lr=0.05)" --opt "adam(lr=0.1)" --steps 300 --out ravine.png

  lrlab surface rosenbrock --opt "adam(lr=0.05)" --opt "rmsprop(lr=0.01)" --schedule "cosine(lr=1.0, total_steps=500)" --steps 500 --out rosen.html

  lrlab surface valley --opt "rmsprop(lr=0.2)" --schedule none --opt "rmsprop(lr=0.2)" --schedule "exponential(lr=1.0, decay_rate=0.99)" --steps 300 --json

  lrlab surface --scenario ravine-story --out ravine-story.gif

Optimizers are written name(key=value, ...), as everywhere in lrlab, with their own lr:
any torch.optim name (sgd, adam, adamw, adagrad, rmsprop, rprop, adadelta, nadam, radam,
adamax, asgd, lbfgs, adafactor), deltabardelta (lrlab.optim.DeltaBarDelta), adagradmean
(lrlab.optim.AdaGradMean, the lecture's AdaGrad) and the aliases gd, sgdm/momentum,
nesterov/nag, dbd; lists as betas=[0.9, 0.99]. --schedule is given once for every
optimizer or once per --opt, in order (none: a constant lr). A schedule gives the shape:
scaled so that its peak equals the optimizer's lr, or as written when the spec has no lr.
"""




def _parse_start(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        bad_input(f"--start must be two numbers 'x,y', got {text!r}")
    if not (math.isfinite(x) and math.isfinite(y)):
        bad_input(f"--start must be finite, got {text!r}")
    return (x, y)


def _schedules(texts: list[str], count: int) -> list[Schedule | None]:
    """One schedule (or None) per optimizer: one --schedule for all, or one per --opt."""
    if len(texts) not in (0, 1, count):
        bad_input(f"give --schedule once for every optimizer or once per --opt ({count}), got {len(texts)}")
    chosen: list[Schedule | None] = []
    for text in texts:
        if text.strip().lower() == "none":
            chosen.append(None)
            continue
        chosen.append(schedule_arg(text))
    return chosen * count if len(chosen) == 1 else chosen or [None] * count


def _reject_old_form(text: str) -> None:
    """The old surface syntax ``name:key=value,...[@schedule]`` -> one line with the new form."""
    head, at, schedule = text.strip().partition("@")
    name, colon, args = head.partition(":")
    if not (at or colon):
        return
    items = []
    for item in _split_top_level(args):
        key, _, value = (part.strip() for part in item.partition("="))
        if key == "lr" and at:
            continue  # the old schedule was used as written, as it is for a spec without lr
        items.append(f"{key}={_new_value(value)}")
    new = f"{name.strip()}({', '.join(items)})" if items else name.strip()
    suggestion = f'--opt "{new}"' + (f' --schedule "{schedule.strip()}"' if at else "")
    bad_input(f"--opt {text!r} uses the old form; write {suggestion}")


def _split_top_level(args: str) -> list[str]:
    items, depth, current = [], 0, []
    for char in args:
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _new_value(value: str) -> str:
    if value[:1] in "([" and value[-1:] in ")]":
        return "[" + ", ".join(_new_value(v) for v in _split_top_level(value[1:-1])) + "]"
    return {"none": "None", "true": "true", "false": "false"}.get(value.lower(), value)


def _list_everything() -> None:
    from lrlab.surfaces import OPTIMIZER_NAMES, SCENARIOS, SURFACES

    table = Table(title="Built-in surfaces")
    for column in ("name", "minimum", "start", "description"):
        table.add_column(column, overflow="fold")
    for surf in SURFACES.values():
        minima = ", ".join(f"({x:g}, {y:g})" for x, y in surf.minima)
        table.add_row(
            surf.name,
            f"{surf.min_value:g} at {minima}",
            f"({surf.start[0]:g}, {surf.start[1]:g})",
            surf.description,
        )
    console.print(table)
    console.print("optimizers: " + ", ".join(OPTIMIZER_NAMES))
    console.print("scenarios: " + ", ".join(f"{s.name} ({s.story})" for s in SCENARIOS.values()))


def _table(trajectories: list, title: str) -> Table:  # type: ignore[type-arg]
    table = Table(title=title)
    table.add_column("optimizer", overflow="fold", ratio=1)
    for column in ("to tol", "final loss", "distance", "diverged", "flips", "max step"):
        table.add_column(column, no_wrap=True, justify="right")
    for traj in trajectories:
        row = traj.summary()
        diverged = f"at {row['diverged_step']}" if row["diverged"] else "no"
        table.add_row(
            traj.name,
            "never" if row["steps_to_tol"] is None else str(row["steps_to_tol"]),
            num(row["final_loss"], 3),
            num(row["distance"], 3),
            diverged,
            str(row["oscillations"]),
            num(row["max_step"], 3),
        )
    return table


def _write(trajectories: list, out: Path, title: str, frames: int) -> None:  # type: ignore[type-arg]
    from lrlab.surfaces.drawing import write_surface_figure

    write_surface_figure(trajectories, out, title=title, max_frames=frames)


def _check_out(out: Path | None) -> None:
    from lrlab.surfaces.drawing import FIGURE_SUFFIXES

    if out is not None and out.suffix.lower() not in FIGURE_SUFFIXES:
        bad_input(f"--out must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")


def _run_scenario(name: str, out: Path | None, as_json: bool, frames: int) -> None:
    from lrlab.surfaces import SCENARIOS, run_scenario

    if name not in SCENARIOS:
        bad_input(f"unknown scenario {name!r}; valid scenarios: {', '.join(SCENARIOS)}")
    result = run_scenario(name)
    if out is not None:
        _write(result.trajectories, out, f"{name}: {result.scenario.surface}", frames)
    if as_json:
        payload = {
            "scenario": name,
            "story": result.scenario.story,
            "trajectories": [t.summary() for t in result.trajectories],
            "findings": [
                {"claim": f.claim, "holds": f.holds, "evidence": f.evidence} for f in result.findings
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        console.print(
            _table(result.trajectories, f"{name} on {result.scenario.surface}, {result.scenario.steps} steps")
        )
        for finding in result.findings:
            mark = "[green]✓[/]" if finding.holds else "[red]✗[/]"
            console.print(f"{mark} {escape(finding.claim)}: {escape(finding.evidence)}", highlight=False)
        if out is not None:
            console.print(f"wrote {escape(safe(out))}", highlight=False)
    if not all(f.holds for f in result.findings):
        raise typer.Exit(code=1)


MAX_STEPS = 100_000  # about a minute per trajectory; more is a typo


def _checked_surface(name: str | None, opt: list[str], steps: int, tol: float) -> Surface:
    """The surface named, once the optimizers, steps and tolerance are checked (exit 2 if not)."""
    from lrlab.surfaces import get_surface

    if name is None:
        bad_input("give a surface name (see 'lrlab surface --list') or --scenario")
    try:
        surf = get_surface(name)
    except ValueError as exc:
        bad_input(str(exc))
    if not opt:
        bad_input('no optimizer given: add --opt SPEC, e.g. --opt "sgd(lr=0.01)"')
    for text in opt:
        _reject_old_form(text)
    if not 1 <= steps <= MAX_STEPS:
        bad_input(f"--steps must be from 1 to {MAX_STEPS:,}, got {steps}")
    if not (tol >= 0 and math.isfinite(tol)):
        bad_input(f"--tol must be a finite number >= 0, got {tol}")
    return surf


@app.command(help="Optimizer trajectories on 2-D error surfaces: contour map, animation, table." + EXAMPLES)
def surface(
    name: str | None = typer.Argument(
        None, help="Built-in surface: ravine, valley, rosenbrock, beale, saddle, rastrigin."
    ),
    opt: list[str] = typer.Option(
        [],
        "--opt",
        "-O",
        help='Optimizer spec such as "sgd(lr=0.05, momentum=0.9)"; repeatable.',
    ),
    schedule: list[str] = typer.Option(
        [],
        "--schedule",
        "-s",
        help="lrlab schedule spec: once for every optimizer, or once per --opt in order (none: constant).",
    ),
    steps: int = typer.Option(200, "--steps", "-n", help="Optimizer steps per trajectory."),
    start: str | None = typer.Option(None, "--start", help="Start point 'x,y' (default: the surface's)."),
    tol: float = typer.Option(1e-3, "--tol", help="Arrival: loss within tol of the minimum."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Figure: .png/.svg (contours), .gif (animation), .html (slider)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of a table."),
    list_all: bool = typer.Option(False, "--list", help="List surfaces, optimizers and scenarios."),
    scenario: str | None = typer.Option(
        None, "--scenario", help="Run a built-in story: ravine-story, valley-story."
    ),
    frames: int = typer.Option(60, "--frames", help="Frames of a GIF / slider positions of an HTML page."),
) -> None:
    if list_all:
        _list_everything()
        return
    _check_out(out)
    if frames < 2:
        bad_input(f"--frames must be >= 2, got {frames}")
    if scenario is not None:
        _run_scenario(scenario, out, as_json, frames)
        return
    from lrlab.surfaces import run_trajectory

    surf = _checked_surface(name, opt, steps, tol)
    begin = _parse_start(start) if start is not None else None
    schedules = _schedules(schedule, len(opt))
    shared = schedules[0] if len(schedule) == 1 else None
    trajectories = []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Long trajectories take a while (about 0.6 ms a step): show where the command is.
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=steps < 5000,
    ) as bar:  # fmt: skip
        job = bar.add_task(f"trajectories of {steps:,} steps", total=len(opt))
        for text, chosen in zip(opt, schedules, strict=True):
            label = text.strip() if chosen is None or shared is not None else f"{text.strip()} + {chosen}"
            try:
                trajectories.append(
                    run_trajectory(surf, text, steps=steps, start=begin, schedule=chosen, tol=tol,
                                   name=label, scale_schedule=True)
                )  # fmt: skip
            except ValueError as exc:
                bad_input(str(exc))
            bar.advance(job)
    title = f"{surf.name}, {steps} steps" + (f", schedule {shared}" if shared is not None else "")
    if out is not None:
        _write(trajectories, out, title, frames)
    if as_json:
        typer.echo(json.dumps([t.summary() for t in trajectories], indent=2))
        return
    console.print(_table(trajectories, title))
    console.print(
        f"to tol: steps until loss - minimum <= {tol:g}; flips: sign changes of the across-valley step",
        style="dim",
    )
    if out is not None:
        console.print(f"wrote {escape(safe(out))}", highlight=False)
