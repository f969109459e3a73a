"""A real Lightning Trainer on a tiny model: the Recorder's run read back, the LRFinder's LR."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrlab.lightning import LRFinder, Recorder
from lrlab.store import Store


class Tiny(pl.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        self.lr = lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def loaders(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=16, shuffle=True, generator=g)
    return train, DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64)


def trainer(callbacks, epochs=2):
    return pl.Trainer(max_epochs=epochs, callbacks=callbacks, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip


def test_recorder_streams_every_step_and_epoch(tmp_path):
    db = tmp_path / "r.db"
    torch.manual_seed(0)
    train, val = loaders()
    rec = Recorder(name="tiny-lightning", db=db, sweep="lit", config={"hidden": 16})
    trainer([rec]).fit(Tiny(), train, val)
    store = Store(db, readonly=True)
    run = store.run(rec.run.run_id)
    assert str(run.status) == "done" and run.sweep == "lit" and run.config.lr == pytest.approx(0.05)
    assert run.extras["config"] == {"hidden": 16} and run.extras["total_steps"] == 24
    series = store.steps(run.id)
    assert len(series) == 24 and list(series.step) == list(range(1, 25))
    assert series.lr == pytest.approx([0.05] * 24) and series.momentum == pytest.approx([0.9] * 24)
    assert (series.grad_norm > 0).all() and torch.isfinite(torch.as_tensor(series.loss)).all()
    epochs = store.epochs(run.id)
    assert [e.epoch for e in epochs] == [1, 2] and all(0 <= e.val_accuracy <= 1 for e in epochs)
    assert all(e.val_loss > 0 for e in epochs)


def test_two_recorders_are_refused_with_one_line(tmp_path):
    train, val = loaders()
    a, b = Recorder(name="a", db=tmp_path / "r.db"), Recorder(name="b", db=tmp_path / "r.db")
    with pytest.raises(RuntimeError, match="2 lrlab Recorder callbacks"):
        trainer([a, b]).fit(Tiny(), train, val)
    assert Store(tmp_path / "r.db").runs() == []


def test_lr_finder_sets_the_lr_and_leaves_no_trace(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    model = Tiny(lr=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = {}

    def check(result):  # right after the test, before training: the model is as it was
        seen["same"] = all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    finder = LRFinder(figure=tmp_path / "lr.png", num_iter=60, on_result=check)
    t = trainer([finder], epochs=1)
    t.fit(model, train, val)
    assert seen["same"] and finder.result.trustworthy
    assert 1e-3 < finder.lr < 10 and t.optimizers[0].param_groups[0]["lr"] == pytest.approx(finder.lr)
    assert (tmp_path / "lr.png").stat().st_size > 5000


def test_an_objective_the_module_does_not_log_stops_in_one_line_and_keeps_the_rows(tmp_path):
    train, val = loaders()
    rec = Recorder(name="lacks", db=tmp_path / "r.db", objective="val_f1", higher_is_better=True)
    with pytest.raises(
        ValueError, match=r"^objective 'val_f1' is not a metric of run .*val_acc, val_accuracy"
    ) as info:
        trainer([rec]).fit(Tiny(), train, val)
    assert "\n" not in str(info.value)
    store = Store(tmp_path / "r.db")
    run = store.run(rec.run.run_id)
    assert str(run.status) == "failed" and "objective 'val_f1'" in run.error
    assert len(store.steps(run.id)) == 12 and [e.epoch for e in store.epochs(run.id)] == [1]


def test_the_gradient_norm_is_read_after_accumulation_and_before_clipping(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    rec = Recorder(name="clipped", db=tmp_path / "r.db")
    t = pl.Trainer(max_epochs=1, callbacks=[rec], logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                   accumulate_grad_batches=2, gradient_clip_val=0.01)  # fmt: skip
    t.fit(Tiny(), train, val)
    series = Store(tmp_path / "r.db").steps(rec.run.run_id)
    assert list(series.step) == list(range(1, 7))  # 12 batches, 6 optimizer steps
    assert (series.grad_norm > 0.05).all()  # the norm the clipping to 0.01 acted on


def test_the_step_probe_runs_inside_lightning_given_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    module = Tiny()
    xb, yb = next(iter(val))
    rec = Recorder(name="probed", db=tmp_path / "r.db",
                   probe_loss=lambda: torch.nn.functional.cross_entropy(module.net(xb), yb))  # fmt: skip
    trainer([rec], epochs=2).fit(module, train, val)
    series = Store(tmp_path / "r.db", readonly=True).instruments(rec.run.run_id)
    assert series["step_probe"].steps == [1, 11, 21]  # the 1st, 11th and 21st update, as logged
    assert all(v == v for v in series["step_probe"].values)
