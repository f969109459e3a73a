"""Diagnostics in words, with numbers, from records built by hand."""

import dataclasses

import numpy as np
import pytest

from lrlab.core.diagnostics import (
    best_configuration,
    diagnose,
    divergence,
    overfitting,
    schedule_decay,
    stuck_check,
    stuck_runs,
    widening_gap,
)
from lrlab.core.grouping import group_runs
from lrlab.formatting import num

from ._records import epochs, run, steps

RNG = np.random.default_rng(0)


def _converging(n=300):
    t = np.arange(n)
    return 0.1 + 2.2 * np.exp(-t / 40) + 0.01 * RNG.standard_normal(n), 0.3 + 2.0 * np.exp(-t / 40)


def _stuck(n=300):
    t = np.arange(n)
    loss = 0.9 + 1.4 * np.exp(-t / 15) + 0.08 * RNG.standard_normal(n)
    return loss, 2.5 + 0.3 * np.abs(RNG.standard_normal(n))


def _slow(n=300):
    return 2.3 - 0.0002 * np.arange(n) + 0.01 * RNG.standard_normal(n), np.full(n, 2.4)


def test_best_configuration_reports_margin_and_whether_it_beats_seed_noise():
    runs = [run("a0", 0.1, 0), run("a1", 0.1, 1), run("b0", 0.5, 0), run("b1", 0.5, 1)]
    eps = {
        "a0": epochs("a0", [1, 0.5], [1, 0.30], [0.2, 0.10]),
        "a1": epochs("a1", [1, 0.5], [1, 0.32], [0.2, 0.12]),
        "b0": epochs("b0", [1, 0.5], [1, 0.50], [0.3, 0.20]),
        "b1": epochs("b1", [1, 0.5], [1, 0.54], [0.3, 0.24]),
    }
    f = best_configuration(group_runs(runs), eps)
    assert f.kind == "best"
    # A classifier is ranked by its validation error (the one scorer, lrlab.core.ranking).
    assert f.numbers["metric"] == "val_error"
    assert f.numbers["best"] == pytest.approx(0.11)
    assert f.numbers["runner_up"] == pytest.approx(0.22)
    assert f.numbers["margin"] == pytest.approx(0.11)
    assert f.numbers["seed_spread"] == pytest.approx(0.04)
    assert "lr=0.1" in f.message and "larger than the spread over seeds" in f.message
    assert f.numbers["best_val_loss"] == pytest.approx(0.31)


def test_a_language_model_is_ranked_by_validation_loss():
    runs = [run("a0", 0.1, 0), run("b0", 0.5, 0)]
    eps = {"a0": epochs("a0", [1, 0.5], [1, 0.30]), "b0": epochs("b0", [1, 0.5], [1, 0.50])}
    f = best_configuration(group_runs(runs), eps)
    assert f.numbers["metric"] == "val_loss" and f.numbers["best"] == pytest.approx(0.30)


def test_a_diverged_configuration_is_never_best():
    runs = [run("a", 0.1), run("b", 5.0, status="diverged", diverged_step=3)]
    eps = {"a": epochs("a", [1, 0.5], [1, 0.9]), "b": epochs("b", [0.1], [0.1])}
    assert best_configuration(group_runs(runs), eps).numbers["best"] == pytest.approx(0.9)


def test_divergence_names_the_lr_where_it_starts_and_the_largest_stable_lr():
    runs = [run("a", 0.01), run("b", 0.1), run("c", 1.0, status="diverged", diverged_step=40),
            run("d", 3.0, status="diverged", diverged_step=7)]  # fmt: skip
    [f] = divergence(group_runs(runs))
    assert f.numbers["divergence_lr"] == 1.0
    assert f.numbers["largest_stable_lr"] == 0.1
    assert f.numbers["diverged_runs"] == 2 and f.numbers["first_diverged_step"] == 7
    assert "divergence starts at lr=1" in f.message


