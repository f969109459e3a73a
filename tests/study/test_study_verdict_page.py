"""One verdict: the study's tie rule reaches recommendation.md, the CLI and the report page alike,
and a later ``lrlab report --sweep <study>`` reads the same verdict from the store."""

from __future__ import annotations

import re

import pytest
from tests.study.test_successive_halving import _study

from lrlab.plot.interactive import esc
from lrlab.report.data import build_report_data
from lrlab.report.html import _study_answer, page_title
from lrlab.study.run import StudyResult
from lrlab.study.summary import verdict_lines


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
    verdict = result.verdict
    assert list(verdict.lines) == verdict_lines(result)
    assert verdict.headline.startswith("Recommended: sgd with constant peaking at lr=0.1")
    top, second, lone = verdict.leaderboard
    assert (top.schedule, top.score, top.recommended) == ("step", pytest.approx(0.03), False)
    assert (second.schedule, second.score, second.recommended) == ("constant", pytest.approx(0.035), True)
    assert verdict.recommended is second
    assert top.to_next.value == pytest.approx(0.005) and top.to_next.noise == pytest.approx(0.015275, rel=1e-4)
    assert top.to_next.within_noise is True and top.to_next.shared_seeds == 3
    assert verdict.tie.tie and verdict.tie.broken and "constant has fewer schedule knobs than step" in verdict.tie.reason
    # the lone seed of cosine is not a finalist: no margin is drawn across the cut
    assert second.to_next.value is None and not lone.finalist and lone.seeds == 1


def test_the_page_opens_with_the_study_verdict_not_the_raw_ranking():
    from tests.study.test_successive_halving import _epoch

    result = _tied_result()
    epochs = {r.id: _epoch(r.id, e) for r, e in zip(result.runs, [0.020, 0.040, 0.030, 0.035, 0.030, 0.040, 0.001])}
    data = build_report_data(result.runs, epochs, {})
    # the plain ranking would put step first (0.030); the study's verdict is the constant LR
    (best,) = [f for f in data.findings if f.kind == "best"]
    assert "step_decay" in best.message
    data.study = result.verdict
    page = _study_answer(data, data.study)
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
    data.study = result.verdict
    first, second = data.study.leaderboard
    assert (first.schedule, first.diverged, first.next_diverged) == ("step", 0, True)
    assert (second.schedule, second.diverged, second.score) == ("constant", 1, pytest.approx(0.01))
    page = _study_answer(data, data.study)
    assert "<td class='num'>2 (+1 diverged)</td>" in page
    assert "the next diverged on a seed: ranked below whatever its mean" in page
    assert "diverged on 1 of 3 seeds: ranked below those that never did" in page


@pytest.mark.slow
def test_a_later_report_of_the_study_from_the_store_shows_the_same_verdict(tmp_path):
    from typer.testing import CliRunner

    from lrlab.cli.app import app
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


# ---------------------------------------------------------------- the stored verdict, typed

