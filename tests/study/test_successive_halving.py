"""Successive halving and the noise-aware verdict: who is promoted, who wins, when it is a tie."""

import math

import numpy as np
import pytest

from lrlab.core.records import EpochRecord, RunRecord
from lrlab.schedules import parse
from lrlab.study.plan import BUDGETS
from lrlab.study.recommend import NOISE_SE, margin_lines, paired_noise, recommend
from lrlab.study.run import promote

SCHEDULES = {
    "constant": "constant(lr={lr})",
    "cosine": "cosine(lr={lr}, total_steps=10)",
    "step": "step_decay(lr={lr}, step_size=4)",
}


def _run(run_id, schedule, lr, seed=0, status="done", optimizer="sgd"):
    config = {"task": "t", "optimizer": optimizer, "schedule": schedule, "lr": lr, "seed": seed}
    return RunRecord(id=run_id, sweep="s", status=status, config=config, seed=seed)


def _epoch(run_id, val_error, val_loss=None):
    val_loss = 0.1 + val_error if val_loss is None else val_loss
    return [EpochRecord(run_id, 1, 10, 1.0, val_loss, val_error, 1 - val_error, 1.0)]


@pytest.mark.parametrize(("configs", "finalists"), [(81, 21), (54, 14), (27, 7), (12, 3), (8, 3), (2, 2), (1, 1)])
def test_the_best_quarter_but_at_least_three_get_every_seed(configs, finalists):
    assert BUDGETS["small"].finalists(configs) == finalists
    assert BUDGETS["small"].seeds == (0, 1, 2)


def test_promote_takes_the_best_quarter_of_the_finished_configurations_best_first():
    errors = [0.09, 0.02, 0.05, 0.01, 0.07, 0.03, 0.08, 0.04, 0.06, 0.10, 0.11, 0.12, 0.13]
    runs = [_run(f"r{i}", f"constant(lr={0.01 * (i + 1)})", 0.01 * (i + 1)) for i in range(len(errors))]
    runs += [_run("x0", "constant(lr=9.0)", 9.0, status="diverged"), _run("x1", "constant(lr=8.0)", 8.0,
                                                                           status="diverged")]  # fmt: skip
    epochs = {f"r{i}": _epoch(f"r{i}", e) for i, e in enumerate(errors)}
    chosen = promote(runs, epochs, BUDGETS["small"])
    # 13 configurations finished (the diverged ones are out): ceil(13 / 4) = 4 finalists
    assert [r.id for r in chosen] == ["r3", "r1", "r5", "r7"]
    assert promote(runs[-2:], {}, BUDGETS["small"]) == []  # every run diverged: nobody to promote