def test_stuck_run_has_a_plateau_with_a_large_gradient_and_a_converging_run_does_not():
    conv, stuck = _converging(), _stuck()
    ok = stuck_check(steps("a", *conv))
    bad = stuck_check(steps("b", *stuck), best_level=0.1)
    assert not ok.stuck and ok.grad_ratio < 0.5
    assert bad.stuck and bad.relative_drop < 0.05 and bad.grad_ratio > 0.9


def test_stuck_runs_above_the_best_lr_oscillate_and_below_it_are_slow():
    runs = [run("slow", 0.001), run("good", 0.1), run("stuck", 0.8)]
    data = {"slow": steps("slow", *_slow()), "good": steps("good", *_converging()),
            "stuck": steps("stuck", *_stuck())}  # fmt: skip
    eps = {
        "slow": epochs("slow", [2.3, 2.29], [2.3, 2.29]),
        "good": epochs("good", [1.0, 0.2], [1.0, 0.25]),
        "stuck": epochs("stuck", [1.2, 1.0], [1.2, 1.0]),
    }
    found = {f.run_ids[0]: f for f in stuck_runs(group_runs(runs), data, eps)}
    assert set(found) == {"slow", "stuck"}
    assert found["stuck"].kind == "stuck" and "oscillate" in found["stuck"].message
    assert found["slow"].kind == "slow" and found["slow"].numbers["family_best_lr"] == 0.1
    assert found["stuck"].numbers["loss_level"] > 1.5 * found["stuck"].numbers["best_level"]


def _rising(n=300):
    """Falls, then climbs back over the last third (no NaN, no 4x blow-up)."""
    t = np.arange(n)
    loss = 0.6 + 1.6 * np.exp(-t / 30) + np.where(t > 200, 0.02 * (t - 200), 0.0) + 0.01 * RNG.standard_normal(n)
    return loss, 2.0 + 0.2 * np.abs(RNG.standard_normal(n))


def test_a_loss_that_climbs_late_is_unstable_not_stuck():
    rising = stuck_check(steps("r", *_rising()), best_level=0.1)
    assert rising.rising and not rising.stuck and rising.relative_drop < -0.05
    runs = [run("good", 0.1), run("up", 0.8)]
    data = {"good": steps("good", *_converging()), "up": steps("up", *_rising())}
    eps = {"good": epochs("good", [1.0, 0.2], [1.0, 0.25]), "up": epochs("up", [1.2, 2.0], [1.2, 2.0])}
    [f] = stuck_runs(group_runs(runs), data, eps)
    assert f.kind == "unstable" and f.run_ids == ("up",)
    # The window's first quarter (median ~0.73) to its last quarter (median ~2.35): about +220%.
    assert 1.5 < f.numbers["rise"] < 3.0
    assert f"rose by {f.numbers['rise']:.0%}" in f.message and "improves by only" not in f.message
    assert not stuck_check(steps("g", *_converging())).rising


