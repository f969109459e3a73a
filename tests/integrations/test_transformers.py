"""A real Hugging Face Trainer on a tiny model built here (no downloads): Recorder and find_lr."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("accelerate")
from transformers import Trainer, TrainingArguments

import lrlab.transformers
from lrlab.store import Store


class TinyClassifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def make_trainer(tmp_path, callbacks, lr=0.05, epochs=2, model=None):
    args = TrainingArguments(
        str(tmp_path / "out"), num_train_epochs=epochs, per_device_train_batch_size=16, learning_rate=lr,
        logging_steps=1, eval_strategy="epoch", save_strategy="no", report_to=[], use_cpu=True,
        remove_unused_columns=False, disable_tqdm=True, seed=0, lr_scheduler_type="linear",
    )  # fmt: skip
    return Trainer(model or TinyClassifier(), args, train_dataset=Rows(160, 0), eval_dataset=Rows(64, 1),
                   compute_metrics=accuracy, callbacks=callbacks)  # fmt: skip


def test_recorder_streams_the_trainer_run(tmp_path):
    rec = lrlab.transformers.Recorder(name="tiny-hf", db=tmp_path / "r.db", sweep="hf")
    make_trainer(tmp_path, [rec]).train()
    store = Store(tmp_path / "r.db", readonly=True)
    run = store.run(rec.run.run_id)
    assert (
        str(run.status) == "done" and run.config.lr == pytest.approx(0.05) and run.extras["total_steps"] == 20
    )
    series = store.steps(run.id)
    assert list(series.step) == list(range(1, 21))
    # the linear schedule, read before each optimizer step: 0.05 * (1 - (t - 1) / 20)
    assert series.lr == pytest.approx([0.05 * (1 - t / 20) for t in range(20)], rel=1e-6)
    assert series.momentum == pytest.approx([0.9] * 20) and (series.grad_norm > 0).all()
    epochs = store.epochs(run.id)
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(e.val_loss > 0 and 0 <= e.val_accuracy <= 1 for e in epochs)


def test_find_lr_sets_the_learning_rate_and_restores_the_model(tmp_path):
    torch.manual_seed(0)
    trainer = make_trainer(tmp_path, [], lr=1e-5, epochs=1)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = lrlab.transformers.find_lr(trainer, num_iter=60, figure=tmp_path / "lr.png")
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert (
        result.trustworthy
        and trainer.args.learning_rate == pytest.approx(result.lr)
        and 1e-3 < result.lr < 10
    )
    assert trainer.optimizer is None and (tmp_path / "lr.png").stat().st_size > 5000
    trainer.train()
    assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(result.lr)


def test_two_recorders_on_one_trainer_are_refused_and_the_first_run_ends_failed(tmp_path):
    a = lrlab.transformers.Recorder(name="a", db=tmp_path / "r.db")
    b = lrlab.transformers.Recorder(name="b", db=tmp_path / "r.db")
    with pytest.raises(
        RuntimeError, match=r"^two lrlab Recorder callbacks on one Trainer: attach one"
    ) as info:
        make_trainer(tmp_path, [a, b]).train()
    assert "\n" not in str(info.value)
    runs = Store(tmp_path / "r.db").runs()
    assert [str(r.status) for r in runs] == ["failed"] and "two lrlab Recorder" in runs[0].error


class Unlabelled(Rows):
    def __getitem__(self, i):
        return {"x": self.x[i]}


def test_find_lr_on_batches_without_labels_says_so_in_one_line_and_keeps_the_store(tmp_path):
    rec = lrlab.transformers.Recorder(name="kept", db=tmp_path / "r.db")
    make_trainer(tmp_path, [rec], epochs=1).train()
    trainer = make_trainer(tmp_path, [], epochs=1)
    trainer.train_dataset = Unlabelled(160, 0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"without a loss \(are the labels in the batch\?\)") as info:
        lrlab.transformers.find_lr(trainer, num_iter=10)
    assert "\n" not in str(info.value) and trainer.args.learning_rate == 0.05
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    store = Store(tmp_path / "r.db")
    assert [str(r.status) for r in store.runs()] == ["done"] and len(store.steps(rec.run.run_id)) == 10


class Breaks(TinyClassifier):
    """Raises on its 7th training forward."""

    calls = 0

    def forward(self, x, labels=None):
        if self.training:
            Breaks.calls += 1
            if Breaks.calls == 7:
                raise RuntimeError("boom at forward 7")
        return super().forward(x, labels)


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from integrations import test_transformers as t
import lrlab.transformers
rec = lrlab.transformers.Recorder(name="breaks", db={db!r}, sweep="hf")
t.make_trainer(__import__("pathlib").Path({tmp!r}), [rec], model=t.Breaks()).train()
"""


def test_a_trainer_that_raises_ends_its_run_failed_with_the_reason_and_keeps_its_rows(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    db = tmp_path / "r.db"
    script = SCRIPT.format(tests=str(Path(__file__).parents[1]), db=str(db), tmp=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "boom at forward 7" in done.stderr
    store = Store(db, readonly=True)
    (run,) = store.runs(sweep="hf")
    # The callbacks never hear of the exception; the run is ended when the process ends.
    assert str(run.status) == "failed" and run.error == "RuntimeError: boom at forward 7"
    assert list(store.steps(run.id).step) == [1, 2, 3, 4, 5, 6]


def test_training_again_after_a_raise_ends_the_first_run_failed(tmp_path):
    rec = lrlab.transformers.Recorder(name="again", db=tmp_path / "r.db", sweep="hf")
    Breaks.calls = 0
    trainer = make_trainer(tmp_path, [rec], model=Breaks())
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    first = rec.run.run_id
    assert Store(tmp_path / "r.db", readonly=True).run(first).status.value == "running"
    make_trainer(tmp_path, [rec]).train()  # the same callback, a new training
    store = Store(tmp_path / "r.db", readonly=True)
    assert store.run(first).status.value == "failed" and "stopped before it ended" in store.run(first).error
    assert store.run(rec.run.run_id).status.value == "done" and rec.run.run_id != first
