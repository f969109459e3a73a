"""``lrlab.transfer`` on a real task (a digits MLP at widths 4, 8, 16, one epoch): every proxy
bracketed and stored, the power law fitted, a re-run that trains nothing, a partial one that
trains only what is missing, and the refusals (changed model, unbracketed, diverged)."""

import math
import warnings

import pytest
from torch import nn

import lrlab
from lrlab.core.records import RunStatus
from lrlab.store.sqlite import Store
from lrlab.sweeps.executors import TaskChanged
from lrlab.training.recorder import RunProgress
from lrlab.training.tasks.digits import digits_mlp
from lrlab.transfer import TransferError

KW = {"axis": "width", "proxies": [4, 8, 16], "target": 128, "epochs": 1, "seeds": 2, "lr": 0.03}


def mlp(width: int = 8):
    return digits_mlp(train_size=300, val_size=150, hidden=width)


def _trained(events):
    return sum(1 for e in events if isinstance(e, RunProgress) and e.event == "end")


@pytest.fixture(scope="module")
def done(tmp_path_factory, one_thread):
    db = tmp_path_factory.mktemp("transfer") / "runs.db"
    events = []
    result = lrlab.transfer(mlp, store=db, progress=events.append, **KW)
    return result, db, events


def test_every_proxy_is_bracketed_and_the_prediction_lies_in_its_interval(done):
    result, _, _ = done
    assert result.scales == (4.0, 8.0, 16.0)
    for optimum in result.proxies:
        assert optimum.bracketed and optimum.edge is None
        assert min(optimum.lrs) < optimum.lr < max(optimum.lrs)
        assert optimum.low <= optimum.lr <= optimum.high
        assert len(optimum.losses[0]) == 2  # both seeds
    low, high = result.interval
    assert 0 < low <= result.lr <= high
    slope_low, slope_high = result.slope_interval
    assert slope_low <= result.slope <= slope_high
    assert result.transfers_unchanged == (slope_low <= 0 <= slope_high)
    # the law goes through the prediction at the target, and moves by the slope
    assert result.lr_at(128) == pytest.approx(result.lr)
    assert result.lr_at(64) == pytest.approx(result.lr * 0.5**result.slope)
    # the self-check: the law of 4 and 8 tested on 16's own optimum, 3 octaves short of the target
    check = result.self_check
    assert (check.left_out, check.fitted_on, check.measured) == (16.0, (4.0, 8.0), result.proxies[-1].lr)
    assert check.distance == pytest.approx(3.0) and check.span == pytest.approx(1.0)
    assert low <= result.law.low and high >= result.law.high  # never narrower than the law's own
    assert check.passed == (result.checked_interval == result.law_interval)
    assert [c.name for c in result.checks] == ["self-check", "stability"]
    # the stability check reads the proxies' stored runs: the first LR with a diverged seed
    for edge, optimum in zip(result.stability.edges, result.proxies, strict=True):
        nan = [
            lr for lr, row in zip(optimum.lrs, optimum.losses, strict=True) if any(math.isnan(v) for v in row)
        ]
        assert edge == (min(nan) if nan else None)
    assert result.stability.passed == all(e is None or e > result.lr for e in result.stability.edges)


def test_every_run_is_stored_in_one_sweep_per_proxy(done):
    result, db, events = done
    store = Store(db)
    try:
        assert result.sweeps == (
            "transfer-mlp-width-width4",
            "transfer-mlp-width-width8",
            "transfer-mlp-width-width16",
        )
        total = 0
        for sweep, optimum in zip(result.sweeps, result.proxies, strict=True):
            runs = store.runs(sweep=sweep)
            assert len(runs) == 2 * len(optimum.lrs)
            assert {r.status for r in runs} <= {RunStatus.DONE, RunStatus.DIVERGED}
            total += len(runs)
        assert _trained(events) == total
    finally:
        store.close()


def test_a_rerun_trains_nothing_and_gives_the_same_numbers(done):
    result, db, _ = done
    events = []
    again = lrlab.transfer(mlp, store=db, progress=events.append, **KW)
    assert _trained(events) == 0
    assert (again.lr, again.interval, again.slope) == (result.lr, result.interval, result.slope)


def test_a_partly_stored_transfer_trains_only_the_missing_runs(done):
    result, db, _ = done
    store = Store(db)
    try:
        gone = [r.id for r in store.runs(sweep=result.sweeps[-1])][:3]
        assert store.delete_runs(gone) == 3
    finally:
        store.close()
    events = []
    again = lrlab.transfer(mlp, store=db, progress=events.append, **KW)
    assert _trained(events) == 3
    assert again.lr == pytest.approx(result.lr, rel=1e-9)  # same seeds, same numbers


