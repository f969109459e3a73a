"""A real tune: Optuna (SQLite storage) over a real store, each trial an lrlab run."""

from __future__ import annotations

import optuna
import pytest

from lrlab.core.ranking import rank
from lrlab.store import RunStatus, Store
from lrlab.tune import load_tune, tune

from .conftest import tiny_spec


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    store = Store(root / "lrlab.db")
    spec = tiny_spec("engine", trials=8, sampler="tpe", pruner="hyperband", audit_pruned=2,
                     space={**tiny_spec()["space"],
                            "one_cycle": {"max_lr": {"from_finder": [0.3, 3]}, "pct_start": {"uniform": [0.1, 0.5]}}})
    result = tune(spec, store, out=root / "out")
    return root, store, spec, result


def test_every_trial_is_an_lrlab_run_tied_both_ways(tuned):
    root, store, _spec, result = tuned
    study = optuna.load_study(study_name="engine", storage=f"sqlite:///{root / 'optuna.db'}")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 8 == len(result.trials)
    for trial in finished:
        run = store.run(trial.user_attrs["run_id"])
        assert run.sweep == "engine"
        assert run.extras["tune"]["study"] == "engine"
        assert str(run.config.schedule) == trial.user_attrs["schedule"]
        assert run.config.optimizer == trial.user_attrs["optimizer"]
        if trial.state is optuna.trial.TrialState.COMPLETE and trial.user_attrs["diverged"]:
            assert run.status is RunStatus.DIVERGED and trial.value == 1.0  # scored as the untrained model
        elif trial.state is optuna.trial.TrialState.COMPLETE:
            epochs = store.epochs_for([run.id])
            assert trial.value == pytest.approx(rank([run], epochs)[0].mean, abs=0)
            assert [trial.intermediate_values[e.epoch] for e in epochs[run.id]] == pytest.approx(
                [e.val_error for e in epochs[run.id]])
    assert store.finder_results(sweep="engine")  # one range test per optimizer, for from_finder


def test_pruned_trials_stop_early_and_say_why(tuned):
    _root, store, _spec, result = tuned
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert result.bias.pruned == len(pruned)
    for trial in pruned:
        run = store.run(trial.run_ids[0])
        if trial.audit_value is None:
            assert run.status is RunStatus.FAILED and run.error.startswith("Pruned: by the hyperband pruner")
            assert store.step_count(run.id) < 12 and run.extras["pruned_epoch"] == len(store.epochs(run.id))
        else:  # audited: re-trained to full length
            assert run.status is RunStatus.DONE and store.step_count(run.id) == 12
    assert result.bias.audited == min(2, len(pruned))


def test_the_recommendation_is_the_one_rankings_best_over_full_length_runs(tuned):
    _root, store, _spec, result = tuned
    done = [r for r in result.runs if r.status is RunStatus.DONE]
    best = rank(done, store.epochs_for([r.id for r in done]))[0]
    assert result.recommendation.best.run_ids == best.run_ids
    assert result.recommendation.best.score == best.mean
    steps = sum(t.steps for t in result.trials)
    finder = sum(len(f.lrs) for f in store.finder_results(sweep="engine"))
    assert result.compute_steps >= steps + finder


def test_the_outputs_are_written(tuned):
    root, _store, _spec, result = tuned
    out = root / "out"
    page = (out / "tune.html").read_text()
    for part in ("fig-history", "fig-parallel", "fig-schedule", "LRScheduler", "pruned"):
        assert part in page
    assert (out / "runs.html").stat().st_size > 10_000
    names = {p.name for p in result.files.figures}
    assert {"tune_history.png", "tune_schedule.png"} <= names
    assert str(result.recommendation.best.schedule) in (out / "recommendation.md").read_text()


def test_resume_with_the_budget_spent_trains_nothing_and_changes_nothing(tuned):
    _root, store, spec, result = tuned
    before = {r.id: (r.status, r.finished_at, store.step_count(r.id)) for r in store.runs(sweep="engine")}
    again = tune(spec, store, resume=True)
    after = {r.id: (r.status, r.finished_at, store.step_count(r.id)) for r in store.runs(sweep="engine")}
    assert after == before
    assert [t.number for t in again.trials] == [t.number for t in result.trials]


def test_a_second_tune_of_the_same_name_needs_resume(tuned):
    _root, store, spec, _result = tuned
    with pytest.raises(ValueError, match="pass --resume"):
        tune(spec, store)
    changed = {**spec, "space": {"cosine": {"lr": {"log": [0.01, 0.1]}}}}
    with pytest.raises(ValueError, match="changed since the tune began"):
        tune(changed, store, resume=True)


def test_a_larger_budget_on_resume_adds_only_new_trials(tmp_path):
    store = Store(tmp_path / "lrlab.db")
    spec = tiny_spec("grow", trials=3, pruner="none")
    first = tune(spec, store)
    stamps = {r.id: r.finished_at for r in first.runs}
    second = tune({**spec, "trials": 5}, store, resume=True)
    assert len(second.trials) == 5
    assert len({t.run_ids for t in second.trials}) == 5  # the resumed sampler drew new configurations
    for run in store.runs(ids=list(stamps)):
        assert run.finished_at == stamps[run.id]  # finished trials were not trained again


def test_load_tune_reads_the_examples():
    for name in ("tune-digits", "tune-chars", "tune-pbt"):
        spec = load_tune(f"examples/{name}.toml")
        assert spec.name
