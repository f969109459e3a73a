"""lrlab.torch.LRScheduler: a closed-form torch LRScheduler for any lrlab schedule."""

from __future__ import annotations

import inspect
import io
import warnings

import numpy as np
import pytest
import torch

from lrlab import schedules as S
from lrlab.torch import LRScheduler, group_momentum, momentum_key

torch.set_num_threads(1)

OPTIMIZERS = sorted(
    name
    for name, cls in vars(torch.optim).items()
    if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
)
SCHEDULE = S.warmup(S.cosine_restarts(0.05, period=17, period_mult=2.0, decay=0.7, final_lr=1e-4), steps=9)


class Tiny(torch.nn.Module):
    """A model every optimizer accepts: a 2-D weight (Muon), and sparse embeddings for SparseAdam."""

    def __init__(self, sparse: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(8, 4, sparse=sparse)
        self.weight = torch.nn.Parameter(torch.randn(4, 3) * 0.1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens) @ self.weight


def make_optimizer(name: str, model: Tiny) -> torch.optim.Optimizer:
    # The scheduler sets the learning rate; 1e-3 only satisfies the constructors.
    cls = getattr(torch.optim, name)
    if name == "Muon":
        # Muon takes 2-D matrices only.
        return cls([model.weight], lr=1e-3)
    if name == "SparseAdam":
        return cls(list(model.embedding.parameters()), lr=1e-3)
    if name == "LBFGS":
        return cls(model.parameters(), lr=1e-3, max_iter=1)
    return cls(model.parameters(), lr=1e-3)


def train_step(model: Tiny, optimizer: torch.optim.Optimizer, step: int) -> None:
    tokens = torch.tensor([step % 8, (3 * step + 1) % 8])

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = model(tokens).pow(2).mean()
        loss.backward()
        return loss

    if isinstance(optimizer, torch.optim.LBFGS):
        optimizer.step(closure)
    else:
        closure()
        optimizer.step()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_torch_optimizer_follows_the_schedule(name):
    model = Tiny(sparse=name == "SparseAdam")
    optimizer = make_optimizer(name, model)
    scheduler = LRScheduler(optimizer, SCHEDULE)
    seen = []
    for step in range(120):
        seen.append(optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr() == [seen[-1]] * len(optimizer.param_groups)
        train_step(model, optimizer, step)
        scheduler.step()
    # Closed form: exactly the schedule's numbers.
    assert seen == [SCHEDULE(t) for t in range(120)]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_is_a_torch_lr_scheduler_and_does_not_warn_in_the_right_order():
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler = LRScheduler(optimizer, SCHEDULE)
        for step in range(5):
            train_step(model, optimizer, step)
            scheduler.step()
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert scheduler.last_epoch == 5


def sgd_with_groups(model: Tiny) -> torch.optim.SGD:
    return torch.optim.SGD(
        [
            {"params": model.embedding.parameters(), "lr_mult": 0.1},
            {"params": [model.weight], "lr_mult": 10.0},
        ],
        lr=0.0,
        momentum=0.9,
    )


def run(model, optimizer, scheduler, steps, start=0):
    lrs = []
    for step in range(start, start + steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        train_step(model, optimizer, step)
        scheduler.step()
    return lrs


def test_lr_mult_scales_each_group():
    model = Tiny()
    optimizer = sgd_with_groups(model)
    scheduler = LRScheduler(optimizer, SCHEDULE)
    lrs = run(model, optimizer, scheduler, 30)
    assert lrs == [[SCHEDULE(t) * 0.1, SCHEDULE(t) * 10.0] for t in range(30)]


@pytest.mark.parametrize("through_file", [False, True], ids=["in-memory", "torch-save-weights-only"])
def test_resume_from_state_dict_continues_the_identical_sequence(through_file):
    momentum = S.cyclic(0.85, 0.95, step_size=7)
    # One uninterrupted run of 60 steps.
    model = Tiny()
    optimizer = sgd_with_groups(model)
    scheduler = LRScheduler(optimizer, SCHEDULE, momentum=momentum)
    full = run(model, optimizer, scheduler, 60)
    final_weight = model.weight.detach().clone()

    # The same run interrupted after 25 steps and resumed into fresh objects.
    model = Tiny()
    optimizer = sgd_with_groups(model)
    scheduler = LRScheduler(optimizer, SCHEDULE, momentum=momentum)
    first = run(model, optimizer, scheduler, 25)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    if through_file:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        buffer.seek(0)
        checkpoint = torch.load(buffer, weights_only=True)

    model = Tiny()
    # The new optimizer has no lr_mult of its own: it comes back with the optimizer's state.
    optimizer = torch.optim.SGD(
        [{"params": model.embedding.parameters()}, {"params": [model.weight]}], lr=0.0, momentum=0.9
    )
    # A different schedule at construction: the checkpoint's schedule wins.
    scheduler = LRScheduler(optimizer, S.constant(1.0), momentum=S.constant(0.5))
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    assert [g["lr_mult"] for g in optimizer.param_groups] == [0.1, 10.0]
    assert scheduler.schedule == SCHEDULE and scheduler.momentum == momentum
    second = run(model, optimizer, scheduler, 35, start=25)

    assert first + second == full
    assert torch.equal(model.weight.detach(), final_weight)


def test_state_dict_is_plain_data():
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=0.0)
    state = LRScheduler(optimizer, SCHEDULE).state_dict()
    assert S.from_dict(state["schedule"]) == SCHEDULE
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == state


def test_sgd_momentum_follows_a_momentum_schedule():
    lr = S.one_cycle(0.1, total_steps=50)
    momentum = S.sequence(
        [S.linear(0.95, 0.85, total_steps=14), S.cosine(0.85, total_steps=35, final_lr=0.95)], boundaries=[14]
    )
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    scheduler = LRScheduler(optimizer, lr, momentum=momentum)
    seen = []
    for step in range(50):
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]))
        train_step(model, optimizer, step)
        scheduler.step()
    assert seen == [(lr(t), momentum(t)) for t in range(50)]