def test_a_changed_model_under_the_same_name_is_refused_in_one_line(done):
    _, db, _ = done

    def mlp(width: int = 8):  # same name, one more layer
        task = digits_mlp(train_size=300, val_size=150, hidden=width)
        inner = task.model_factory
        task.model_factory = lambda: nn.Sequential(inner(), nn.ReLU(), nn.Linear(10, 10))
        return task

    store = Store(db)
    before = len(store.runs())
    store.close()
    with pytest.raises(
        TaskChanged, match=r"^the model changed since sweep 'transfer-mlp-width-width4'"
    ) as info:
        lrlab.transfer(mlp, store=db, **KW)
    assert "\n" not in str(info.value)
    store = Store(db)
    assert len(store.runs()) == before
    store.close()


def test_schedule_for_and_code_carry_the_predicted_lr(done):
    result, _, _ = done
    steps = result.target_steps * 4
    schedule = result.schedule_for(steps)
    assert str(schedule).startswith("cosine(") and f"total_steps={steps}" in str(schedule)
    assert schedule(0) == pytest.approx(result.lr, rel=1e-3)
    code = result.code()
    assert set(code) == {"PyTorch", "Lightning", "Hugging Face", "Keras"}
    assert f"lr={float(f'{result.lr:.4g}')!r}" in code["PyTorch"]
    with pytest.raises(ValueError, match="total_steps must be a whole number >= 1"):
        result.schedule_for(0)


def test_an_optimum_left_open_is_refused_with_the_proxy_named(tmp_path, one_thread):
    db = tmp_path / "runs.db"
    kw = {**KW, "lr": 1e-5, "max_extra": 0, "proxies": [4, 8, 16]}
    with pytest.raises(
        TransferError, match=r"could not be bracketed for width 4 \(best .*, at the high\).*widen"
    ):
        lrlab.transfer(mlp, store=db, **kw)
    store = Store(db)
    assert len(store.runs(sweep="transfer-mlp-width-width4")) == 10  # what trained stays stored
    store.close()


def test_a_fit_through_diverged_runs_is_refused(tmp_path, one_thread):
    db = tmp_path / "runs.db"
    kw = {**KW, "lr": 1e6, "max_extra": 1, "optimizer": "sgd"}
    with pytest.raises(TransferError, match=r"sits on diverged runs"):
        lrlab.transfer(mlp, store=db, **kw)
    store = Store(db)
    assert all(r.status is RunStatus.DIVERGED for r in store.runs())
    store.close()


@pytest.mark.slow
def test_the_run_length_axis_scales_the_epochs(tmp_path, one_thread):
    def linear():
        return lrlab.training.tasks.get_task("digits-linear", train_size=300, val_size=150)

    result = lrlab.transfer(linear, axis="steps", proxies=[1, 2, 3], target=12, seeds=2, lr=0.05,
                            store=tmp_path / "r.db")  # fmt: skip
    per_epoch = result.proxy_steps[0]
    assert result.proxy_steps == (per_epoch, 2 * per_epoch, 3 * per_epoch)
    assert result.target_steps == 12 * per_epoch
    assert math.isfinite(result.lr) and all(o.bracketed for o in result.proxies)
    with pytest.warns(UserWarning, match="longer than the"):
        longer = result.schedule_for(24 * per_epoch)
    assert longer(0) == pytest.approx(result.lr_at(24), rel=1e-3)


def test_a_longer_run_than_the_proxies_follows_the_run_length_law_and_warns_past_it(done):
    result, _, _ = done
    steps = result.target_steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result.schedule_for(steps * 16)(0) == pytest.approx(result.lr, rel=1e-3)  # the law keeps it
    with pytest.warns(
        UserWarning, match=r"x20 the transfer's runs, longer than the longest run length measured"
    ):
        result.schedule_for(steps * 20)


@pytest.mark.slow
def test_two_jobs_give_the_same_numbers_as_one(done, tmp_path):
    result, _, _ = done
    twice = lrlab.transfer(mlp, store=tmp_path / "r.db", jobs=2, **KW)
    assert [o.losses for o in twice.proxies] == [o.losses for o in result.proxies]
    assert twice.lr == result.lr


@pytest.mark.slow
def test_the_batch_size_axis_sets_each_runs_batch_size(tmp_path, one_thread):
    def linear():
        return lrlab.training.tasks.get_task("digits-linear", train_size=320, val_size=150)

    result = lrlab.transfer(linear, axis="batch_size", proxies=[16, 32, 64], target=256, epochs=1, seeds=2, lr=0.3,
                            optimizer="sgd", schedule="constant", store=tmp_path / "r.db")  # fmt: skip
    assert (
        result.proxy_steps == (20, 10, 5) and result.target_steps == 2
    )  # 320 examples a batch of 256: 2 steps
    store = Store(tmp_path / "r.db")
    try:
        sizes = [{r.config.batch_size for r in store.runs(sweep=sweep)} for sweep in result.sweeps]
    finally:
        store.close()
    assert sizes == [{16}, {32}, {64}]
    assert all(o.bracketed for o in result.proxies)
