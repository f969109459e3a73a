"""What a factory may return besides a Task: a trainable function (its own loop, no range
test) and lrlab.study's model function form; and the proxies in μP (their runs carry the
per-layer LR multipliers)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lrlab
from lrlab.store.sqlite import Store
from lrlab.training.tasks.digits import load_digits_split


def sine_fit(width: int = 8):
    """A trainable of ``width`` hidden units fitting a sine of the inputs' sum."""

    @lrlab.trainable(objective="val_loss", direction="minimize", epochs=2, steps_per_epoch=15,
                     lr_range=(1e-3, 1e-1))  # fmt: skip
    def fit(trial):
        torch.manual_seed(trial.seed)
        model = nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 1))
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
        y = torch.sin(x.sum(1, keepdim=True))
        opt = trial.optimizer(model.parameters())
        sched = trial.scheduler(opt)
        for epoch in range(1, trial.epochs + 1):
            for _ in range(trial.steps_per_epoch):
                loss = F.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            with torch.no_grad():
                trial.report(epoch, val_loss=float(F.mse_loss(model(x), y)))

    return fit


@pytest.mark.slow
def test_a_factory_of_trainables_starts_from_their_lr_range_and_brackets_each(tmp_path, one_thread):
    result = lrlab.transfer(
        sine_fit, axis="width", proxies=[4, 8, 16], target=128, seeds=2, store=tmp_path / "r.db"
    )
    assert all(o.bracketed for o in result.proxies)
    assert 0.01 in result.proxies[0].lrs  # the first grid holds the middle of lr_range, x2 above it
    store = Store(tmp_path / "r.db")
    try:
        assert store.finder_results() == []  # no range test for a trainable
        runs = store.runs(sweep=result.sweeps[0])
        assert runs and all(r.config.task_options == {} for r in runs)
    finally:
        store.close()


def digits_pairs(width: int = 8):
    """lrlab.study's model function form: (model_fn, train, val)."""
    train, val = load_digits_split(300, 150)

    def model():
        return nn.Sequential(
            nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
        )

    return model, (train.inputs, train.targets), (val.inputs, val.targets)


@pytest.mark.slow
def test_the_model_function_form_and_mup_store_each_widths_multipliers(tmp_path, one_thread):
    result = lrlab.transfer(digits_pairs, axis="width", proxies=[4, 8, 16], target=64, epochs=1, seeds=1, lr=0.03,
                            parametrization="mup", store=tmp_path / "r.db")  # fmt: skip
    assert result.parametrization == "mup" and "parametrization: mup" in str(result)
    store = Store(tmp_path / "r.db")
    try:
        base = store.runs(sweep=result.sweeps[0])[0].config.lr_mult
        wide = store.runs(sweep=result.sweeps[-1])[0].config.lr_mult
    finally:
        store.close()
    assert set(base.values()) == {1.0}  # the smallest proxy is μP's base width
    assert wide["2.weight"] == pytest.approx(4 / 16)  # hidden matrix: Adam's LR / fan-in multiplier
    assert wide["0.weight"] == pytest.approx(1.0)  # input weights: one width dimension, Adam keeps 1
    assert wide["4.weight"] == pytest.approx(1.0)  # the readout: its output is divided instead (MuReadout)


@lrlab.trainable(objective="val_loss", direction="minimize", epochs=2, steps_per_epoch=10, lr_range=(1e-3, 1e-1),
                 options={"width": 8})  # fmt: skip
def sine_trainable(trial):
    """``sine_fit``'s loop with its width a declared option."""
    sine_fit(trial.options["width"]).fn(trial)


def test_a_trainable_takes_the_axis_as_one_of_its_options_and_names_them_otherwise():
    from lrlab.transfer.checks import check_axis

    check_axis(sine_trainable, "width")
    check_axis(sine_trainable, "steps")
    with pytest.raises(lrlab.transfer.TransferError, match=r"has no option 'depth' \(its options: width\)"):
        check_axis(sine_trainable, "depth")


@pytest.mark.slow
def test_a_trainable_on_the_run_length_axis_trains_each_length(tmp_path, one_thread):
    result = lrlab.transfer(sine_trainable, axis="steps", proxies=[1, 2, 3], target=12, seeds=2,
                            store=tmp_path / "r.db")  # fmt: skip
    assert result.proxy_steps == (10, 20, 30) and result.target_steps == 120
    store = Store(tmp_path / "r.db")
    try:
        epochs = {r.config.epochs for r in store.runs(sweep=result.sweeps[-1])}
        assert epochs == {3}
        assert all(r.config.task_options == {"width": 8} for r in store.runs())
    finally:
        store.close()


def test_the_batch_size_axis_of_a_trainable_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(lrlab.transfer.TransferError, match=r"makes its own batches.*declare the batch size"):
        lrlab.transfer(
            sine_trainable, axis="batch_size", proxies=[8, 16, 32], target=256, store=tmp_path / "r.db"
        )
    store = Store(tmp_path / "r.db")
    assert store.runs() == []
    store.close()


def digits_pairs_scaled(width: int = 8):
    """A model whose output is multiplied by its width: no parametrization of the layers makes
    its updates' effect independent of width."""
    model_fn, train, val = digits_pairs(width)

    class Times(nn.Module):
        def forward(self, x):
            return x * width

    def model():
        return nn.Sequential(*model_fn(), Times())

    return model, train, val


def test_mup_runs_the_coordinate_check_before_any_proxy_trains(tmp_path, one_thread):
    events = []
    with pytest.raises(lrlab.transfer.TransferError, match=r"μP's coordinate check failed: .*layer"):
        lrlab.transfer(digits_pairs_scaled, axis="width", proxies=[4, 8, 16], target=64, epochs=1, seeds=1, lr=0.03,
                       parametrization="mup", store=tmp_path / "r.db", progress=events.append)  # fmt: skip
    assert [e.phase for e in events] == ["plan", "coord"]
    store = Store(tmp_path / "r.db")
    try:
        assert store.runs() == []  # nothing trained
    finally:
        store.close()
