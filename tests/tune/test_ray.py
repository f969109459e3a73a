"""``backend="ray"``: trials as Ray tasks on a local Ray instance, with Optuna's ask/tell;
the same store, the same runs and scores as the local backend."""

from __future__ import annotations

import pytest

from lrlab.store import RunStatus, Store
from lrlab.tune import tune

from .conftest import tiny_spec

pytestmark = pytest.mark.slow


def test_a_ray_address_with_no_cluster_fails_in_one_line(tmp_path):
    pytest.importorskip("ray")
    store = Store(tmp_path / "lrlab.db")
    with pytest.raises(ValueError, match=r"no Ray cluster answers at 127\.0\.0\.1:1") as info:
        tune(tiny_spec("noray"), store, backend="ray", address="127.0.0.1:1")
    assert "\n" not in str(info.value)
    assert store.runs() == [] and store.sweeps() == []


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_backends_trials_runs_and_scores(tmp_path, ray_instance):
    spec = tiny_spec("ray", trials=4, pruner="none", sampler="random")
    local = tune(spec, Store(tmp_path / "local.db"), storage=f"sqlite:///{tmp_path / 'local-optuna.db'}")
    remote = tune(spec, Store(tmp_path / "ray.db"), backend="ray", jobs=2,
                  storage=f"sqlite:///{tmp_path / 'ray-optuna.db'}")  # fmt: skip
    by_number = {t.number: t for t in local.trials}
    assert len(remote.trials) == 4
    for trial in remote.trials:  # the random sampler draws in ask order: the same trials
        twin = by_number[trial.number]
        assert (trial.run_ids, trial.state, trial.value) == (twin.run_ids, twin.state, twin.value)
    runs = Store(tmp_path / "ray.db").runs(sweep="ray")
    assert runs and all(r.extras.get("backend") == "ray" for r in runs if r.status is RunStatus.DONE)
    assert remote.recommendation.best.run_ids == local.recommendation.best.run_ids


def test_ray_prunes_through_the_shared_optuna_storage(tmp_path, ray_instance):
    spec = tiny_spec("ray-prune", trials=10, pruner="halving", sampler="random", epochs=4)
    result = tune(spec, Store(tmp_path / "ray.db"), backend="ray", jobs=2,
                  storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # fmt: skip
    store = Store(tmp_path / "ray.db")
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert pruned, [t.state for t in result.trials]
    for trial in pruned:
        run = store.run(trial.run_ids[0])
        assert run.error.startswith("Pruned:") and store.step_count(run.id) < 16


