"""The interactive report: one self-contained HTML file (plotly.js embedded once).

Every text that comes from the user (run, sweep, task, optimizer and schedule names,
labels, errors) is escaped twice over where needed: with :func:`html.escape` in the page's
own markup, and as HTML entities inside plotly strings, because plotly renders a subset
of HTML tags in trace names, titles and hover labels (an entity shows as the character).
"""

from __future__ import annotations

from pathlib import Path

from lrlab.core.diagnostics import kind_summary
from lrlab.core.ranking import final_metric
from lrlab.core.verdict import LeaderboardRow, StudyVerdict
from lrlab.formatting import num
from lrlab.plot.interactive import PAGE_CSS, PLOT_CONFIG, esc, plotly_figure
from lrlab.plot.spec import FigureSpec
from lrlab.report.data import ReportData
from lrlab.report.optima import optima_section


def _part_of(parent: StudyVerdict) -> str:
    """A study's sweep reported alone: the study's verdict first, since this page's own
    ranking sees only this sweep."""
    name = esc(parent.name)
    head = esc(parent.headline)
    return (
        f'<div class="pointer" id="part-of"><b>This sweep is one part of the study {name}</b>, whose '
        f"verdict over all its sweeps is: {head}<br>The ranking below sees only this sweep; "
        f"<code>lrlab report --sweep {name}</code> shows the whole study.</div>"
    )


def render_page(data: ReportData, figures: list[FigureSpec]) -> str:
    """The whole report page as one HTML string (works offline: nothing is fetched)."""
    import plotly.io as pio

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page_title(data))} - lrlab report</title><style>{PAGE_CSS}</style></head><body>",
        f'<h1 id="report-title">{esc(page_title(data))}</h1>',
        f'<p class="sub">{_summary_line(data)}</p>',
    ]
    if data.shared:
        shared = ", ".join(f"{esc(k)}={esc(v)}" for k, v in data.shared.items())
        parts.append(f'<p class="sub">Shared by every run: {shared}</p>')
    if data.part_of is not None:
        parts.append(_part_of(data.part_of))
    parts.append(_leaderboard(data) if data.study is None else _study_answer(data, data.study))
    parts.append('<h2 id="figures">Figures</h2>')
    for i, spec in enumerate(figures):
        fig = plotly_figure(spec)
        div = pio.to_html(
            fig,
            validate=False,
            full_html=False,
            include_plotlyjs=(i == 0),
            div_id=f"fig-{spec.key}",
            config=PLOT_CONFIG,
        )
        parts.append(
            f'<section class="figure" id="section-{spec.key}"><h2>{esc(spec.title)}</h2>'
            f'<p class="caption">{esc(spec.caption)}</p>{div}</section>'
        )
    parts.append(_diagnostics(data))
    parts.append(_config_table(data))
    parts.append(
        '<p class="sub">Made by lrlab from the run store; nothing here was re-run.</p></body></html>'
    )
    return "\n".join(parts)


LEADERBOARD_ROWS = 10


def page_title(data: ReportData) -> str:
    """The page's heading: the study or sweep it reports (a report of chosen runs names
    the sweeps they belong to)."""
    if data.study is not None:
        study = data.study
        return f"Study {study.name}: {study.task}, budget {study.budget}"
    if data.title.startswith("Sweep ") or data.title.startswith("All "):
        return data.title
    sweeps = sorted({r.sweep for r in data.runs if r.sweep})
    if len(sweeps) == 1:
        return f"{len(data.runs)} runs of sweep {sweeps[0]}"
    if sweeps:
        return f"{len(data.runs)} runs of sweeps {', '.join(sweeps[:3])}" + (" and more" if len(sweeps) > 3 else "")
    return data.title


# Both leaderboards' margin cell above a configuration ranked lower for a diverged seed.
NEXT_DIVERGED = "the next diverged on a seed: ranked below whatever its mean"


def _diverged_words(diverged: int) -> str:
    """For a leaderboard's seeds cell: the seeds that diverged besides those that finished."""
    return f" (+{diverged} diverged)" if diverged else ""


def _margin_cell(row: LeaderboardRow) -> str:
    """A study row's margin to the next row against the paired seed noise, in words."""
    if row.next_diverged:
        return NEXT_DIVERGED
    margin = row.to_next
    if margin.value is None:
        return "-"
    if margin.noise is None:
        return f"{num(margin.value)} ({margin.shared_seeds} shared seed(s): no noise estimate)"
    where = "within" if margin.within_noise else "beyond"
    return f"{num(margin.value)} ({where} the paired seed noise {num(margin.noise)})"


def _row_note(study: StudyVerdict, row: LeaderboardRow, position: int) -> str:
    """A study row's verdict cell: recommended, tied with the recommendation, diverged, or out at the cut."""
    if row.recommended:
        return "recommended" + (" by the tie rule" if study.tie.broken else "")
    if study.tie.broken and position == 0:
        return "best mean, tied with the recommendation within the seed noise"
    if row.diverged:
        return f"diverged on {row.diverged} of {row.seeds + row.diverged} seeds: ranked below those that never did"
    if not row.finalist:
        return "one seed: not a finalist"
    return ""