def test_widening_gap_flags_only_a_trailing_rise_of_three_epochs_or_more():
    x = np.arange(1, 9)
    assert widening_gap(x, np.array([0.3, 0.2, 0.1, 0.1, 0.12, 0.15, 0.2, 0.3])).onset_epoch == 4
    assert widening_gap(x, np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.12, 0.15])) is None  # two rises
    assert widening_gap(x, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2])) is None  # closing again
    rising_to_zero = np.array([-0.8, -0.6, -0.4, -0.3, -0.2, -0.1, 0.01, 0.02])
    assert widening_gap(x, rising_to_zero) is None  # learning, not overfitting
    small = np.array([0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    assert widening_gap(x, small, val_loss=np.full(8, 2.0)) is None  # 0.07 of 2.0 nats: noise
    assert widening_gap(x, small, val_loss=np.full(8, 0.5)).onset_epoch == 2


def test_overfitting_reports_onset_and_the_best_validation_epoch():
    train = [2.0, 1.0, 0.6, 0.4, 0.3, 0.2]
    val = [2.0, 1.1, 0.8, 0.85, 0.95, 1.1]
    [f] = overfitting(group_runs([run("a", 0.01)]), {"a": epochs("a", train, val)})
    assert f.numbers["onset_epoch"] == 2 and f.numbers["best_val_epoch"] == 3
    assert f.numbers["gap_at_end"] == pytest.approx(0.9)


def test_schedule_decay_flags_less_than_100x_from_recorded_lrs():
    cos = run("cos", 0.1, schedule="cosine(lr=0.1, total_steps=300, final_lr=0.0001)")
    flat = run("flat", 0.1, schedule="cosine(lr=0.1, total_steps=300, final_lr=0.05)")
    lr_cos = 0.0001 + 0.0999 * (1 + np.cos(np.pi * np.arange(300) / 299)) / 2
    data = {"cos": steps("cos", *_converging(), lr=lr_cos), "flat": steps("flat", *_converging())}
    [f] = schedule_decay(group_runs([cos, flat]), data)
    assert f.run_ids == ("flat",) and f.numbers["factor"] == pytest.approx(1.0)
    assert "100x" in f.message


def test_a_constant_lr_baseline_gets_no_note_that_it_does_not_decay():
    """A constant LR does not decay by design: saying so once per baseline is noise."""
    flat = run("flat", 0.1)
    assert schedule_decay(group_runs([flat]), {"flat": steps("flat", *_converging())}) == []


def test_schedule_decay_of_a_diverged_run_comes_from_its_schedule():
    r = run("d", 0.1, status="diverged", diverged_step=5, schedule="step_decay(lr=0.1, step_size=30)")
    r.extras.update({"total_steps": 50, "steps_per_epoch": 30})
    [f] = schedule_decay(group_runs([r]), {"d": steps("d", [2.0] * 6, [1.0] * 6)})
    assert f.numbers["factor"] == pytest.approx(10.0)
    assert "(schedule)" in f.message


def test_diagnose_returns_findings_in_reading_order():
    runs = [run("a", 0.1), run("b", 9.0, status="diverged", diverged_step=2)]
    eps = {"a": epochs("a", [1.0, 0.5], [1.0, 0.6])}
    kinds = [f.kind for f in diagnose(group_runs(runs), eps, {})]
    assert kinds[:2] == ["best", "divergence"]


def test_schedule_decay_reads_the_group_that_trains_not_a_frozen_one():
    cos = run("ft", 0.1, schedule="cosine(lr=0.1, total_steps=300, final_lr=0.0001)", lr_mult={"conv*": 0.0})
    lr_head = 0.0001 + 0.0999 * (1 + np.cos(np.pi * np.arange(300) / 299)) / 2
    series = steps("ft", *_converging(), lr=0.0)
    groups = np.stack([np.zeros(300), lr_head], axis=1)  # group 0 frozen by lr_mult 0
    series = dataclasses.replace(series, lrs=groups)
    assert schedule_decay(group_runs([cos]), {"ft": series}) == []  # cosine falls 1000x: no finding


def test_a_divergence_note_names_the_peak_lr_of_the_schedule_not_its_base_lr():
    """A cyclic run whose config LR is 0.02864 but whose schedule peaks at 0.2864 diverged at 0.2864."""
    cyc = "cyclic(base_lr=0.07159, max_lr={peak}, step_size=38)"
    runs = [
        run("ok", 0.01, schedule=cyc.format(peak=0.1)),
        run("bad", 0.02864, status="diverged", diverged_step=3, schedule=cyc.format(peak=0.2864)),
    ]
    for r in runs:
        r.extras["total_steps"] = 230
    [f] = divergence(group_runs(runs))
    assert f.numbers["divergence_lr"] == pytest.approx(0.2864)
    assert "divergence starts at lr=0.2864" in f.message and "0.02864" not in f.message.split("starts at")[1]


def test_overfitting_with_the_lowest_validation_loss_in_the_last_epoch_never_says_stop_earlier():
    """A gap that widens while the validation loss still falls to the end: stopping earlier
    would not help, and the note must not say it would."""
    train = [2.0, 1.0, 0.5, 0.3, 0.2, 0.12, 0.06, 0.02]
    val = [2.0, 1.05, 0.6, 0.45, 0.4, 0.36, 0.33, 0.31]
    [f] = overfitting(group_runs([run("a", 0.01, epochs=8)]), {"a": epochs("a", train, val)})
    assert f.numbers["best_val_epoch"] == f.numbers["last_epoch"] == 8
    assert "stop earlier" not in f.message and "would not help" in f.message
    val_up = [2.0, 1.05, 0.6, 0.45, 0.4, 0.42, 0.45, 0.5]
    [g] = overfitting(group_runs([run("b", 0.01, epochs=8)]), {"b": epochs("b", train, val_up)})
    assert g.numbers["best_val_epoch"] == 5 and "stop earlier" in g.message


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param("cyclic(base_lr=0.01, max_lr=0.1, step_size=50)", id="cyclic"),
        pytest.param("step_decay(lr=0.1, step_size=100, gamma=0.1)", id="designed-100x"),
    ],
)
def test_schedules_that_meet_their_design_get_no_decay_note(schedule):
    """A cycle between two bounds does not decay by design; a step decay of 0.1 twice is the
    100x of the rule (99.99x after rounding): neither is worth a note."""
    from lrlab.schedules import parse

    lr = np.asarray(parse(schedule)(np.arange(300)), dtype=np.float64)
    r = run("r", 0.1, schedule=schedule)
    assert schedule_decay(group_runs([r]), {"r": steps("r", *_converging(), lr=lr)}) == []


