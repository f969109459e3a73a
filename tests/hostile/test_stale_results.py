"""Stale results: a study or sweep stored under a name resumes only runs of the same model,
data and task options. A change under the same name is one line saying what changed and how
to keep both or start fresh, and the store is left as it was. Through ``lrlab.study``,
``run_sweep`` and ``lrlab sweep``, with real training and a real SQLite store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import lrlab
from lrlab.store.sqlite import Store
from lrlab.sweeps import run_sweep
from lrlab.sweeps.executors import TaskChanged
from lrlab.training.tasks import Task, TensorPairs
from lrlab.training.tasks._base import fingerprint_change, task_fingerprint

N_TRAIN = 64


def _data(n: int = 96, seed: int = 0, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = scale * x[:, :3].sum(1, keepdim=True)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def houses_wide() -> nn.Module:  # 10-64-64-1
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def houses_narrow() -> nn.Module:  # 10-4-1
    return nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 1))


def houses_tanh() -> nn.Module:  # 10-64-64-1, other activations: the same shapes
    return nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


OPTIONS = {"name": "houses", "epochs": 3, "batch_size": 16, "optimizers": ["adam"], "device": "cpu"}


def _study(model_fn, store: Path, data=None, **changes):
    train, val = data or _data()
    return lrlab.study(model_fn, train, val, store=store, **{**OPTIONS, **changes})


def _snapshot(path: Path) -> dict:
    store = Store(path)
    try:
        return {
            "sweeps": {name: store.sweep_spec(name) for name in store.sweeps()},
            "runs": {r.id: (r.status.value, [e.val_loss for e in store.epochs(r.id)]) for r in store.runs()},
            "finders": sorted((f.id, f.lr) for f in store.finder_results()),
        }
    finally:
        store.close()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A study of the 10-64-64-1 model, stored once; each test works on a copy."""
    path = tmp_path_factory.mktemp("stale") / "runs.db"
    result = _study(houses_wide, path)
    return path, result


@pytest.fixture
def copy(stored, tmp_path):
    path, result = stored
    target = tmp_path / "runs.db"
    shutil.copy(path, target)
    return target, result


def test_the_same_model_resumes_with_the_same_numbers(copy, one_thread):
    path, first = copy
    before = _snapshot(path)
    again = _study(houses_wide, path)
    assert [r.id for r in again.result.runs] == [r.id for r in first.result.runs]
    assert str(again) == str(first)
    assert _snapshot(path)["runs"] == before["runs"]  # nothing retrained


CHANGES = [
    pytest.param(
        {"model_fn": houses_narrow},
        "the model changed since study 'houses' was stored (parameters 4,929 -> 49: shapes differ); "
        "pass name='houses-2' to keep both, or fresh=True / --fresh to replace it",
        id="model-smaller",
    ),
    pytest.param(
        {"model_fn": houses_tanh},
        "the model changed since study 'houses' was stored (same shapes, other layers); ",
        id="model-activation",
    ),
    pytest.param(
        {"data": _data(seed=1)},
        "the data changed since study 'houses' was stored (same sizes, other rows); ",
        id="data-rows",
    ),
    pytest.param(
        {"data": _data(scale=2.0)},
        "the data changed since study 'houses' was stored (same sizes, other rows); ",
        id="data-targets",
    ),
    pytest.param(
        {"data": ((_data()[0][0][:48], _data()[0][1][:48]), _data()[1])},
        "the data changed since study 'houses' was stored (training examples 64 -> 48); ",
        id="data-size",
    ),
    pytest.param(
        {"loss_fn": nn.functional.l1_loss},
        "the task changed since study 'houses' was stored (loss MSE -> l1_loss); ",
        id="loss",
    ),
    pytest.param(
        {"metrics": {"val_max": lambda out, y: (out - y).abs().max()}, "objective": "val_max",
         "higher_is_better": False},
        "the task changed since study 'houses' was stored (objective val_loss (lower is better) -> val_max",
        id="objective",
    ),
]


@pytest.mark.parametrize(("change", "message"), CHANGES)
def test_a_change_under_the_same_name_is_one_line_and_the_store_is_unchanged(copy, change, message):
    path, _ = copy
    before = _snapshot(path)
    change = dict(change)
    model_fn = change.pop("model_fn", houses_wide)
    with pytest.raises(TaskChanged) as info:
        _study(model_fn, path, **change)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)
    assert _snapshot(path) == before


def test_a_new_name_keeps_both(copy, one_thread):
    path, first = copy
    second = _study(houses_narrow, path, name="houses-2")
    assert second.name == "study-houses-2-small"
    store = Store(path)
    try:
        assert {r.id for r in first.result.runs} <= {r.id for r in store.runs()}
        assert all(r.config.task == "houses-2" for r in second.result.runs)
    finally:
        store.close()
    # and the old one still resumes with its own model
    assert str(_study(houses_wide, path)) == str(first)


def test_fresh_replaces_the_stored_study(copy, one_thread):
    path, _ = copy
    old = _snapshot(path)
    fresh = _study(houses_narrow, path, fresh=True)
    new = _snapshot(path)
    # The old study's runs are gone; the store holds the new study's, trained on the new model.
    assert set(new["runs"]) == {r.id for r in fresh.result.runs}
    assert all(new["runs"][i] != old["runs"].get(i) for i in new["runs"])
    # One range test per optimizer, replaced, not added.
    assert len(new["finders"]) == len(old["finders"])
    assert new["finders"] != old["finders"]
    # And now the narrow model resumes, the wide one is refused.
    assert str(_study(houses_narrow, path)) == str(fresh)
    with pytest.raises(TaskChanged, match=r"parameters 49 -> 4,929"):
        _study(houses_wide, path)