@pytest.mark.parametrize("name", ["Adam", "AdamW", "NAdam", "RAdam", "Adamax"])
def test_adam_family_beta1_follows_a_momentum_schedule(name):
    momentum = S.cyclic(0.85, 0.95, step_size=5)
    model = Tiny()
    optimizer = getattr(torch.optim, name)(model.parameters(), lr=0.0, betas=(0.9, 0.98))
    scheduler = LRScheduler(optimizer, SCHEDULE, momentum=momentum)
    for step in range(20):
        assert optimizer.param_groups[0]["betas"] == (momentum(step), 0.98)
        train_step(model, optimizer, step)
        scheduler.step()


@pytest.mark.parametrize("name", ["Adagrad", "Adadelta", "Rprop"])
def test_momentum_schedule_for_an_optimizer_without_momentum_is_a_clear_error(name):
    optimizer = getattr(torch.optim, name)(Tiny().parameters(), lr=0.01)
    with pytest.raises(ValueError, match=f"needs an optimizer with 'momentum'.*{name} has neither"):
        LRScheduler(optimizer, SCHEDULE, momentum=S.constant(0.9))


@pytest.mark.parametrize(
    ("make", "expected", "key"),
    [
        pytest.param(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 0.9, "momentum", id="sgd-momentum"),
        pytest.param(lambda p: torch.optim.SGD(p, lr=0.1), 0.0, "momentum", id="sgd-plain"),
        pytest.param(lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.8, 0.99)), 0.8, "betas", id="adam-betas"),
        pytest.param(lambda p: torch.optim.RMSprop(p, lr=0.1), 0.0, "momentum", id="rmsprop-momentum-0"),
        pytest.param(lambda p: torch.optim.RMSprop(p, lr=0.1, momentum=0.5), 0.5, "momentum", id="rmsprop-momentum"),
        pytest.param(lambda p: torch.optim.Adagrad(p, lr=0.1), None, None, id="adagrad-neither"),
    ],
)
def test_group_momentum_is_momentum_else_beta1_else_none(make, expected, key):
    optimizer = make(Tiny().parameters())
    assert group_momentum(optimizer.param_groups[0]) == expected
    if key is None:
        with pytest.raises(ValueError, match="has neither"):
            momentum_key(optimizer)
    else:
        assert momentum_key(optimizer) == key


