"""A study's optima in its stored verdict: a verdict stored before the study fitted optima
(no ``optima`` key) still loads through a real store and renders, and one with optima
round-trips and shows its table in the report's verdict section."""

from __future__ import annotations

from lrlab.core.verdict import FamilyOptimum, StudyVerdict
from lrlab.report.optima import optima_section
from lrlab.store.sqlite import Store

OLD = {  # the verdict as studies stored it before optima existed
    "name": "study-old-small", "task": "digits-linear", "budget": "small", "epochs": 2, "total_steps": 46,
    "metric": "val_error", "metric_words": "validation error", "higher_is_better": False,
    "lines": ["Recommended: adam with constant peaking at lr=0.01: constant(lr=0.01)", "final validation error 0.05"],
    "leaderboard": [{"optimizer": "adam", "schedule": "constant", "spec": "constant(lr=0.01)", "peak_lr": 0.01,
                     "score": 0.05, "sd": 0.0, "seeds": 1, "accuracy": 0.95, "finalist": True, "run_ids": [],
                     "recommended": True, "margin": None, "noise": None, "shared_seeds": 0}],
    "tie": False, "tie_rule": "r", "tie_reason": None, "tie_broken": False, "margin": None, "noise": None,
    "noise_se": 2.0, "shared_seeds": 0, "diverged": 0, "runs": 0, "run_ids": [], "sweeps": [], "finalists": 1,
    "seeds": [0], "range_tests": {"adam": {"lr": 0.003, "rule": "minimum/30", "iterations": 100}},
}  # fmt: skip

OPTIMUM = FamilyOptimum(
    optimizer="adam", schedule="constant", lr=0.0123, low=0.009, high=0.017, level=0.8, bracketed=True, edge=None,
    best_lr=0.01, seeds=3, tried=(0.0033, 0.01, 0.03), extra=0, recommended=True,
    reason="bracketed: 0.0033 and 0.03 are worse than 0.01", text="adam + constant: peak LR 0.0123",
)  # fmt: skip


def _stored(tmp_path, record) -> StudyVerdict:
    store = Store(tmp_path / "runs.db")
    store.upsert_sweep(record["name"], {"name": record["name"], "task": record["task"], "study": record,
                                        "run_ids": [], "sweeps": []})  # fmt: skip
    try:
        return StudyVerdict.from_dict(store.sweep_spec(record["name"])["study"])
    finally:
        store.close()


def test_an_old_verdict_without_optima_still_loads_and_writes_back_unchanged(tmp_path):
    verdict = _stored(tmp_path, OLD)
    assert verdict.optima == () and verdict.optimum is None
    assert "optima" not in verdict.to_dict()
    assert verdict.to_dict()["lines"] == OLD["lines"]


def test_optima_round_trip_through_the_store(tmp_path):
    new = StudyVerdict.from_dict({**OLD, "optima": [OPTIMUM.to_dict()]})
    back = _stored(tmp_path, new.to_dict())
    assert back.optima == (OPTIMUM,) and back.optimum == OPTIMUM
    assert back.optimum.low < back.optimum.lr < back.optimum.high


def test_the_report_section_shows_the_optima_only_when_stored(tmp_path):
    old = _stored(tmp_path, OLD)
    (tmp_path / "new").mkdir()
    new = _stored(tmp_path / "new", {**OLD, "optima": [OPTIMUM.to_dict()]})
    assert optima_section(old) == ""
    section = optima_section(new)
    assert 'id="optima-table"' in section and "0.0123 (0.009-0.017)" in section and "(recommended)" in section
