"""One verdict: the study's tie rule reaches recommendation.md, the CLI and the report page alike,
and a later ``lrlab report --sweep <study>`` reads the same verdict from the store."""

from __future__ import annotations

import re

import pytest
from tests.study.test_successive_halving import _study

from lrlab.report.data import build_report_data
from lrlab.report.html import _study_answer, page_title
from lrlab.study.run import StudyResult
from lrlab.study.summary import verdict_lines, verdict_record


def _tied_result():
    """Step decay scores best (0.030) but ties with a constant LR (0.035) inside the paired
    noise 0.01528: the tie rule recommends the constant LR."""
    rec = _study([0.020, 0.040, 0.030], [0.035, 0.030, 0.040])
    runs = [r for c in rec.candidates for r in _runs_of(c)]
    return StudyResult("study-t-small", "t", "small", {}, ["s"], runs, {}, rec, total_steps=10, epochs=1,
                       extras={"finalists": 2, "seeds": [0, 1, 2]})  # fmt: skip


def _runs_of(candidate):
    from tests.study.test_successive_halving import _run

    return [_run(rid, str(candidate.schedule), candidate.lr, seed=int(rid[1:])) for rid in candidate.run_ids]


def test_the_stored_verdict_is_the_cli_verdict_with_the_tie_rule_applied():
    result = _tied_result()
    record = verdict_record(result)
    assert record["lines"] == verdict_lines(result)
    assert record["lines"][0].startswith("Recommended: sgd with constant peaking at lr=0.1")
    top, second, lone = record["leaderboard"]
    assert (top["schedule"], top["score"], top["recommended"]) == ("step", pytest.approx(0.03), False)
    assert (second["schedule"], second["score"], second["recommended"]) == ("constant", pytest.approx(0.035), True)
    assert top["margin"] == pytest.approx(0.005) and top["noise"] == pytest.approx(0.015275, rel=1e-4)
    assert top["within_noise"] is True and top["shared_seeds"] == 3
    assert record["tie"] and record["tie_broken"] and "constant has fewer schedule knobs than step" in record["tie_reason"]
    # the lone seed of cosine is not a finalist: no margin is drawn across the cut
    assert second["margin"] is None and not lone["finalist"] and lone["seeds"] == 1


def test_the_page_opens_with_the_study_verdict_not_the_raw_ranking():
    from tests.study.test_successive_halving import _epoch

    result = _tied_result()
    epochs = {r.id: _epoch(r.id, e) for r, e in zip(result.runs, [0.020, 0.040, 0.030, 0.035, 0.030, 0.040, 0.001])}
    data = build_report_data(result.runs, epochs, {})
    # the plain ranking would put step first (0.030); the study's verdict is the constant LR
    (best,) = [f for f in data.findings if f.kind == "best"]
    assert "step_decay" in best.message
    data.study = verdict_record(result)
    page = _study_answer(data)
    answer = re.search(r'<p class="answer" id="best">(.*?)</p>', page).group(1)
    assert answer.startswith("Recommended: sgd with constant peaking at lr=0.1")
    rows = re.findall(r"<tr( class=\"recommended\")?><td class='num'>(\d+)</td><td>sgd</td><td[^>]*>([a-z-]+)</td>", page)
    assert [(n, s, bool(mark)) for mark, n, s in rows] == [("1", "step", False), ("2", "constant", True), ("3", "cosine", False)]
    assert "0.005 (within the paired seed noise 0.01528)" in page
    assert "recommended by the tie rule" in page and "a tie goes to the configuration with fewer diverged seeds, then the schedule with fewer knobs" in page
    assert "It is applied here: constant has fewer schedule knobs than step." in page
    assert "Compute spent: 7 runs" in page and "all 3 configurations with seed 0, the best 2 also with seed(s) 1, 2" in page
    assert page_title(data) == "Study study-t-small: t, budget small"


def test_a_configuration_with_a_diverged_seed_is_marked_and_ranked_below_on_the_page():
    from tests.study.test_successive_halving import _run, _three_seeds

    from lrlab.schedules import parse
    from lrlab.study.recommend import recommend

    ra, ea = _three_seeds("a", "step_decay(lr=0.1, step_size=4)", 0.1, [0.03, 0.04, 0.05])
    rb, eb = _three_seeds("b", "constant(lr=0.3)", 0.3, [0.01, 0.01])
    rb.append(_run("b2", "constant(lr=0.3)", 0.3, seed=2, status="diverged"))
    names = {parse("step_decay(lr=0.1, step_size=4)"): "step", parse("constant(lr=0.3)"): "constant"}
    rec = recommend(ra + rb, {**ea, **eb}, names, finalists={ra[0].configuration, rb[0].configuration},
                    break_ties=True)  # fmt: skip
    result = StudyResult("study-d-small", "t", "small", {}, ["s"], ra + rb, {}, rec, total_steps=10, epochs=1,
                         extras={"finalists": 2, "seeds": [0, 1, 2]})  # fmt: skip
    data = build_report_data(result.runs, {**ea, **eb}, {})
    data.study = verdict_record(result)
    first, second = data.study["leaderboard"]
    assert (first["schedule"], first["diverged"], first["next_diverged"]) == ("step", 0, True)
    assert (second["schedule"], second["diverged"], second["score"]) == ("constant", 1, pytest.approx(0.01))
    page = _study_answer(data)
    assert "<td class='num'>2 (+1 diverged)</td>" in page
    assert "the next diverged on a seed: ranked below whatever its mean" in page
    assert "diverged on 1 of 3 seeds: ranked below those that never did" in page


