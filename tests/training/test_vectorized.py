"""Vectorised groups: grouping, equivalence with runs trained alone, divergence, the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.run_configs import typed_config

from lrlab.core.records import RunConfig
from lrlab.store.sqlite import Store
from lrlab.training.loop import RunProgress, train_run
from lrlab.training.vectorized import (
    group_key,
    plan_groups,
    run_vectorized,
    train_vectorized,
    why_not_vectorized,
)

TINY = {"train_size": 256, "val_size": 128}


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(task="digits-mlp", **overrides: Any) -> RunConfig:
    config: dict[str, Any] = {
        "task": task,
        "task_options": dict(TINY, **({"hidden": 32} if task == "digits-mlp" else {})),
        "optimizer": "sgd(momentum=0.9)",
        "schedule": "cosine(lr={lr}, total_steps={total_steps})",
        "lr": 0.1,
        "seed": 0,
        "epochs": 2,
        "batch_size": 32,
        "divergence_factor": 4.0,
    }
    config.update(overrides)
    return typed_config(config)


@dataclass(frozen=True)
class Plan:
    id: str
    config: RunConfig


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs.db")


# ---------------------------------------------------------------- grouping


def test_groups_differ_only_in_lr_schedule_momentum_and_seed():
    a = _config()
    assert group_key(a) == group_key(_config(lr=0.3, seed=4, schedule="constant(lr=0.3)"))
    assert group_key(a) == group_key(_config(momentum="cosine(lr=0.9, total_steps=10)"))
    for other in (
        _config(optimizer="adam"),
        _config(epochs=3),
        _config(batch_size=16),
        _config("digits-linear"),
    ):
        assert group_key(a) != group_key(other)
    # The default is spelled once (RunConfig); None for the divergence factor means "off".
    default = RunConfig(task=a.task, lr=a.lr, optimizer=a.optimizer, epochs=a.epochs, batch_size=a.batch_size,
                        task_options=a.task_options)  # fmt: skip
    assert group_key(default) == group_key(a) != group_key(_config(divergence_factor=None))
    assert group_key(_config(lr_mult={"0.*": 0.1})) is None
    assert "lr_mult" in why_not_vectorized(_config(lr_mult={"0.*": 0.1}))
    assert "rmsprop" in why_not_vectorized(_config(optimizer="rmsprop"))


def test_plan_groups_splits_big_groups_evenly_and_keeps_one_data_seed():
    plans = [Plan(f"r{i}", _config(lr=0.01 * (i + 1), seed=i % 2 + 3)) for i in range(17)]
    plans.append(Plan("adam", _config(optimizer="adam")))
    plans.append(Plan("rms", _config(optimizer="rmsprop")))
    groups, alone = plan_groups(plans, max_group=8)
    assert sorted(len(members) for _, members in groups) == [5, 6, 6]
    assert {seed for seed, _ in groups} == {3}  # the whole group's smallest seed, in every part
    assert [p.id for p in alone] == ["adam", "rms"]
    assert sum(len(m) for _, m in groups) + len(alone) == len(plans)
    groups, alone = plan_groups(plans, max_group=None)
    assert [len(m) for _, m in groups] == [17]
    with pytest.raises(ValueError, match="max_group"):
        plan_groups(plans, max_group=0)


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.tuples(
            st.sampled_from([0.01, 0.1, 1.0]),
            st.sampled_from(["sgd(momentum=0.9)", "adam", "rmsprop"]),
            st.sampled_from([16, 32]),
            st.integers(0, 3),
        ),
        max_size=30,
    ),
    max_group=st.integers(1, 7),
)
def test_property_plan_groups_is_a_partition_into_compatible_groups(runs, max_group):
    plans = [
        Plan(f"r{i}", _config(lr=lr, optimizer=opt, batch_size=bs, seed=seed))
        for i, (lr, opt, bs, seed) in enumerate(runs)
    ]
    groups, alone = plan_groups(plans, max_group=max_group)
    seen = [p.id for _, members in groups for p in members] + [p.id for p in alone]
    assert sorted(seen) == sorted(p.id for p in plans)  # every run exactly once
    for data_seed, members in groups:
        assert 2 <= len(members) <= max_group
        assert len({group_key(p.config) for p in members}) == 1
        same = [p for p in plans if group_key(p.config) == group_key(members[0].config)]
        assert data_seed == min(p.config.seed for p in same)
    assert all(p.config.optimizer != "rmsprop" for _, members in groups for p in members)


def test_train_vectorized_refuses_mixed_groups(store):
    with pytest.raises(ValueError, match="differs"):
        train_vectorized([_config(), _config(optimizer="adam")], store, ["a", "b"])
    with pytest.raises(ValueError, match="equal length"):
        train_vectorized([_config()], store, ["a", "b"])
    with pytest.raises(ValueError, match="mode must be"):
        train_vectorized([_config()], store, ["a"], mode="fast")
    with pytest.raises(ValueError, match="device"):
        train_vectorized([_config()], store, ["a"], device="tpu")


def test_a_group_of_one_is_the_run_alone(store):
    (record,) = train_vectorized([_config(epochs=1)], store, ["v"])
    train_run(_config(epochs=1), store, "s")
    assert record.extras["vectorized"] == 1
    assert store.epochs("v")[-1].val_loss == pytest.approx(store.epochs("s")[-1].val_loss, rel=1e-5)


# ---------------------------------------------------------------- equivalence


@pytest.mark.parametrize(
    ("task", "optimizer", "lrs"),
    [
        ("digits-linear", "sgd(momentum=0.9)", [0.01, 0.1, 0.5]),
        ("digits-mlp", "sgd(momentum=0.9, nesterov=true, weight_decay=0.0005)", [0.01, 0.05, 0.2]),
        ("digits-mlp", "adam", [1e-4, 1e-3, 1e-2]),
        ("digits-mlp", "adamw(weight_decay=0.05)", [3e-4, 3e-3]),
        ("digits-cnn", "sgd(momentum=0.9)", [0.01, 0.1]),
    ],
)
def test_members_match_the_same_runs_trained_alone(store, task, optimizer, lrs):
    options = {"channels": 4} if task == "digits-cnn" else {}
    configs = [
        _config(task, lr=lr, optimizer=optimizer, task_options={**_config(task).task_options, **options})
        for lr in lrs
    ]
    records = train_vectorized(configs, store, [f"v{i}" for i in range(len(lrs))])
    assert [r.status for r in records] == ["done"] * len(lrs)
    assert records[0].extras["vectorized_mode"] == ("vmap" if task == "digits-cnn" else "bmm")
    for i, config in enumerate(configs):
        train_run(config, store, f"s{i}")
        vec, alone = store.epochs(f"v{i}"), store.epochs(f"s{i}")
        assert len(vec) == len(alone) == 2
        assert vec[-1].val_loss == pytest.approx(alone[-1].val_loss, rel=1e-3)
        assert vec[-1].val_accuracy == pytest.approx(alone[-1].val_accuracy, abs=1 / 128 + 1e-9)
        assert vec[-1].train_loss == pytest.approx(alone[-1].train_loss, rel=1e-3)
        sv, sa = store.steps(f"v{i}"), store.steps(f"s{i}")
        np.testing.assert_array_equal(sv.step, sa.step)
        np.testing.assert_array_equal(sv.epoch, sa.epoch)
        np.testing.assert_allclose(sv.lr, sa.lr, rtol=1e-12)
        np.testing.assert_allclose(sv.momentum, sa.momentum, rtol=1e-12)
        np.testing.assert_allclose(sv.loss, sa.loss, rtol=1e-3)
        np.testing.assert_allclose(sv.grad_norm, sa.grad_norm, rtol=1e-3)


def test_momentum_schedules_and_other_seeds(store):
    """One-cycle LR and momentum per member; a member with another seed keeps its own
    weights but the group's batches (the data seed is the smallest seed)."""
    one_cycle = {"schedule": "one_cycle(max_lr={lr}, total_steps={total_steps})",
                 "momentum": "cosine(lr=0.95, total_steps={total_steps}, final_lr=0.85)"}  # fmt: skip
    configs = [_config(lr=0.1, seed=0, **one_cycle), _config(lr=0.3, seed=0, **one_cycle),
               _config(lr=0.1, seed=5)]  # fmt: skip
    records = train_vectorized(configs, store, ["a", "b", "c"])
    assert all(r.extras["data_seed"] == 0 and r.extras["vectorized"] == 3 for r in records)
    train_run(configs[1], store, "b-alone")
    steps, alone = store.steps("b"), store.steps("b-alone")
    np.testing.assert_allclose(steps.momentum, alone.momentum, rtol=1e-12)
    assert steps.momentum[0] == pytest.approx(0.95) and steps.momentum[-1] < 0.86
    assert store.epochs("b")[-1].val_loss == pytest.approx(store.epochs("b-alone")[-1].val_loss, rel=1e-3)
    # Seed 5 alone shuffles differently; in the group it saw seed 0's batches: not equal.
    train_run(configs[2], store, "c-alone")
    assert store.steps("c").loss[0] != pytest.approx(store.steps("c-alone").loss[0], rel=1e-6)