def test_the_bracketing_s_extra_lrs_compete_for_the_first_rung_s_places_without_adding_any():
    errors = [0.09, 0.02, 0.05, 0.01, 0.07, 0.03, 0.08, 0.04, 0.06, 0.10, 0.11, 0.12, 0.13]
    first = [_run(f"r{i}", f"constant(lr={0.01 * (i + 1)})", 0.01 * (i + 1)) for i in range(len(errors))]
    extra_errors = [0.015, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # seven more LRs, one of them second best
    extra = [_run(f"b{i}", f"constant(lr={0.5 + 0.1 * i})", 0.5 + 0.1 * i) for i in range(len(extra_errors))]
    epochs = {f"r{i}": _epoch(f"r{i}", e) for i, e in enumerate(errors)}
    epochs |= {f"b{i}": _epoch(f"b{i}", e) for i, e in enumerate(extra_errors)}
    chosen = promote(first + extra, epochs, BUDGETS["small"], first)
    # 13 first-rung configurations finished: ceil(13 / 4) = 4 places, not ceil(20 / 4) = 5
    assert [r.id for r in chosen] == ["r3", "b0", "r1", "r5"]
    # without the first rung named, every finished configuration counts (the plan before bracketing)
    assert len(promote(first + extra, epochs, BUDGETS["small"])) == 5
    # a first rung that all diverged leaves the places to the extra LRs that finished
    dead = [_run(f"d{i}", f"constant(lr={9 + i})", 9.0 + i, status="diverged") for i in range(4)]
    assert [r.id for r in promote(dead + extra, epochs, BUDGETS["small"], dead)] == ["b0", "b1", "b2"]


def _three_seeds(prefix, schedule, lr, errors):
    runs = [_run(f"{prefix}{s}", schedule, lr, seed=s) for s in range(len(errors))]
    return runs, {f"{prefix}{s}": _epoch(f"{prefix}{s}", e) for s, e in enumerate(errors)}


def _study(a_errors, b_errors, lone_error=0.001):
    """Configuration ``a`` (step decay) and ``b`` (constant) with three seeds each, and a
    configuration ``c`` with one lucky seed that was not promoted."""
    ra, ea = _three_seeds("a", "step_decay(lr=0.1, step_size=4)", 0.1, a_errors)
    rb, eb = _three_seeds("b", "constant(lr=0.1)", 0.1, b_errors)
    rc, ec = _three_seeds("c", "cosine(lr=0.3, total_steps=10)", 0.3, [lone_error])
    runs = ra + rb + rc
    names = {parse("step_decay(lr=0.1, step_size=4)"): "step", parse("constant(lr=0.1)"): "constant",
             parse("cosine(lr=0.3, total_steps=10)"): "cosine"}  # fmt: skip
    finalists = {ra[0].configuration, rb[0].configuration}
    return recommend(runs, {**ea, **eb, **ec}, names, finalists=finalists, break_ties=True)


def test_a_margin_inside_the_paired_noise_is_a_tie_that_goes_to_the_simpler_schedule():
    a, b = [0.020, 0.040, 0.030], [0.035, 0.030, 0.040]  # means 0.030 and 0.035
    rec = _study(a, b)
    diffs = np.subtract(b, a)
    se = diffs.std(ddof=1) / math.sqrt(3)
    assert rec.top.schedule_name == "step" and rec.top.score == pytest.approx(0.03)
    assert rec.margin == pytest.approx(0.005) and rec.noise == pytest.approx(NOISE_SE * se)
    assert rec.noise == pytest.approx(0.015275, rel=1e-4) and rec.tie  # sd 0.01323 / sqrt(3) x 2
    # the tie goes to the constant LR (fewer knobs), though it scored second
    assert (rec.best.schedule_name, rec.runner_up.schedule_name) == ("constant", "step")
    assert rec.best.score == pytest.approx(0.035) and rec.best.sd == pytest.approx(0.005)
    # the lucky single seed of "cosine" (0.001) is not a finalist and cannot win
    assert rec.candidates[-1].schedule_name == "cosine" and not rec.candidates[-1].finalist
    lines = margin_lines(rec, "validation error")
    assert lines[0].startswith("ties with sgd + step peaking at lr=0.1 (0.03 ± 0.01): the margin 0.005 in validation error")
    assert "within the paired seed noise 0.01528 (2 standard errors" in lines[0] and "3 shared seeds" in lines[0]
    assert "step has fewer schedule knobs" not in lines[1] and "constant has fewer schedule knobs than step" in lines[1]


def test_a_margin_beyond_the_paired_noise_names_a_winner():
    a, b = [0.020, 0.040, 0.030], [0.031, 0.050, 0.042]  # b is worse on every seed by about 0.011
    rec = _study(a, b)
    margin, se, n = paired_noise(rec.top, rec.runner_up)
    assert n == 3 and margin == pytest.approx(0.011) and se == pytest.approx(np.std([0.011, 0.01, 0.012], ddof=1) / 3**0.5)
    assert not rec.tie and rec.best.schedule_name == "step"
    assert rec.margin_over_runner_up == pytest.approx(0.011)
    (line,) = margin_lines(rec, "validation error")
    assert line.startswith("beats the runner-up sgd + constant peaking at lr=0.1 (0.041 ± 0.0095) by 0.011")
    assert "more than the paired seed noise 0.001155" in line


def test_equal_per_seed_scores_are_a_tie_with_zero_noise():
    rec = _study([0.02, 0.03, 0.04], [0.02, 0.03, 0.04])
    assert rec.margin == 0 and rec.noise == 0 and rec.tie and rec.best.schedule_name == "constant"


def test_one_shared_seed_says_the_noise_is_unknown():
    runs = [_run("a", "constant(lr=0.1)", 0.1), _run("b", "constant(lr=0.2)", 0.2)]
    rec = recommend(runs, {"a": _epoch("a", 0.02), "b": _epoch("b", 0.03)}, break_ties=True)
    assert not rec.noise_known and not rec.tie and rec.best.lr == 0.1
    assert "too few to estimate the seed noise" in margin_lines(rec, "validation error")[0]


def test_higher_is_better_objectives_count_the_margin_the_right_way():
    from lrlab.core.records import Objective

    obj = Objective.for_kind("classification")
    assert obj.metric == "val_error"  # lower is better; margins are positive when the best is better
    rec = _study([0.01, 0.02, 0.03], [0.05, 0.07, 0.06])
    assert rec.margin > 0 and rec.margin_over_runner_up > 0 and rec.margin_over_constant > 0


def test_a_tie_never_goes_to_a_configuration_that_diverged_on_a_seed():
    # The constant LR has fewer knobs and ties on the seeds both finished, but its seed 2
    # diverged: its score is the mean of the two that finished, so the tie goes to step decay.
    ra, ea = _three_seeds("a", "step_decay(lr=0.1, step_size=4)", 0.1, [0.02, 0.03, 0.04])
    rb, eb = _three_seeds("b", "constant(lr=0.3)", 0.3, [0.02, 0.03])
    rb.append(_run("b2", "constant(lr=0.3)", 0.3, seed=2, status="diverged"))
    names = {parse("step_decay(lr=0.1, step_size=4)"): "step", parse("constant(lr=0.3)"): "constant"}
    finalists = {ra[0].configuration, rb[0].configuration}
    rec = recommend(ra + rb, {**ea, **eb}, names, finalists=finalists, break_ties=True)
    assert rec.tie and rec.margin == pytest.approx(0.0, abs=1e-15)
    assert (rec.best.schedule_name, rec.best.diverged) == ("step", 0)
    assert (rec.runner_up.schedule_name, rec.runner_up.diverged) == ("constant", 1)
    lines = margin_lines(rec, "validation error")
    assert "the margin 0 in validation error" in lines[0]  # equal scores say 0, not a rounding residue
    assert "constant at lr=0.3 diverged on 1 seed(s), step on none" in lines[1]
    # Without the diverged seed the constant LR, with fewer knobs, wins the same tie.
    clean = recommend(ra + rb[:2], {**ea, **eb}, names, finalists=finalists, break_ties=True)
    assert clean.tie and clean.best.schedule_name == "constant"
