"""The recommendation: best configuration, margins, ties, nothing finished."""

import pytest

from lrlab.core.records import EpochRecord, RunRecord
from lrlab.schedules import parse
from lrlab.study.recommend import recommend


def _run(run_id, optimizer, schedule, lr, seed=0, status="done"):
    config = {"task": "t", "optimizer": optimizer, "schedule": schedule, "lr": lr, "seed": seed}
    return RunRecord(id=run_id, sweep="s", status=status, config=config, seed=seed)


def _epoch(run_id, val_error, val_loss):
    return [EpochRecord(run_id, 1, 10, 1.0, val_loss, val_error, 1 - val_error, 1.0)]


def test_best_runner_up_and_constant_margins_use_seed_means():
    runs = [
        _run("a0", "sgd", "cosine(lr=0.1, total_steps=10)", 0.1, 0),
        _run("a1", "sgd", "cosine(lr=0.1, total_steps=10)", 0.1, 1),
        _run("b0", "adam", "constant(lr=0.01)", 0.01, 0),
        _run("c0", "sgd", "constant(lr=0.1)", 0.1, 0),
        _run("d0", "sgd", "constant(lr=10.0)", 10.0, 0, status="diverged"),
    ]
    epochs = {
        "a0": _epoch("a0", 0.02, 0.1),
        "a1": _epoch("a1", 0.04, 0.12),
        "b0": _epoch("b0", 0.05, 0.2),
        "c0": _epoch("c0", 0.08, 0.3),
    }
    rec = recommend(runs, epochs, {parse("cosine(lr=0.1, total_steps=10)"): "cosine"})
    assert rec.metric == "val_error"
    assert (rec.best.optimizer, rec.best.schedule_name, rec.best.seeds) == ("sgd", "cosine", 2)
    assert rec.best.score == pytest.approx(0.03)
    assert rec.margin_over_runner_up == pytest.approx(0.02)
    assert rec.best_constant.optimizer == "adam"
    assert rec.margin_over_constant == pytest.approx(0.02)
    assert rec.diverged == 1


def test_equal_errors_are_broken_by_validation_loss():
    runs = [_run("a", "sgd", "constant(lr=0.1)", 0.1), _run("b", "adam", "constant(lr=0.01)", 0.01)]
    rec = recommend(runs, {"a": _epoch("a", 0.05, 0.3), "b": _epoch("b", 0.05, 0.2)})
    assert rec.best.optimizer == "adam"


def test_language_models_are_scored_by_validation_loss():
    runs = [_run("a", "adam", "constant(lr=0.001)", 0.001)]
    epochs = {"a": [EpochRecord("a", 1, 10, 2.0, 1.7, None, None, 1.0)]}
    rec = recommend(runs, epochs)
    assert rec.metric == "val_loss" and rec.best.score == pytest.approx(1.7) and rec.runner_up is None


def test_nothing_finished_is_an_error():
    with pytest.raises(ValueError, match="no finished runs"):
        recommend([_run("a", "sgd", "constant(lr=1.0)", 1.0, status="diverged")], {})


def test_a_configuration_with_a_diverged_seed_ranks_after_every_one_without():
    from lrlab.core.ranking import rank

    runs = [
        _run("a0", "sgd", "constant(lr=0.5)", 0.5, 0),
        _run("a1", "sgd", "constant(lr=0.5)", 0.5, 1),
        _run("a2", "sgd", "constant(lr=0.5)", 0.5, 2, status="diverged"),
        _run("b0", "sgd", "constant(lr=0.1)", 0.1, 0),
        _run("b1", "sgd", "constant(lr=0.1)", 0.1, 1),
        _run("b2", "sgd", "constant(lr=0.1)", 0.1, 2),
        _run("c0", "sgd", "constant(lr=0.01)", 0.01, 0),
    ]
    epochs = {"a0": _epoch("a0", 0.01, 0.1), "a1": _epoch("a1", 0.01, 0.1), "b0": _epoch("b0", 0.05, 0.2),
              "b1": _epoch("b1", 0.06, 0.2), "b2": _epoch("b2", 0.07, 0.2), "c0": _epoch("c0", 0.09, 0.3)}  # fmt: skip
    ranked = rank(runs, epochs)
    # lr=0.5 has the best mean over the seeds that finished (0.01) but blew up on seed 2
    assert [(e.config.lr, e.diverged) for e in ranked] == [(0.1, 0), (0.01, 0), (0.5, 1)]
    assert ranked[-1].mean == pytest.approx(0.01) and ranked[-1].seeds == 2
    rec = recommend(runs, epochs)
    assert rec.best.lr == 0.1 and rec.best.diverged == 0
    assert rec.candidates[-1].lr == 0.5 and rec.candidates[-1].diverged == 1
    # given only the finished runs, the ranker cannot know: it ranks by the mean, as before
    assert rank([r for r in runs if r.status == "done"], epochs)[0].config.lr == 0.5


def test_the_verdict_says_when_the_best_constant_lr_has_fewer_seeds_than_the_recommendation():
    from lrlab.study.run import StudyResult
    from lrlab.study.summary import verdict_lines

    runs = [
        _run("a0", "sgd", "cosine(lr=0.1, total_steps=10)", 0.1, 0),
        _run("a1", "sgd", "cosine(lr=0.1, total_steps=10)", 0.1, 1),
        _run("b0", "adam", "constant(lr=0.01)", 0.01, 0),
    ]
    epochs = {"a0": _epoch("a0", 0.02, 0.1), "a1": _epoch("a1", 0.04, 0.12), "b0": _epoch("b0", 0.05, 0.2)}
    names = {parse("cosine(lr=0.1, total_steps=10)"): "cosine"}
    rec = recommend(runs, epochs, names)
    result = StudyResult("study-t-small", "t", "small", {}, ["s"], runs, names, rec, total_steps=10, epochs=1,
                         extras={"finalists": 1, "seeds": [0, 1]})  # fmt: skip
    line = next(x for x in verdict_lines(result) if x.startswith("margin over the best constant LR"))
    assert line == "margin over the best constant LR (adam, lr=0.01, 1 seed(s) against 2): 0.02"