def test_group_momentum_of_a_group_with_both_keys_is_its_momentum_the_key_a_schedule_drives():
    group = {"lr": 0.1, "momentum": 0.7, "betas": (0.9, 0.999)}
    assert group_momentum(group) == 0.7
    assert group_momentum({"lr": 0.1, "momentum": None, "betas": (0.9, 0.999)}) == 0.9
    assert group_momentum({"lr": 0.1}) is None
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=0.0, momentum=0.9)
    optimizer.param_groups[0]["betas"] = (0.5, 0.999)  # a custom optimizer with both keys
    scheduler = LRScheduler(optimizer, SCHEDULE, momentum=S.constant(0.8))
    scheduler.step()
    assert optimizer.param_groups[0]["momentum"] == 0.8 == group_momentum(optimizer.param_groups[0])


def test_not_a_schedule_is_a_clear_error():
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=0.01)
    with pytest.raises(TypeError, match="schedule must be an lrlab schedule"):
        LRScheduler(optimizer, lambda t: 0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="momentum must be an lrlab schedule"):
        LRScheduler(optimizer, SCHEDULE, momentum=0.9)  # type: ignore[arg-type]


def test_no_drift_after_a_million_steps():
    schedule = S.cyclic(1e-4, 0.1, step_size=2000, step_size_down=3000, mode="exp_range", gamma=0.999999)
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=0.0)
    scheduler = LRScheduler(optimizer, schedule)
    optimizer.step()
    # Stepping: exact at every one of 20000 steps.
    lrs = []
    for _ in range(20_000):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == schedule(np.arange(1, 20_001)).tolist()
    # The closed form reads only last_epoch, so step 10**6 is exactly the schedule's
    # value; a recursive scheduler would carry 10**6 roundings by then.
    scheduler.last_epoch = 10**6 - 1
    scheduler.step()
    assert scheduler.get_last_lr()[0] == schedule(10**6)
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=1.0)
    recursive = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.999)
    optimizer.step()
    exponential = S.exponential(1.0, decay_rate=0.999)
    for _ in range(20_000):
        recursive.step()
    assert recursive.get_last_lr()[0] != exponential(20_000)  # torch's recursion has drifted
    assert recursive.get_last_lr()[0] == pytest.approx(exponential(20_000), rel=1e-11)


