"""A tune's report: ``tune.html`` (the recommendation with code to paste, the pruning
audit, the trials, Optuna's optimisation history, parameter importances, parallel
coordinates and intermediate values, and the best schedule drawn; plotly, offline),
``figures/tune_*.png`` (matplotlib), ``recommendation.md``, and ``runs.html``, lrlab's
usual report of every trial's run.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from lrlab.files import atomic_path, write_text
from lrlab.formatting import num, pct
from lrlab.store.sqlite import Store
from lrlab.tune.parallel import knob_units, parallel_figure, parallel_plotly

__all__ = ["TuneFiles", "markdown", "verdict_lines", "write_outputs"]


@dataclass(frozen=True)
class TuneFiles:
    page: Path
    runs: Path
    figures: list[Path]
    recommendation: Path


def metric_name(metric: str) -> str:
    return {"val_error": "validation error", "val_loss": "validation loss"}.get(metric, metric)


def verdict_lines(result: Any) -> list[str]:
    """The recommendation in words: what to use, its score, the runner-up, the pruning audit."""
    from lrlab.study.summary import peak

    rec = result.recommendation
    best = rec.best
    what = metric_name(result.metric)
    trial = result.best
    lines = [
        f"Recommended: {best.optimizer} with {best.schedule} (trial {trial.number}, peak lr "
        f"{num(peak(best.schedule, result.total_steps))})",
        f"final {what} {num(best.score)}" + (f" (accuracy {pct(best.accuracy)})" if best.accuracy is not None else "")
        + f", mean of {best.seeds} seed(s)",
    ]  # fmt: skip
    if rec.runner_up is not None:
        up = rec.runner_up
        margin = rec.margin_over_runner_up
        lines.append(f"runner-up ({up.optimizer}, {up.schedule_name}) {num(up.score)}: margin {num(margin)}"
                     + (" (one seed each: run more seeds before calling it)" if best.seeds < 2 else ""))  # fmt: skip
    lines.append(f"pruning: {result.bias.sentence()}")
    lines.append(f"compute: {result.compute_steps} optimizer steps ({len(result.trials)} trials, range tests "
                 "and audits included)")  # fmt: skip
    return lines


def code(result: Any) -> tuple[str, str]:
    """PyTorch and Keras code for the tune's best configuration; for a trainable's tune, the
    optimizer and scheduler lines for its function and one line on why no Keras code."""
    from lrlab.study.codegen import TRAINABLE_ONLY, keras_snippet, torch_snippet, trainable_snippet
    from lrlab.study.summary import trainable_name

    best = result.recommendation.best
    # Step counts as fractions of the user's run, as the study's code: the tune's own step
    # counts would hold a one-cycle's last LR from the tune's length on.
    steps = result.total_steps
    fn = trainable_name(getattr(result, "runs", ()))
    if fn is not None:
        code = trainable_snippet(best.optimizer, str(best.schedule), trainable=fn, study_steps=steps)
        return code, TRAINABLE_ONLY
    return (torch_snippet(best.optimizer, str(best.schedule), study_steps=steps),
            keras_snippet(best.optimizer, str(best.schedule), study_steps=steps))  # fmt: skip


def markdown(result: Any) -> str:
    torch_code, keras_code = code(result)
    lines = [f"# Tune {result.name}: recommendation", ""]
    lines += [f"- {line}" for line in verdict_lines(result)]
    lines += ["", "## PyTorch", "", "```python", torch_code.rstrip(), "```", "", "## Keras", "", "```python",
              keras_code.rstrip(), "```", ""]  # fmt: skip
    return "\n".join(lines)


def _units(result: Any) -> dict[str, str]:
    """What each knob of the tune's space is drawn in (``x range test LR``, ``epochs``)."""
    space = getattr(result.spec, "space", None)
    return knob_units(space) if space is not None else {}


def _target(study: Any) -> str:
    """The tune's metric as the figures name it (``validation error``)."""
    return metric_name(study.user_attrs.get("metric", "score"))


def _figures(study: Any, units: Mapping[str, str] | None = None) -> list[tuple[str, str, Any]]:
    """Optuna's own figures (plotly), those the study has enough trials for."""
    import optuna.visualization as vis

    out = []
    named = {"target_name": _target(study)}  # the tune's metric, not Optuna's "Objective Value"
    makers = [
        ("history", "Optimisation history: every trial's score and the best so far",
         partial(vis.plot_optimization_history, **named)),
        ("importances", "Parameter importances (Optuna's fANOVA over the completed trials)",
         partial(vis.plot_param_importances, **named)),
        ("intermediate", "Validation metric per epoch of every trial (the pruner's view)",
         vis.plot_intermediate_values),
    ]  # fmt: skip
    for key, caption, make in makers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append((key, caption, make(study)))
        except Exception:  # too few trials for that figure: a missing figure never loses a tune
            continue
    before = [f for f in out if f[0] != "intermediate"]  # the parallel coordinates where Optuna's were
    return before + _parallel(study, units) + out[len(before) :]


PARALLEL_CAPTION = (
    "Parallel coordinates: each line a completed trial, coloured by its score (the best darkest), one "
    "figure per schedule family with only the knobs that family draws; drag along an axis to select a "
    "range, drag an axis's name to move it"
)


def _parallel(study: Any, units: Mapping[str, str] | None = None) -> list[tuple[str, str, Any]]:
    """lrlab's parallel coordinates for the page (see ``tune.parallel``), one figure per family
    (the caption above the first), or none before any trial completed."""
    maximize = getattr(study.direction, "name", "") == "MAXIMIZE"
    figures = parallel_plotly(study.get_trials(deepcopy=False), higher_is_better=maximize, units=units,
                              metric=metric_name(study.user_attrs.get("metric", "score")))  # fmt: skip
    return [
        (f"parallel-{i}" if i else "parallel", "" if i else PARALLEL_CAPTION, f)
        for i, f in enumerate(figures)
    ]


