"""One scorer: a real study's recommendation, its report's best-configuration finding, the CLI
table and recommendation.md name the same winner and runner-up."""

from __future__ import annotations

import pytest

from lrlab.report import load_report_data
from lrlab.store import Store
from lrlab.study import run_study
from lrlab.study.summary import verdict_lines


@pytest.mark.slow
def test_study_report_and_recommendation_name_the_same_winner_and_runner_up(tmp_path, capsys):
    store = Store(tmp_path / "runs.db")
    result = run_study("digits-linear", store, optimizers=["sgdm", "adam"], epochs=3, out=tmp_path / "out")
    rec = result.recommendation
    assert rec.runner_up is not None and result.files is not None
    top, second = rec.candidates[0], rec.candidates[1]  # the two best finalists, by their mean over 3 seeds
    assert top is rec.top and top.finalist and second.finalist and top.seeds == second.seeds == 3
    assert {rec.best.run_ids, rec.runner_up.run_ids} == {top.run_ids, second.run_ids}

    finalist_ids = [rid for c in rec.candidates if c.finalist for rid in c.run_ids]
    data = load_report_data(store, run_ids=finalist_ids)  # the report over the last rung
    (best,) = [f for f in data.findings if f.kind == "best"]
    assert best.numbers["metric"] == rec.metric == "val_error"
    assert set(best.run_ids) == set(top.run_ids)
    runner_up_label = best.labels[1]
    (runner_up,) = [c for c in data.configs if c.label == runner_up_label]
    assert {r.id for r in runner_up.runs} == set(second.run_ids)
    assert best.numbers["best"] == pytest.approx(top.score)
    assert best.numbers["runner_up"] == pytest.approx(second.score)

    markdown = result.files.recommendation.read_text()
    assert verdict_lines(result)[0] in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "`" in line]
    first, second = rows[0].split(" | "), rows[1].split(" | ")
    assert (first[0].strip("| "), first[1]) == (top.optimizer, top.schedule_name)
    assert (second[0].strip("| "), second[1]) == (rec.candidates[1].optimizer, rec.candidates[1].schedule_name)

    from lrlab.cli.study import _print_summary

    _print_summary(result)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert top.schedule_name in table[0] and top.optimizer in table[0]
    assert rec.candidates[1].schedule_name in table[1] and rec.candidates[1].optimizer in table[1]
