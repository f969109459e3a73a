"""Recorded facts are what ran: the Hugging Face recorder stores the schedule the Trainer's
scheduler runs (read off the scheduler), checked on a real tiny Trainer against the LR it
recorded at every step; a scheduler lrlab cannot read is stored as unknown, never as a
constant it was not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")
from transformers import Trainer, TrainingArguments, get_scheduler

import lrlab.transformers
from lrlab.schedules import constant, cosine, one_cycle
from lrlab.store import Store
from lrlab.torch import LRScheduler
from lrlab.transformers import UNKNOWN_SCHEDULE, trainer_schedule

STEPS = 20  # 160 rows / 16 per batch x 2 epochs


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"logits": logits, "loss": torch.nn.functional.cross_entropy(logits, labels)}


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _train(tmp_path, optimizers=(None, None), **args):
    options = {"num_train_epochs": 2, "per_device_train_batch_size": 16, "learning_rate": 0.05, "logging_steps": 1,
               "eval_strategy": "no", "save_strategy": "no", "report_to": [], "use_cpu": True,
               "remove_unused_columns": False, "disable_tqdm": True, "seed": 0, **args}  # fmt: skip
    rec = lrlab.transformers.Recorder(name="tiny-hf", db=tmp_path / "r.db")
    model = Tiny()
    if optimizers[0] == "make":
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        optimizers = (opt, optimizers[1](opt))
    Trainer(model, TrainingArguments(str(tmp_path / "out"), **options), train_dataset=Rows(160),
            callbacks=[rec], optimizers=optimizers).train()  # fmt: skip
    store = Store(tmp_path / "r.db", readonly=True)
    try:
        run = store.run(rec.run.run_id)
        return run, store.steps(run.id)
    finally:
        store.close()


TYPES = [
    pytest.param("linear", {}, "warmup(linear(start_lr=0.05, end_lr=0.0, total_steps=17), steps=3)", id="linear"),
    pytest.param("cosine", {}, "warmup(cosine(lr=0.05, total_steps=17), steps=3)", id="cosine"),
    pytest.param("constant", {}, "constant(lr=0.05)", id="constant"),
    pytest.param("constant_with_warmup", {}, "warmup(constant(lr=0.05), steps=3)", id="constant_with_warmup"),
    pytest.param("polynomial", {"power": 2.0, "lr_end": 1e-3},
                 "warmup(polynomial(lr=0.05, total_steps=17, final_lr=0.001, power=2.0), steps=3)",
                 id="polynomial"),
    pytest.param("cosine", {"num_cycles": 0.5}, "warmup(cosine(lr=0.05, total_steps=17), steps=3)", id="cosine-half"),
]


@pytest.mark.parametrize(("kind", "kwargs", "spec"), TYPES)
def test_the_stored_schedule_is_the_one_the_trainer_ran(tmp_path, kind, kwargs, spec):
    run, series = _train(tmp_path, lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs, warmup_steps=3)
    assert str(run.config.schedule) == spec
    assert "schedule" not in run.extras.get("config", {})
    assert list(series.step) == list(range(1, STEPS + 1))
    # The LR of optimizer step k (recorded as step k + 1) is the stored schedule's value at k.
    stored = run.config.schedule(series.step.astype(float) - 1)
    np.testing.assert_allclose(stored, series.lr, rtol=1e-9, atol=1e-12)
    if kind != "constant":
        assert not np.allclose(series.lr, series.lr[0])  # a schedule that moves, stored as one that moves


def test_no_warmup_stores_the_bare_decay(tmp_path):
    run, series = _train(tmp_path, lr_scheduler_type="linear")
    assert str(run.config.schedule) == "linear(start_lr=0.05, end_lr=0.0, total_steps=20)"
    np.testing.assert_allclose(run.config.schedule(series.step.astype(float) - 1), series.lr, rtol=1e-9)


def test_the_cosine_floor_of_min_lr_rate(tmp_path):
    run, series = _train(tmp_path, lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1})
    schedule = run.config.schedule
    assert (schedule.name, schedule.lr, schedule.total_steps) == ("cosine", 0.05, 20)
    assert schedule.final_lr == pytest.approx(0.005, rel=1e-12)
    np.testing.assert_allclose(run.config.schedule(series.step.astype(float) - 1), series.lr, rtol=1e-9)


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [("inverse_sqrt", {}), ("cosine_with_restarts", {"num_cycles": 2}), ("cosine", {"num_cycles": 1.5})],
    ids=["inverse_sqrt", "cosine_with_restarts", "cosine-1.5-cycles"],
)
def test_a_scheduler_lrlab_cannot_read_is_stored_as_unknown(tmp_path, kind, kwargs):
    run, series = _train(tmp_path, lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs, warmup_steps=2)
    assert run.extras["config"]["schedule"] == UNKNOWN_SCHEDULE == "unknown (LR recorded per step)"
    assert len(series.lr) == STEPS and np.isfinite(series.lr).all()


def test_an_lrlab_scheduler_handed_to_the_trainer_is_stored_as_it_is(tmp_path):
    schedule = one_cycle(0.05, total_steps=STEPS)
    run, series = _train(tmp_path, optimizers=("make", lambda opt: LRScheduler(opt, schedule)))
    assert run.config.schedule == schedule
    np.testing.assert_allclose(schedule(series.step.astype(float) - 1), series.lr, rtol=1e-12)


def test_a_torch_scheduler_handed_to_the_trainer_is_unknown(tmp_path):
    run, _ = _train(tmp_path, optimizers=("make", lambda opt: torch.optim.lr_scheduler.StepLR(opt, 5)))
    assert run.extras["config"]["schedule"] == UNKNOWN_SCHEDULE


def test_a_schedule_the_user_names_wins(tmp_path):
    rec = lrlab.transformers.Recorder(name="tiny-hf", db=tmp_path / "r.db", schedule="constant(lr=0.05)")
    assert rec.options["schedule"] == "constant(lr=0.05)"


# ------------------------------------------------------------ reading schedulers (no training)


def _opt(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=lr)


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant", "constant_with_warmup", "polynomial"])
@pytest.mark.parametrize("warm", [0, 1, 7])
def test_read_schedules_match_get_scheduler_at_every_step(kind, warm):
    opt = _opt()
    scheduler = get_scheduler(kind, opt, num_warmup_steps=warm, num_training_steps=50)
    schedule = trainer_schedule(scheduler)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(schedule(np.arange(50.0)), lrs, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(
    "scheduler",
    [None, object(), "linear", torch.optim.lr_scheduler.LambdaLR(_opt(), lambda s: 0.5 ** s),
     torch.optim.lr_scheduler.ExponentialLR(_opt(), 0.9)],
    ids=["none", "object", "string", "user-lambda", "exponential"],
)  # fmt: skip
def test_anything_else_reads_as_unknown(scheduler):
    assert trainer_schedule(scheduler) is None


def test_warmup_longer_than_the_run_reads_as_unknown():
    assert trainer_schedule(get_scheduler("linear", _opt(), num_warmup_steps=60, num_training_steps=50)) is None


def test_the_lrlab_scheduler_is_read_directly():
    assert trainer_schedule(LRScheduler(_opt(), cosine(0.1, total_steps=10))) == cosine(0.1, total_steps=10)
    assert trainer_schedule(get_scheduler("constant", _opt(0.3))) == constant(0.3)
    assert math.isclose(trainer_schedule(get_scheduler("constant", _opt(0.3)))(5), 0.3)