# ---------------------------------------------------------------- divergence and store


def test_a_diverging_member_is_frozen_and_the_others_go_on(store):
    configs = [_config(lr=lr, schedule="constant(lr={lr})") for lr in (0.05, 50.0, 0.1)]
    events: list[RunProgress] = []
    records = train_vectorized(configs, store, ["ok1", "boom", "ok2"], progress=events.append)
    assert [r.status for r in records] == ["done", "diverged", "done"]
    boom = records[1]
    train_run(configs[1], store, "boom-alone")
    alone = store.run("boom-alone")
    assert alone.status == "diverged"
    assert (boom.diverged_step, boom.error) == (alone.diverged_step, alone.error)
    assert len(store.steps("boom")) == boom.diverged_step + 1  # the diverging step is recorded
    assert store.epochs("boom") == [] or len(store.epochs("boom")) == len(store.epochs("boom-alone"))
    # The survivors are unaffected by the member that blew up.
    train_run(configs[2], store, "ok2-alone")
    assert store.epochs("ok2")[-1].val_loss == pytest.approx(store.epochs("ok2-alone")[-1].val_loss, rel=1e-3)
    ends = [e for e in events if e.event == "end"]
    assert sorted((e.run_id, e.status) for e in ends) == [
        ("boom", "diverged"),
        ("ok1", "done"),
        ("ok2", "done"),
    ]