@pytest.mark.slow
def test_a_later_report_of_the_study_from_the_store_shows_the_same_verdict(tmp_path):
    from typer.testing import CliRunner

    from lrlab.cli.app import app
    from lrlab.plot.interactive import esc
    from lrlab.store import Store
    from lrlab.study import run_study

    db = tmp_path / "runs.db"
    result = run_study("digits-linear", Store(db), optimizers=["sgdm"], epochs=3, out=tmp_path / "out")
    lines = verdict_lines(result)
    markdown = result.files.recommendation.read_text()
    assert all(f"- {line}" in markdown for line in lines)
    answer = f'<p class="answer" id="best">{esc(lines[0])}<br>{esc(lines[1])}</p>'
    study_page = result.files.report.read_text()
    assert answer in study_page and "<h1 id=\"report-title\">Study study-digits-linear-small: digits-linear" in study_page

    later = tmp_path / "later.html"
    cli = CliRunner().invoke(app, ["report", "--db", str(db), "--sweep", result.name, "--out", str(later)])
    assert cli.exit_code == 0, cli.output
    printed = " ".join(cli.output.split())
    assert " ".join(lines[0].split()) in printed and "Best configuration" not in printed
    page = later.read_text()
    assert answer in page
    rec = result.recommendation
    recommended = re.search(r'<tr class="recommended"><td class=\'num\'>(\d+)</td><td>([^<]+)</td><td[^>]*>([^<]+)</td>', page)
    assert (recommended.group(2), recommended.group(3)) == (esc(rec.best.optimizer), rec.best.schedule_name)
    assert int(recommended.group(1)) == rec.candidates.index(rec.best) + 1
    assert f"{len(result.runs)} runs in" in page and f"Compute spent: {len(result.runs)} runs" in page

    # One of the study's sweeps reported alone points to the study's verdict first.
    part = result.sweeps[0]
    alone = tmp_path / "part.html"
    cli = CliRunner().invoke(app, ["report", "--db", str(db), "--sweep", part, "--out", str(alone)],
                             env={"COLUMNS": "400"})  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert f"this sweep is one part of the study {result.name}, whose verdict over all its sweeps is: {lines[0]}" in cli.output
    page = alone.read_text()
    pointer = re.search(r'<div class="pointer" id="part-of">(.*?)</div>', page).group(1)
    assert esc(result.name) in pointer and esc(lines[0]) in pointer
    assert page.index('id="part-of"') < page.index('id="figures"')
    # a sweep of no study gets no pointer
    from lrlab.report.data import load_report_data
    from lrlab.sweeps import run_sweep

    run_sweep({"name": "alone", "task": "digits-linear", "epochs": 1, "grid": {"lr": [0.1]}}, Store(db))
    assert load_report_data(Store(db, readonly=True), sweep="alone").part_of is None
    assert load_report_data(Store(db, readonly=True), sweep=result.name).part_of is None
    # `lrlab runs list/export --sweep <study>` see the study's runs across its sweeps, as the report does
    listed = CliRunner().invoke(app, ["runs", "list", "--db", str(db), "--sweep", result.name], env={"COLUMNS": "300"})
    assert listed.exit_code == 0 and f"{len(result.runs)} runs in" in listed.output
    exported = CliRunner().invoke(app, ["runs", "export", "--db", str(db), "--sweep", result.name])
    import json

    assert sorted(r["id"] for r in json.loads(exported.stdout)) == sorted(r.id for r in result.runs)


def test_a_plain_reports_leaderboard_marks_a_diverged_seed_and_ranks_it_below():
    from tests.study.test_successive_halving import _run, _three_seeds

    from lrlab.report.html import NEXT_DIVERGED, _leaderboard

    ra, ea = _three_seeds("a", "constant(lr=0.1)", 0.1, [0.03, 0.04, 0.05])
    rb, eb = _three_seeds("b", "constant(lr=0.3)", 0.3, [0.01, 0.01])
    rb.append(_run("b2", "constant(lr=0.3)", 0.3, seed=2, status="diverged"))
    page = _leaderboard(build_report_data(ra + rb, {**ea, **eb}, {}))
    rows = re.findall(r"<tr><td class='num'>(\d+)</td><td>([^<]*)</td><td class='num'>([^<]*)</td>"
                      r"<td class='num'>([^<]*)</td><td>([^<]*)</td>", page)  # fmt: skip
    assert [(n, seeds) for n, _label, _score, seeds, _margin in rows] == [("1", "3"), ("2", "2 (+1 diverged)")]
    assert rows[0][1].startswith("lr=0.1") and rows[0][4] == f"-0.03 ({NEXT_DIVERGED})"  # the next: a better mean, below
    assert rows[1][2].startswith("0.01")
