"""plateau(...) under a real Lightning Trainer: scheduler_config asks Lightning to step the
scheduler once per epoch with the monitored val_loss; the LRs equal torch's ReduceLROnPlateau
fed the same losses."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrlab.lightning import scheduler_config
from lrlab.torch import LRScheduler


class Stalling(pl.LightningModule):
    """A classifier trained at an LR so small that its validation loss stalls."""

    def __init__(self, schedule: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 3)
        self.schedule = schedule

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=1.0)
        return {"optimizer": optimizer, "lr_scheduler": scheduler_config(LRScheduler(optimizer, self.schedule))}


class Watch(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.val_losses: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_validation_epoch_end(self, trainer, pl_module):
        self.val_losses.append(float(trainer.callback_metrics["val_loss"]))


def _loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16), DataLoader(TensorDataset(x[64:], y[64:]))


def test_the_lr_drops_when_val_loss_stalls_as_torch_reduce_on_plateau():
    watch = Watch()
    trainer = pl.Trainer(max_epochs=5, callbacks=[watch], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(Stalling("plateau(lr=1e-6, factor=0.5, patience=1)"), *_loaders())
    assert trainer.lr_scheduler_configs[0].reduce_on_plateau and trainer.lr_scheduler_configs[0].monitor == "val_loss"
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-6)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(reference, factor=0.5, patience=1)
    expected = []
    for loss in watch.val_losses:
        expected.append(reference.param_groups[0]["lr"])
        plateau.step(loss)
    assert len(watch.lrs) == 5 and watch.lrs == expected[:5]
    assert watch.lrs[-1] < watch.lrs[0] == 1e-6  # it stalled, and the LR dropped


def test_a_schedule_without_plateau_is_stepped_every_optimizer_step():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = LRScheduler(optimizer, "cosine(lr=0.1, total_steps=10)")
    assert scheduler_config(scheduler) == {"scheduler": scheduler, "interval": "step"}
    with pytest.raises(TypeError, match=r"lrlab\.torch\.LRScheduler"):
        scheduler_config(torch.optim.lr_scheduler.StepLR(optimizer, 1))