def test_ctrl_c_puts_unfinished_members_back_in_the_queue(store):
    configs = [_config(lr=lr, schedule="constant(lr={lr})") for lr in (0.05, 50.0, 0.1)]

    def interrupt(event: RunProgress) -> None:
        if event.event == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vectorized(configs, store, ["a", "boom", "c"], progress=interrupt)
    runs = {r.id: r for r in store.runs()}
    assert runs["boom"].status == "diverged"  # finished before the interrupt: kept
    assert (runs["a"].status, runs["a"].error) == ("queued", "interrupted")
    assert runs["c"].status == "queued"


def test_an_error_mid_training_fails_every_unfinished_member(store):
    def explode(event: RunProgress) -> None:
        if event.event == "epoch":
            raise RuntimeError("disk full")

    records = train_vectorized([_config(lr=0.01), _config(lr=0.1)], store, ["a", "b"], progress=explode)
    assert [r.status for r in records] == ["failed", "failed"]
    assert records[0].error == "RuntimeError: disk full" and "traceback" in records[0].extras


def test_members_are_ordinary_runs_in_the_store(store):
    configs = [_config(lr=lr) for lr in (0.02, 0.2)]
    train_vectorized(configs, store, ["a", "b"], sweep="s")
    for rid, config in zip(["a", "b"], configs):
        record = store.run(rid)
        assert record.sweep == "s" and record.config == config and record.status == "done"
        assert record.lrlab_version and record.torch_version and record.started_at <= record.finished_at
        assert record.extras["vectorized"] == 2 and record.extras["total_steps"] == 16
        assert len(store.steps(rid)) == 16 and [e.epoch for e in store.epochs(rid)] == [1, 2]
    # Re-training the same ids replaces their metrics, as train_run does.
    train_vectorized(configs, store, ["a", "b"], sweep="s")
    assert len(store.steps("a")) == 16


def test_run_vectorized_trains_groups_and_returns_the_rest(store):
    plans = [Plan(f"g{i}", _config(lr=lr)) for i, lr in enumerate((0.01, 0.1))]
    plans += [Plan("lone", _config(optimizer="rmsprop"))]
    left = run_vectorized(plans, store, sweep="s", max_group=4)
    assert [p.id for p in left] == ["lone"]
    assert [store.run(p.id).status for p in plans[:2]] == ["done", "done"]
    assert not store.has_run("lone")