# A verdict exactly as the study stored it before it was typed (``verdict_record`` of
# ``_tied_result()``, with a range test), so that stores written before keep working.
STORED = {
    "budget": "small", "diverged": 0, "epochs": 1, "finalists": 2, "higher_is_better": False,
    "leaderboard": [
        {"accuracy": 0.9700000000000001, "diverged": 0, "finalist": True, "margin": 0.005000000000000001,
         "next_diverged": False, "noise": 0.01527525231651947, "optimizer": "sgd", "peak_lr": 0.1,
         "recommended": False, "run_ids": ["a0", "a1", "a2"], "schedule": "step", "score": 0.03, "sd": 0.01,
         "seeds": 3, "shared_seeds": 3, "spec": "step_decay(lr=0.1, step_size=4)", "within_noise": True},
        {"accuracy": 0.965, "diverged": 0, "finalist": True, "margin": None, "next_diverged": False, "noise": None,
         "optimizer": "sgd", "peak_lr": 0.1, "recommended": True, "run_ids": ["b0", "b1", "b2"],
         "schedule": "constant", "score": 0.035, "sd": 0.005000000000000001, "seeds": 3, "shared_seeds": 0,
         "spec": "constant(lr=0.1)", "within_noise": None},
        {"accuracy": 0.999, "diverged": 0, "finalist": False, "margin": None, "next_diverged": False, "noise": None,
         "optimizer": "sgd", "peak_lr": 0.3, "recommended": False, "run_ids": ["c0"], "schedule": "cosine",
         "score": 0.001, "sd": 0.0, "seeds": 1, "shared_seeds": 0, "spec": "cosine(lr=0.3, total_steps=10)",
         "within_noise": None},
    ],
    "lines": [
        "Recommended: sgd with constant peaking at lr=0.1: constant(lr=0.1)",
        "final validation error 0.035 ± 0.005 (sd) (accuracy 96.50%), mean of 3 seed(s)",
        "ties with sgd + step peaking at lr=0.1 (0.03 ± 0.01): the margin 0.005 in validation error is within the "
        "paired seed noise 0.01528 (2 standard errors of the per-seed differences over 3 shared seeds)",
        "so it recommends the simpler or steadier of the two: constant has fewer schedule knobs than step (a tie goes "
        "to the configuration with fewer diverged seeds, then the schedule with fewer knobs, then the lower seed sd, "
        "then the smaller LR)",
    ],
    "margin": 0.005000000000000001, "metric": "val_error", "metric_words": "validation error",
    "name": "study-t-small", "noise": 0.01527525231651947, "noise_se": 2.0,
    "range_tests": {"sgd(momentum=0.9)": {"lr": 0.05, "rule": "valley", "iterations": 120}},
    "run_ids": ["a0", "a1", "a2", "b0", "b1", "b2", "c0"], "runs": 7, "seeds": [0, 1, 2], "shared_seeds": 3,
    "sweeps": ["s"], "task": "t", "tie": True, "tie_broken": True,
    "tie_reason": "constant has fewer schedule knobs than step (a tie goes to the configuration with fewer diverged "
    "seeds, then the schedule with fewer knobs, then the lower seed sd, then the smaller LR)",
    "tie_rule": "the configuration with fewer diverged seeds, then the schedule with fewer knobs, then the lower "
    "seed sd, then the smaller LR",
    "total_steps": 10,
}  # fmt: skip


def _json(value):
    import json

    return json.dumps(value, sort_keys=True)


def test_a_verdict_stored_before_it_was_typed_reads_back_and_writes_the_same_record():
    from lrlab.core.verdict import NOISE_SE, StudyVerdict

    verdict = StudyVerdict.from_dict(STORED)
    assert _json(verdict.to_dict()) == _json(STORED)  # the stored form is unchanged: no migration
    assert verdict.tie.noise_se == NOISE_SE and verdict.tie.broken and verdict.compute.runs == 7
    assert verdict.compute.seeds == (0, 1, 2) and verdict.compute.finalists == 2
    [test] = verdict.range_tests
    assert (test.optimizer, test.lr, test.rule, test.iterations) == ("sgd(momentum=0.9)", 0.05, "valley", 120)
    assert verdict.recommended.schedule == "constant" and verdict.leaderboard[0].to_next.within_noise is True
    # and the study builds that very record today (the range test aside: this one ran none)
    built = _tied_result().verdict
    assert _json(built.to_dict()) == _json({**STORED, "range_tests": {}})
    assert StudyVerdict.from_dict(built.to_dict()) == built


def test_the_first_stored_form_without_diverged_seeds_reads_back():
    from lrlab.core.verdict import StudyVerdict

    first = {**STORED, "leaderboard": [{k: v for k, v in row.items() if k not in ("diverged", "next_diverged")}
                                       for row in STORED["leaderboard"]]}  # fmt: skip
    verdict = StudyVerdict.from_dict(first)
    assert [(r.diverged, r.next_diverged) for r in verdict.leaderboard] == [(0, False)] * 3
    assert _json(verdict.to_dict()) == _json(STORED)
    with pytest.raises(ValueError, match="not a study verdict record: no 'lines'"):
        StudyVerdict.from_dict({k: v for k, v in STORED.items() if k != "lines"})


