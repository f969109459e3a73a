"""plateau(...) under a real Hugging Face Trainer: PlateauCallback feeds each evaluation's
eval_loss to the plateau; the Trainer steps the scheduler per optimizer step (a warmup per step)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("accelerate")
from transformers import Trainer, TrainerCallback, TrainingArguments

from lrlab.schedules import observe, parse
from lrlab.torch import LRScheduler
from lrlab.transformers import PlateauCallback

STEPS_PER_EPOCH, EPOCHS = 10, 4


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 3)

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"logits": logits, "loss": torch.nn.functional.cross_entropy(logits, labels)}


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class Watch(TrainerCallback):
    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.eval_losses: list[float] = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.eval_losses.append(metrics["eval_loss"])


def _trainer(tmp_path, schedule: str, **overrides):
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = LRScheduler(optimizer, schedule)
    options = {"num_train_epochs": EPOCHS, "per_device_train_batch_size": 16, "eval_strategy": "epoch",
               "save_strategy": "no", "report_to": [], "use_cpu": True, "remove_unused_columns": False,
               "disable_tqdm": True, "seed": 0, "logging_strategy": "no"}  # fmt: skip
    options.update(overrides)
    watch = Watch()
    trainer = Trainer(model, TrainingArguments(str(tmp_path / "out"), **options), train_dataset=Rows(160, 0),
                      eval_dataset=Rows(64, 1), optimizers=(optimizer, scheduler),
                      callbacks=[PlateauCallback(), watch])  # fmt: skip
    return trainer, scheduler, watch


def test_warmup_per_step_then_reduce_on_each_evaluations_loss(tmp_path):
    # An LR so small that the evaluation loss stalls: the plateau reduces after each epoch.
    spec = "warmup(plateau(lr=1e-6, factor=0.5, patience=0), steps=3, start_lr=1e-7)"
    trainer, scheduler, watch = _trainer(tmp_path, spec)
    trainer.train()
    assert len(watch.lrs) == STEPS_PER_EPOCH * EPOCHS and len(watch.eval_losses) == EPOCHS
    assert scheduler.last_epoch == STEPS_PER_EPOCH * EPOCHS  # stepped once per optimizer step, no more
    schedule, states, expected = parse(spec), None, []
    for epoch, loss in enumerate(watch.eval_losses, start=1):
        expected += [schedule(t) for t in range((epoch - 1) * STEPS_PER_EPOCH, epoch * STEPS_PER_EPOCH)]
        schedule, states = observe(schedule, epoch * STEPS_PER_EPOCH - 1, loss, states)
    assert watch.lrs == expected
    assert watch.lrs[:3] == pytest.approx([1e-7, 4e-7, 7e-7], rel=1e-12)  # the warmup, per step
    # After the warmup, each epoch's LR is torch's ReduceLROnPlateau fed the same eval losses.
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-6)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(reference, factor=0.5, patience=0)
    for epoch, loss in enumerate(watch.eval_losses[:-1], start=1):
        plateau.step(loss)
        assert watch.lrs[epoch * STEPS_PER_EPOCH] == reference.param_groups[0]["lr"]
    assert watch.lrs[-1] < 1e-6


def test_metric_for_best_model_drives_the_plateau_and_its_direction_is_checked(tmp_path):
    trainer, _, _ = _trainer(tmp_path, "plateau(lr=1e-6)", metric_for_best_model="accuracy")
    with pytest.raises(ValueError) as caught:
        trainer.train()
    assert str(caught.value) == (
        "plateau(mode='min') is driven by eval_accuracy, where higher is better (greater_is_better=True): "
        "use mode='max'"
    )


def test_no_evaluation_means_no_metric_to_drive_the_plateau(tmp_path):
    trainer, _, _ = _trainer(tmp_path, "plateau(lr=1e-6)", eval_strategy="no")
    with pytest.raises(ValueError, match="eval_strategy is 'no': set eval_strategy='epoch'"):
        trainer.train()