def test_a_model_vmap_cannot_batch_falls_back_to_runs_alone(store, tmp_path):
    task_file = tmp_path / "dropout_task.py"
    task_file.write_text(
        "import torch\n"
        "from lrlab.training.tasks import Task, TensorPairs\n"
        "def task():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 2, (64,), generator=g)\n"
        "    model = lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 2))\n"
        "    return Task('dropout', 'classification', 1, 16, model, TensorPairs(x[:48], y[:48]),\n"
        "                TensorPairs(x[48:], y[48:]))\n"
    )
    configs = [_config(f"{task_file}:task", task_options={}, lr=lr, epochs=1) for lr in (0.01, 0.1)]
    records = train_vectorized(configs, store, ["a", "b"])
    assert [r.status for r in records] == ["done", "done"]
    assert "vectorized" not in records[0].extras and records[0].extras["vectorized_fallback"]
    with pytest.raises(ValueError, match="cannot be vectorised"):
        train_vectorized(configs, store, ["a", "b"], fallback=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_members_match_cpu(store):
    configs = [_config(lr=lr) for lr in (0.02, 0.2)]
    train_vectorized(configs, store, ["cpu0", "cpu1"])
    train_vectorized(configs, store, ["gpu0", "gpu1"], device="cuda")
    for a, b in (("cpu0", "gpu0"), ("cpu1", "gpu1")):
        assert store.epochs(a)[-1].val_loss == pytest.approx(store.epochs(b)[-1].val_loss, rel=1e-3)
    assert store.run("gpu0").extras["device"].startswith("cuda")


# ---------------------------------------------------------------- the sweep hook and the CLI


SWEEP_TOML = """
name = "vec"
task = "digits-mlp"
task_options = { train_size = 128, val_size = 64, hidden = 16 }
epochs = 2
batch_size = 32
seeds = [0, 1]

[grid]
lr = [0.01, 0.1, 0.3]
optimizer = ["sgd(momentum=0.9)", "rmsprop"]
"""


def test_sweep_vectorize_groups_runs_with_the_same_ids(tmp_path):
    from lrlab.sweeps import load_sweep, run_sweep

    path = tmp_path / "vec.toml"
    path.write_text(SWEEP_TOML)
    vec_store, plain_store = Store(tmp_path / "vec.db"), Store(tmp_path / "plain.db")
    vec = run_sweep(path, vec_store, vectorize=True, max_group=4)
    plain = run_sweep(path, plain_store)
    assert [r.id for r in vec] == [r.id for r in plain]
    sizes = [r.extras.get("vectorized") for r in vec]
    assert sizes == [3] * 6 + [None] * 6  # 6 SGD runs split 3 + 3, RMSprop alone
    for v, p in zip(vec, plain):
        assert v.status == p.status
        if v.seed == 0 and v.status == "done":  # the data seed: same batches as alone
            assert vec_store.epochs(v.id)[-1].val_loss == pytest.approx(
                plain_store.epochs(p.id)[-1].val_loss, rel=1e-3
            )
    # The sweep-file key does the same, and finished runs are skipped on a re-run.
    spec = load_sweep({**load_sweep(path).model_dump(), "vectorize": True, "max_group": 2})
    assert spec.vectorize and spec.max_group == 2
    events: list[Any] = []
    run_sweep(spec, vec_store, progress=events.append)
    assert events[0].skipped == 12


def test_cli_vectorize_flag(tmp_path):
    from typer.testing import CliRunner

    from lrlab.cli.app import app

    path = tmp_path / "vec.toml"
    path.write_text(SWEEP_TOML.replace('"rmsprop"', '"adam"'))
    db = tmp_path / "runs.db"
    runner = CliRunner()
    result = runner.invoke(
        app, ["sweep", str(path), "--db", str(db), "--vectorize", "--max-group", "6", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert {r.extras["vectorized"] for r in Store(db).runs()} == {6}
    bad = runner.invoke(app, ["sweep", str(path), "--db", str(db), "--vectorize", "--max-group", "0"])
    assert bad.exit_code == 2 and "--max-group" in bad.output
    assert "--vectorize" in runner.invoke(app, ["sweep", "--help"]).output


def test_a_group_that_all_diverges_stops_at_once(store):
    configs = [_config(lr=lr, schedule="constant(lr={lr})", epochs=3) for lr in (30.0, 80.0)]
    records = train_vectorized(configs, store, ["a", "b"])
    assert [r.status for r in records] == ["diverged", "diverged"]
    assert all(len(store.steps(r.id)) == r.diverged_step + 1 for r in records)
    assert all(r.diverged_step < 8 for r in records)  # within the first epoch