@pytest.mark.slow
def test_works_in_lightning_configure_optimizers_with_interval_step():
    lightning = pytest.importorskip("lightning.pytorch")
    schedule = S.warmup(S.cosine(0.1, total_steps=6, final_lr=0.01), steps=3)

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(3, 1)
            self.seen: list[float] = []

        def training_step(self, batch, batch_idx):
            self.seen.append(self.optimizers().param_groups[0]["lr"])
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.0, momentum=0.9)
            scheduler = LRScheduler(optimizer, schedule)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    module = Module()
    trainer = lightning.Trainer(
        max_steps=9,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    assert module.seen == [schedule(t) for t in range(9)]


# ---------------------------------------------------------------- where torch users differ


def test_fractional_epochs_match_torchs_warm_restarts():
    """``step(epoch + i / iters)``, as torch documents for CosineAnnealingWarmRestarts."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    ours_opt, theirs_opt = torch.optim.SGD(params, lr=0.1), torch.optim.SGD(params, lr=0.1)
    ours = LRScheduler(ours_opt, S.cosine_restarts(0.1, period=3, period_mult=2.0, final_lr=0.001))
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs_opt, T_0=3, T_mult=2, eta_min=0.001)
    iters, seen = 5, []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning from our step(epoch)
        for epoch in range(10):
            for i in range(iters):
                ours_opt.step()
                ours.step(epoch + i / iters)
                seen.append((ours_opt.param_groups[0]["lr"], ours.get_last_lr()[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = []
        for epoch in range(10):
            for i in range(iters):
                theirs_opt.step()
                theirs.step(epoch + i / iters)
                expected.append(theirs_opt.param_groups[0]["lr"])
    np.testing.assert_allclose([lr for lr, _ in seen], expected, rtol=1e-12, atol=1e-15)
    assert all(lr == last for lr, last in seen)
    # Whole epochs still come from the chunked closed form, and an int epoch stays an int.
    ours.step(4)
    assert ours.last_epoch == 4 and ours_opt.param_groups[0]["lr"] == ours.schedule(4)
    for bad in (-1, float("nan"), "3", True):
        with pytest.raises(ValueError, match="epoch must be a finite number >= 0"):
            ours.step(bad)


@pytest.mark.parametrize("order", ["scheduler-then-optimizer", "optimizer-then-scheduler", "scheduler-only"])
def test_resume_sets_the_loaded_steps_lr_in_any_order(order):
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    scheduler = LRScheduler(optimizer, SCHEDULE, momentum=S.cyclic(0.85, 0.95, step_size=7))
    full = run(model, optimizer, scheduler, 40)

    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    scheduler = LRScheduler(optimizer, SCHEDULE, momentum=S.cyclic(0.85, 0.95, step_size=7))
    run(model, optimizer, scheduler, 15)
    saved = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}

    model2 = Tiny()
    model2.load_state_dict(model.state_dict())
    fresh_opt = torch.optim.SGD(model2.parameters(), lr=0.0, momentum=0.9)
    fresh = LRScheduler(fresh_opt, S.constant(1.0))
    if order == "scheduler-then-optimizer":
        fresh.load_state_dict(saved["scheduler"])
        fresh_opt.load_state_dict(saved["optimizer"])
    elif order == "optimizer-then-scheduler":
        fresh_opt.load_state_dict(saved["optimizer"])
        fresh.load_state_dict(saved["scheduler"])
    else:  # only the scheduler's state: the LR and momentum still follow the loaded step
        fresh.load_state_dict(saved["scheduler"])
    assert fresh_opt.param_groups[0]["lr"] == SCHEDULE(15)
    assert fresh_opt.param_groups[0]["momentum"] == S.cyclic(0.85, 0.95, step_size=7)(15)
    rest = run(model2, fresh_opt, fresh, 25, start=15)
    assert rest == full[15:]


def test_a_spec_string_is_accepted_where_a_schedule_is():
    optimizer = torch.optim.Adam(Tiny().parameters(), lr=0.0)
    scheduler = LRScheduler(optimizer, "cosine(lr=0.01, total_steps=100)", momentum="constant(lr=0.8)")
    assert scheduler.schedule == S.cosine(0.01, total_steps=100)
    assert optimizer.param_groups[0]["lr"] == 0.01
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["betas"][0] == 0.8
    with pytest.raises(S.SpecError):
        LRScheduler(optimizer, "cosine(lr=0.01")


def test_in_a_chained_scheduler_it_sets_the_lr_and_a_chainable_one_after_it_scales_once():
    """The documented ChainedScheduler behaviour: ours sets the LR outright; an
    ExponentialLR after it multiplies that step's value by gamma once (not gamma**t)."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD(params, lr=0.1)
    schedule = S.cosine(0.1, total_steps=20)
    ours = LRScheduler(optimizer, schedule)
    chained = torch.optim.lr_scheduler.ChainedScheduler([ours, torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.5)])
    lrs = []
    for _ in range(10):
        optimizer.step()
        chained.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [schedule(t) * 0.5 for t in range(1, 11)], rtol=1e-12)
    # Before it in the chain, a torch scheduler is overridden.
    optimizer = torch.optim.SGD(params, lr=0.1)
    before = torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.5)
    chained = torch.optim.lr_scheduler.ChainedScheduler([before, LRScheduler(optimizer, schedule)])
    optimizer.step()
    chained.step()
    assert optimizer.param_groups[0]["lr"] == schedule(1)