def test_a_study_record_in_a_store_reaches_the_report_as_the_typed_verdict(tmp_path):
    from tests.report.synthetic import save_to_store, synthetic_sweep

    from lrlab.core.verdict import StudyVerdict
    from lrlab.report.data import load_report_data
    from lrlab.report.html import render_page
    from lrlab.store import Store

    store = Store(tmp_path / "runs.db")
    sweep = synthetic_sweep(lrs=(0.01, 0.1), seeds=(0,), epochs=2, steps_per_epoch=10)
    save_to_store(store, sweep, "part")
    ids = [r.id for r in sweep.runs]
    record = {**STORED, "run_ids": ids}
    store.upsert_sweep("study-t-small", {"name": "study-t-small", "task": "t", "study": record, "run_ids": ids,
                                         "sweeps": ["part"]})  # fmt: skip
    data = load_report_data(store, sweep="study-t-small")
    assert isinstance(data.study, StudyVerdict) and data.study == StudyVerdict.from_dict(record)
    page = render_page(data, [])
    assert '<p class="answer" id="best">Recommended: sgd with constant peaking at lr=0.1' in page
    part = load_report_data(store, sweep="part")
    assert part.study is None and part.part_of == data.study
    assert "whose verdict over all its sweeps is: Recommended: sgd with constant" in render_page(part, [])


# ---------------------------------------------------------------- the Python report gives the printed verdict


def _leaderboard_rows(page):
    """(recommended, cells) of each row of the page's leaderboard table."""
    from html import unescape

    table = re.search(r'<table id="leaderboard-table">.*?<tbody>(.*?)</tbody></table>', page, re.S).group(1)
    rows = re.findall(r"<tr( class=\"recommended\")?>(.*?)</tr>", table, re.S)
    return [(bool(mark), [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]) for mark, cells in rows]


@pytest.mark.slow
def test_the_python_report_opens_with_the_verdict_print_gives(tmp_path):
    import torch
    from torch import nn

    import lrlab
    from lrlab.formatting import num
    from lrlab.study.summary import peak

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(96, generator=g)
    torch.set_num_threads(1)
    result = lrlab.study(lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), (x[:80], y[:80]),
                         (x[80:], y[80:]), name="tiny-reg", epochs=2, batch_size=16, optimizers=["adam"],
                         store=tmp_path / "runs.db", device="cpu")  # fmt: skip
    printed = str(result).splitlines()
    page = result.report(tmp_path / "tiny.html").read_text()

    answer = re.search(r'<p class="answer" id="best">(.*?)</p>', page).group(1)
    assert answer == "<br>".join(esc(line) for line in printed[:2])
    verdict = re.search(r'<ul id="verdict">(.*?)</ul>', page).group(1)
    assert re.findall(r"<li>(.*?)</li>", verdict) == [esc(line) for line in printed[2:]]
    assert f'<h1 id="report-title">Study {result.name}: tiny-reg, budget small</h1>' in page

    # the page's leaderboard is the study's: finalists (three seeds) first, the recommendation marked
    rec = result.recommendation
    rows = _leaderboard_rows(page)
    expected = [
        (c is rec.best, [c.optimizer, c.schedule_name, num(peak(c.schedule, result.result.total_steps), 3),
                         num(c.score) + (f" ± {num(c.sd, 2)}" if c.seeds > 1 else ""), str(c.seeds)])
        for c in rec.candidates[:10]
    ]  # fmt: skip
    assert [(mark, cells[1:6]) for mark, cells in rows] == expected
    assert rows[0][1][5] == "3" and any(c.seeds == 1 for c in rec.candidates)  # three-seed finalists above one-seed runs
    assert printed[0].startswith(f"Recommended: {rec.best.optimizer} with {rec.best.schedule_name}")