def _study_answer(data: ReportData, study: StudyVerdict) -> str:
    """The study's own verdict, as the CLI printed it and ``recommendation.md`` holds it:
    the recommendation, the leaderboard in the study's order (finalists first) with the
    margin to the next against the paired seed noise, the tie rule, and the compute spent."""
    parts = ['<section id="answer"><h2 id="leaderboard">The answer</h2>']
    if study.lines:
        parts.append(f'<p class="answer" id="best">{"<br>".join(esc(line) for line in study.answer)}</p>')
        lr_free = {line.text for line in study.lr_free}  # an LR-free optimizer's line against the recommendation
        items = (('<li class="lr-free">' if line in lr_free else "<li>") + f"{esc(line)}</li>" for line in study.details)
        parts.append('<ul id="verdict">' + "".join(items) + "</ul>")
    parts.append(f'<p class="sub" id="compute">{esc(_compute_words(data, study))}</p>')
    rows = study.leaderboard
    parts.append(
        '<table id="leaderboard-table"><thead><tr><th>#</th><th>optimizer</th><th>schedule</th><th>peak lr</th>'
        f"<th>final {esc(study.metric_words)} (mean &plusmn; sd)</th><th>seeds</th><th>margin to the next</th>"
        "<th>verdict</th><th>steps trained</th></tr></thead><tbody>"
    )
    for position, row in enumerate(rows[:LEADERBOARD_ROWS]):
        sd = f" &plusmn; {num(row.sd, 2)}" if row.seeds > 1 else ""
        steps = sum(data.total_steps.get(rid, 0) for rid in row.run_ids)
        mark = ' class="recommended"' if row.recommended else ""
        parts.append(
            f"<tr{mark}><td class='num'>{position + 1}</td><td>{esc(row.optimizer)}</td>"
            f"<td title='{esc(row.spec)}'>{esc(row.schedule)}</td>"
            f"<td class='num'>{num(row.peak_lr, 3)}</td><td class='num'>{num(row.score)}{sd}</td>"
            f"<td class='num'>{row.seeds}{_diverged_words(row.diverged)}</td>"
            f"<td>{esc(_margin_cell(row))}</td><td>{esc(_row_note(study, row, position))}</td>"
            f"<td class='num'>{steps:,}</td></tr>"
        )
    parts.append("</tbody></table>")
    if len(rows) > LEADERBOARD_ROWS:
        parts.append(
            f'<p class="sub">and {len(rows) - LEADERBOARD_ROWS} more finished configurations (every one in '
            "recommendation.md; every run in the table at the end).</p>"
        )
    parts.append(optima_section(study))
    parts.append(f'<p class="sub" id="tie-rule">{esc(_tie_rule_words(study))}</p></section>')
    return "".join(parts)


def _tie_rule_words(study: StudyVerdict) -> str:
    tie = study.tie
    text = (
        f"Tie rule: the two best finalists tie when the margin between them is within {tie.noise_se:g} standard "
        f"errors of their per-seed differences (paired seed noise), and a tie goes to {tie.rule}."
    )
    if tie.tie and tie.reason:
        applied = "applied here" if tie.broken else "a tie here, kept by the best mean"
        reason = tie.reason.replace(f" (a tie goes to {tie.rule})", "")
        text += f" It is {applied}: {reason}."
    elif study.top_two.noise is not None:
        text += " Not applied here: the margin is beyond the noise."
    return text


def _compute_words(data: ReportData, study: StudyVerdict) -> str:
    compute = study.compute
    steps = sum(data.total_steps.get(rid, 0) for rid in compute.run_ids)
    seeds = [str(s) for s in compute.seeds]
    text = f"Compute spent: {compute.runs} runs, {steps:,} optimizer steps trained"
    if seeds and compute.finalists:
        text += (
            f" (successive halving: all {len(data.configs)} configurations with seed {seeds[0]}, the best "
            f"{compute.finalists} also with seed(s) {', '.join(seeds[1:])})"
        )
    if study.range_tests:
        iterations = sum(t.iterations or 0 for t in study.range_tests)
        text += f", plus {len(study.range_tests)} range test(s) of {iterations:,} steps in all"
    if compute.diverged:
        text += f"; {compute.diverged} run(s) diverged and stopped early"
    return text + "."


