"""A run removed from the store by another process (``lrlab runs rm``) while it trains: the
loop says so in one typed error (``RunRemoved``, a ``KeyError``) that the sweep executors
skip, and the vectorised trainer drops that member and trains the others to the end."""

from __future__ import annotations

import pytest

from lrlab.core.records import RunConfig
from lrlab.store.sqlite import RunRemoved, Store, new_owner
from lrlab.sweeps.executors import _train_unless_removed
from lrlab.training.loop import train_run
from lrlab.training.recorder import REMOVED
from lrlab.training.vectorized import train_vectorized

OPTIONS = {"train_size": 128, "val_size": 64}


def _config(lr: float = 0.05) -> RunConfig:
    return RunConfig(task="digits-linear", lr=lr, optimizer="sgd(momentum=0.9)", epochs=3, batch_size=32,
                     task_options=OPTIONS)  # fmt: skip


def _deleting(store: Store, run_id: str, events: list):
    """A progress callback that removes ``run_id`` at its first epoch, as ``lrlab runs rm`` would."""

    def progress(event) -> None:
        events.append(event)
        if event.event == "epoch" and event.run_id == run_id and store.has_run(run_id):
            assert Store(store.path).delete_runs([run_id]) == 1  # another connection, as another process

    return progress


@pytest.mark.parametrize("owner", [None, "claimed"])
def test_a_run_removed_while_it_trains_is_one_typed_line(tmp_path, owner):
    store = Store(tmp_path / "runs.db")
    events: list = []
    with pytest.raises(RunRemoved) as info:
        train_run(_config(), store, "gone", _deleting(store, "gone", events),
                  owner=new_owner() if owner else None)  # fmt: skip
    message = str(info.value)
    assert message == f"run 'gone' was removed from {store.path} by another process while it trained"
    assert isinstance(info.value, KeyError) and not store.has_run("gone")
    assert not any(e.event == "end" for e in events)  # no status is told for a run that is gone
    # The executors' path: skipped with one line, the status REMOVED, nothing raised.
    store2 = Store(tmp_path / "other.db")
    skipped: list = []
    status = _train_unless_removed(store2, "gone", skipped.append, lambda: train_run(
        _config(), store2, "gone", _deleting(store2, "gone", skipped)))  # fmt: skip
    assert status == REMOVED
    assert skipped[-1].status == REMOVED and "removed from the store by another process" in skipped[-1].error


def test_the_vectorised_trainer_drops_a_removed_member_and_trains_the_others(tmp_path):
    store = Store(tmp_path / "runs.db")
    events: list = []
    configs = [_config(0.01), _config(0.05), _config(0.1)]
    records = train_vectorized(
        configs, store, ["a", "b", "c"], _deleting(store, "b", events), owner=new_owner()
    )
    assert [r.id for r in records] == ["a", "c"] and not store.has_run("b")
    assert [r.status.value for r in records] == ["done", "done"]
    assert [len(store.epochs(r.id)) for r in records] == [3, 3]
    assert all(r.extras["vectorized"] == 3 for r in records)
    ends = {e.run_id: e.status for e in events if e.event == "end"}
    assert ends == {"a": "done", "b": REMOVED, "c": "done"}
    # The survivors' numbers are those of a group never disturbed.
    clean = Store(tmp_path / "clean.db")
    undisturbed = train_vectorized(configs, clean, ["a", "b", "c"])
    for kept in ("a", "c"):
        assert store.steps(kept).loss.tolist() == clean.steps(kept).loss.tolist()
    assert undisturbed[1].status.value == "done"