def _pngs(study: Any, out: Path, units: Mapping[str, str] | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    paths = []
    named = {"target_name": _target(study)}
    # Optuna's figures set the ggplot style for the whole process: kept inside this context, so
    # that the figures drawn after them (the recommended schedule) keep lrlab's own look
    with matplotlib.rc_context():
        for key, make in (
            ("history", partial(vis.plot_optimization_history, **named)),
            ("importances", partial(vis.plot_param_importances, **named)),
        ):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ax = make(study)
            except Exception:  # as above
                continue
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.set_size_inches(9, 4.8)
            figure.tight_layout()
            path = out / f"tune_{key}.png"
            with atomic_path(path) as tmp:
                figure.savefig(tmp, dpi=110, format="png")
            plt.close(figure)
            paths.append(path)
    return [*paths, *_parallel_png(study, out / "tune_parallel.png", units)]


def _parallel_png(study: Any, path: Path, units: Mapping[str, str] | None = None) -> list[Path]:
    """lrlab's parallel coordinates (one row per family, no "None" for knobs a trial did not
    draw, each knob's unit after its name; see ``tune.parallel``), or nothing before any trial
    completed."""
    trials = study.get_trials(deepcopy=False)
    if not any(t.value is not None for t in trials):
        return []
    from matplotlib.style import context

    maximize = getattr(study.direction, "name", "") == "MAXIMIZE"
    with context("default"):  # Optuna's figures leave the ggplot style set
        figure = parallel_figure(trials, metric=metric_name(study.user_attrs.get("metric", "score")),
                                 higher_is_better=maximize, units=units)  # fmt: skip
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=110, format="png")
    return [path]


def _trial_table(result: Any) -> str:
    rows = []
    for t in sorted(result.trials, key=lambda t: t.number):
        audit = "" if t.audit_value is None else num(t.audit_value)
        rows.append(
            f"<tr><td>{t.number}</td><td class='status-{'done' if t.state == 'complete' else 'failed'}'>{t.state}"
            f"{'' if t.pruned_epoch is None else f' (epoch {t.pruned_epoch})'}</td><td class='num'>{num(t.value)}</td>"
            f"<td class='num'>{audit}</td><td>{html.escape(t.optimizer)}</td><td><code>{html.escape(t.schedule)}"
            f"</code></td><td class='num'>{t.steps}</td></tr>"
        )
    head = ("<tr><th>trial</th><th>state</th><th>score</th><th>at full length (audit)</th><th>optimizer</th>"
            "<th>schedule</th><th>steps</th></tr>")  # fmt: skip
    return f"<table>{head}{''.join(rows)}</table>"


def page(result: Any, study: Any) -> str:
    import plotly.io as pio

    from lrlab.plot.interactive import PAGE_CSS, plotly_figure
    from lrlab.plot.schedules import schedule_figure

    best = result.recommendation.best
    torch_code, keras_code = code(result)
    parts = []
    first = True
    drawn = schedule_figure([best.schedule], result.total_steps, title="The recommended schedule")
    figures = [("schedule", "The recommended schedule, LR at every optimizer step", plotly_figure(drawn))]
    figures += _figures(study, _units(result))
    for key, caption, figure in figures:
        div = pio.to_html(
            figure, full_html=False, include_plotlyjs=first, div_id=f"fig-{key}", validate=False
        )
        first = False
        parts.append(f"<h2>{html.escape(caption)}</h2>\n{div}" if caption else div)
    verdict = "".join(f"<li>{html.escape(line)}</li>" for line in verdict_lines(result))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lrlab tune {html.escape(result.name)}</title><style>{PAGE_CSS}</style></head><body>\n"
        f"<h1>Tune {html.escape(result.name)}</h1>\n"
        f"<p class='sub'>{html.escape(result.spec.task)}, {len(result.trials)} trials of {result.total_steps} steps "
        f"at most, {html.escape(result.spec.sampler)} sampler, {html.escape(result.spec.pruner)} pruner, "
        f"scored on {html.escape(metric_name(result.metric))} (lower is better unless stated); every trial's "
        "run: <a href='runs.html'>runs.html</a></p>\n"
        f"<div class='answer'><ul>{verdict}</ul></div>\n"
        f"<h2>Code to paste</h2><pre>{html.escape(torch_code)}</pre><pre>{html.escape(keras_code)}</pre>\n"
        f"<h2>Trials</h2>{_trial_table(result)}\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_outputs(result: Any, study: Any, store: Store, out: Path) -> Any:
    """Write the tune's page, figures, ``recommendation.md`` and ``runs.html`` into ``out``."""
    from lrlab.plot.schedules import write_schedule_figure
    from lrlab.report import load_report_data, write_report

    out.mkdir(parents=True, exist_ok=True)
    figures_dir = out / "figures"
    figures_dir.mkdir(exist_ok=True)
    page_path = out / "tune.html"
    write_text(page_path, page(result, study))  # atomically (lrlab.files)
    images = _pngs(study, figures_dir, _units(result))
    best = result.recommendation.best
    images.append(write_schedule_figure([best.schedule], result.total_steps, figures_dir / "tune_schedule.png",
                                        title="The recommended schedule"))  # fmt: skip
    full = [r.id for r in result.runs]
    data = load_report_data(store, run_ids=full)
    write_report(data, out / "runs.html")
    recommendation = out / "recommendation.md"
    write_text(recommendation, markdown(result))
    return replace(result, files=TuneFiles(page_path, out / "runs.html", images, recommendation))