def test_diagnostics_of_a_study_are_grouped_one_line_per_kind_with_counts():
    """A study-shaped sweep (54 runs): many findings, one folded group per kind, whose count
    is the number of findings of that kind and whose runs are theirs."""
    import re

    from tests.report.synthetic import study_sweep

    from lrlab.report.data import build_report_data
    from lrlab.report.html import _diagnostics

    sw = study_sweep(lrs=(0.1, 0.6), epochs=6, steps_per_epoch=40)
    data = build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)
    findings = [f for f in data.findings if f.kind != "best"]
    page = _diagnostics(data)
    kinds = re.findall(r'<details class="kind" data-kind="([a-z_]+)">', page)
    assert kinds == list(dict.fromkeys(f.kind for f in findings)) and len(kinds) == len(set(kinds))
    from lrlab.core.diagnostics import kind_summary
    from lrlab.plot.interactive import esc

    for kind in kinds:
        items = [f for f in findings if f.kind == kind]
        runs = len({rid for f in items for rid in f.run_ids})
        line = kind_summary(kind, items, data.configs, data.planned_steps)
        assert line.startswith(f"{runs} run") and f"{esc(line)} <span" in page
        assert f"({len(items)} note(s) below)" in page
    assert page.count('<li class="warning"') + page.count('<li class="info"') == len(findings)
    diverged = {r.id for r in sw.runs if r.status == "diverged"}
    assert diverged and {rid for f in findings if f.kind == "divergence" for rid in f.run_ids} == diverged
    # No note restates the study's design: constant and cyclic schedules are not told they do not decay.
    decay = [f for f in findings if f.kind == "schedule_decay"]
    assert not any("constant" in f.message or "cyclic" in f.message for f in decay)
    # Every divergence note names the peak its schedule reached (the cyclic ones: 3x the LR).
    by_id = {r.id: r for r in sw.runs}
    for f in (f for f in findings if f.kind == "divergence"):
        schedule = by_id[f.run_ids[0]].config.schedule
        peak = getattr(schedule, "max_lr", None) or by_id[f.run_ids[0]].config.lr
        assert f.numbers["divergence_lr"] == pytest.approx(peak)
        assert f"lr={num(peak)}" in f.message