def _leaderboard(data: ReportData) -> str:
    """The answer first: the best configuration and the leaderboard of the one scorer, each
    with its mean +- sd over seeds, its margin to the next and whether that is inside the noise."""
    ranked = data.ranking
    best = next((f for f in data.findings if f.kind == "best"), None)
    parts = ['<section id="answer"><h2 id="leaderboard">The answer</h2>']
    if best is not None:
        parts.append(f'<p class="answer" id="best">{esc(best.message)}</p>')
    if not ranked:
        parts.append('<p class="sub">No finished run reports a validation metric yet.</p></section>')
        return "".join(parts)
    metric = ranked[0][1].metric.replace("_", " ")
    parts.append(
        f'<table id="leaderboard-table"><thead><tr><th>#</th><th>configuration</th><th>final {esc(metric)} '
        "(mean &plusmn; sd)</th><th>seeds</th><th>margin to the next</th><th>steps trained</th></tr></thead><tbody>"
    )
    for position, (cfg, entry) in enumerate(ranked[:LEADERBOARD_ROWS]):
        margin = "-"
        if position + 1 < len(ranked):
            following = ranked[position + 1][1]
            gap = following.mean - entry.mean
            spread = max(entry.high - entry.low, following.high - following.low)
            if following.diverged > entry.diverged:
                verdict = NEXT_DIVERGED
            elif max(entry.seeds, following.seeds) < 2:
                verdict = "one seed: no noise estimate"
            elif gap <= spread:
                verdict = "a tie: inside the spread over seeds"
            else:
                verdict = "beyond the spread over seeds"
            margin = f"{num(gap)} ({verdict})"
        steps = sum(data.total_steps.get(r.id, 0) for r in cfg.runs)
        parts.append(
            f"<tr><td class='num'>{position + 1}</td><td>{esc(cfg.label)}</td>"
            f"<td class='num'>{num(entry.mean)}{'' if entry.seeds < 2 else f' &plusmn; {num(entry.sd)}'}</td>"
            f"<td class='num'>{entry.seeds}{_diverged_words(entry.diverged)}</td>"
            f"<td>{esc(margin)}</td><td class='num'>{steps:,}</td></tr>"
        )
    more = len(ranked) - LEADERBOARD_ROWS
    parts.append("</tbody></table>")
    if more > 0:
        parts.append(f'<p class="sub">and {more} more configurations (all of them in the table at the end).</p>')
    parts.append("</section>")
    return "".join(parts)


def _diagnostics(data: ReportData) -> str:
    """Diagnostics grouped by kind: one line per kind with its count, the findings folded below."""
    parts = ['<h2 id="diagnostics">Diagnostics</h2>']
    findings = [f for f in data.findings if f.kind != "best"]
    if not findings:
        parts.append('<p class="info">Nothing to report: no run diverged, stalled or overfitted.</p>')
        return "".join(parts)
    kinds: dict[str, list] = {}
    for finding in findings:
        kinds.setdefault(finding.kind, []).append(finding)
    for kind, items in kinds.items():
        severity = "warning" if any(f.severity == "warning" for f in items) else "info"
        head = kind_summary(kind, items, data.configs, data.planned_steps)
        parts.append(
            f'<details class="kind" data-kind="{esc(kind)}"><summary class="{severity}">{esc(head)} '
            f'<span class="numbers">({len(items)} note(s) below)</span></summary><ul class="findings">'
        )
        for f in items:
            numbers = ", ".join(f"{esc(k)}={esc(_num(v))}" for k, v in f.numbers.items())
            parts.append(
                f'<li class="{esc(f.severity)}" data-kind="{esc(f.kind)}">{esc(f.message)}'
                f' <span class="numbers">[{numbers}]</span></li>'
            )
        parts.append("</ul></details>")
    return "".join(parts)


def _summary_line(data: ReportData) -> str:
    statuses: dict[str, int] = {}
    for r in data.runs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    counts = ", ".join(f"{n} {esc(s)}" for s, n in sorted(statuses.items()))
    return f"{len(data.runs)} runs in {len(data.configs)} configurations ({counts})."


def _num(value: object) -> str:
    if isinstance(value, float):
        return num(value)
    if isinstance(value, list):
        return "[" + ", ".join(_num(v) for v in value) + "]"
    return str(value)


def _config_table(data: ReportData) -> str:
    rows = [
        '<details open><summary>Configurations and runs</summary><table id="runs"><thead><tr>'
        "<th>configuration</th><th>in the figures</th><th>seed</th><th>run id</th><th>status</th><th>epochs</th>"
        "<th>final train loss</th><th>final val loss</th><th>final val error</th></tr></thead><tbody>"
    ]
    look = data.looks
    for cfg in data.configs:
        shown = look[cfg.key].name if look[cfg.key].highlighted else "grey"
        for run in cfg.runs:
            recs = data.epochs.get(run.id, [])
            err = final_metric(recs, "val_error")
            rows.append(
                f"<tr><td>{esc(cfg.label)}</td><td>{esc(shown)}</td><td class='num'>{run.seed}</td><td><code>{esc(run.id)}</code></td>"
                f"<td class='status-{esc(run.status)}'>{esc(run.status)}</td><td class='num'>{len(recs)}</td>"
                f"<td class='num'>{_cell(final_metric(recs, 'train_loss'))}</td>"
                f"<td class='num'>{_cell(final_metric(recs, 'val_loss'))}</td>"
                f"<td class='num'>{'' if err is None else f'{err:.2%}'}</td></tr>"
            )
    rows.append("</tbody></table></details>")
    return "".join(rows)


def _cell(value: float | None) -> str:
    return num(value, missing="")


def write_html(data: ReportData, figures: list[FigureSpec], out: Path) -> Path:
    from lrlab.files import write_text

    return write_text(out, render_page(data, figures))  # atomically: the old page or the new one