# ------------------------------------------------------------ the fingerprint itself


def _task(model_fn=houses_wide, data=None, **options) -> Task:
    (xt, yt), (xv, yv) = data or _data()
    return Task("t", options.pop("kind", "regression"), 3, 16, model_fn, TensorPairs(xt, yt), TensorPairs(xv, yv),
                **options)  # fmt: skip


def test_the_fingerprint_is_stable_and_keeps_the_global_rng():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = task_fingerprint(_task())
    assert torch.equal(torch.get_rng_state(), state)
    assert task_fingerprint(_task()) == first  # another task object, the same model and data
    assert fingerprint_change(first, task_fingerprint(_task())) is None


@pytest.mark.parametrize("stored", [None, {}, "abc", {"model": 1}, []], ids=repr)
def test_results_stored_before_fingerprints_resume_as_before(stored):
    assert fingerprint_change(stored, task_fingerprint(_task())) is None


def test_a_data_row_changed_in_the_middle_is_seen():
    (xt, yt), val = _data()
    other = xt.clone()
    other[N_TRAIN // 2 - 5 : N_TRAIN // 2 + 5] += 1.0  # rows around the middle
    assert fingerprint_change(task_fingerprint(_task()), task_fingerprint(_task(data=((other, yt), val)))) == (
        "the data", "same sizes, other rows"
    )  # fmt: skip


def test_a_dataset_without_indexing_is_fingerprinted_by_its_size():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from zip(*_data()[0], strict=True)

    task = _task()
    task.train_data = Stream()
    assert task_fingerprint(task)["data"]["train"] is None


# ------------------------------------------------------------ sweeps (Python and CLI)

TASK_FILE = """
import torch
from torch import nn
from lrlab.training.tasks import Task, TensorPairs


def make():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 6, generator=g)
    y = x.sum(1, keepdim=True)
    return Task("filetask", "regression", 2, 16, lambda: nn.Sequential(nn.Linear(6, WIDTH), nn.ReLU(),
                nn.Linear(WIDTH, 1)), TensorPairs(x[:32], y[:32]), TensorPairs(x[32:], y[32:]))
"""


def _sweep_files(folder: Path, width: int) -> Path:
    """The sweep file and its task file, edited to ``width`` (as a new process would see it:
    a task file is imported once per process)."""
    for name in [m for m in sys.modules if m.startswith("_lrlab_user_task_")]:
        del sys.modules[name]
    (folder / "task_file.py").write_text(TASK_FILE.replace("WIDTH", str(width)))
    sweep = folder / "sweep.toml"
    sweep.write_text(textwrap.dedent(f"""
        name = "filesweep"
        task = "{folder / 'task_file.py'}:make"
        epochs = 2
        seeds = [0]
        [grid]
        lr = [0.01, 0.1]
        optimizer = ["adam"]
    """))  # fmt: skip
    return sweep


def test_a_sweep_whose_task_file_changed_is_refused_then_fresh_replaces_it(tmp_path, one_thread):
    path = tmp_path / "runs.db"
    store = Store(path)
    try:
        first = run_sweep(_sweep_files(tmp_path, 16), store)
        assert {r.status.value for r in first} == {"done"}
        assert store.sweep_spec("filesweep")["fingerprint"]["model"]["parameters"] == 6 * 16 + 16 + 17
        before = _snapshot(path)
        with pytest.raises(TaskChanged, match=(
            r"^the model changed since sweep 'filesweep' was stored \(parameters 129 -> 33: shapes differ\); "
            r"give the sweep another name to keep both, or fresh=True / --fresh to replace it$")):  # fmt: skip
            run_sweep(_sweep_files(tmp_path, 4), store)
        assert _snapshot(path) == before
        again = run_sweep(_sweep_files(tmp_path, 4), store, fresh=True)
        assert [r.id for r in again] == [r.id for r in first]
        assert _snapshot(path)["runs"] != before["runs"]
        assert store.sweep_spec("filesweep")["fingerprint"]["model"]["parameters"] == 33
        assert [r.id for r in run_sweep(_sweep_files(tmp_path, 4), store)] == [r.id for r in first]  # resumes
    finally:
        store.close()


def test_lrlab_sweep_says_it_in_one_line_with_exit_2(tmp_path):
    path = tmp_path / "runs.db"

    def sweep(width: int) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "lrlab", "sweep", str(_sweep_files(tmp_path, width)), "--db", str(path),
                   "--quiet", "--device", "cpu"]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    ok = sweep(16)
    assert ok.returncode == 0, ok.stderr
    before = _snapshot(path)
    bad = sweep(4)
    assert bad.returncode == 2, bad.stderr
    lines = [line for line in (bad.stdout + bad.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "the model changed since sweep 'filesweep' was stored (parameters 129 -> 33" in lines[0]
    assert _snapshot(path) == before
    fresh = subprocess.run([sys.executable, "-m", "lrlab", "sweep", str(_sweep_files(tmp_path, 4)), "--db",
                            str(path), "--quiet", "--device", "cpu", "--fresh"],
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    store = Store(path)
    try:
        assert store.sweep_spec("filesweep")["fingerprint"]["model"]["parameters"] == 33
    finally:
        store.close()
