"""The step probe: the parabola's lowest point along the update, the weights left bit for bit,
and the LR too small found on real training (lrlab's loop and ``lrlab.track``)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lrlab
from lrlab.core.records import RunConfig
from lrlab.instruments import InstrumentSettings
from lrlab.instruments.probe import StepProbe, optimal_multiple
from lrlab.schedules import constant
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run


@given(
    st.floats(0.1, 10.0),  # curvature
    st.floats(-5.0, 5.0),  # where the bottom lies, in updates
    st.floats(-3.0, 3.0),  # the loss's offset
)
def test_the_multiple_is_the_bottom_of_a_parabola(curve, bottom, offset):
    f = [curve * (t - bottom) ** 2 + offset for t in (0.0, 1.0, 2.0)]
    assert optimal_multiple(*f) == pytest.approx(bottom, abs=1e-6 * (1 + abs(bottom)) / min(curve, 1.0))


def test_a_line_has_no_bottom_and_a_flat_or_broken_loss_none():
    assert optimal_multiple(3.0, 2.0, 1.0) == math.inf
    assert optimal_multiple(1.0, 2.0, 3.0) == -math.inf
    assert math.isnan(optimal_multiple(1.0, 1.0, 1.0))
    assert math.isnan(optimal_multiple(1.0, float("nan"), 1.0))


def test_the_probe_reads_a_quadratic_and_leaves_the_weights_bit_for_bit():
    w = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
    scale = torch.tensor([2.0, 0.5])
    probe = StepProbe(lambda: (scale * w**2).sum(), every=1)
    opt = torch.optim.SGD([w], lr=0.1)
    opt.zero_grad()
    (scale * w**2).sum().backward()
    probe.before([w])
    opt.step()
    after = w.detach().clone()
    multiple, f0, f1, _f2 = probe.after([w])
    assert torch.equal(w.detach(), after)
    assert f0 == pytest.approx(18.5) and f1 == pytest.approx(float((scale * after**2).sum()))
    # along d = -0.1 * grad the quadratic's bottom is at (g.g) / (0.1 * g.Hg) steps
    g = 2 * scale * torch.tensor([3.0, -1.0])
    expected = float(g @ g) / (0.1 * float(g @ (2 * scale * g)))
    assert multiple == pytest.approx(expected, rel=1e-4)


def test_the_probe_restores_batchnorm_statistics_and_the_random_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5))
    x = torch.randn(16, 4)
    probe = StepProbe(lambda: model(x).pow(2).mean(), every=1, model=model)
    params = list(model.parameters())
    stats = [b.clone() for b in model.buffers()]
    state = torch.get_rng_state()
    probe.before(params)
    probe.after(params)
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers()))
    assert torch.equal(state, torch.get_rng_state())


def _loop_run(store, run_id, lr, instruments=None):
    config = RunConfig(task="digits-linear", lr=lr, optimizer="sgd", schedule=constant(lr), epochs=3, seed=0,
                       batch_size=32)  # fmt: skip
    return train_run(config, store, run_id, instruments=instruments)


def test_the_probe_does_not_change_the_run_it_watches(tmp_path):
    store = Store(tmp_path / "s.db")
    _loop_run(store, "probed", 0.05)
    _loop_run(store, "bare", 0.05, instruments=False)
    probed, bare = store.steps("probed"), store.steps("bare")
    assert probed.loss.tolist() == bare.loss.tolist()
    assert [e.metrics for e in store.epochs("probed")] == [e.metrics for e in store.epochs("bare")]
    multiples = store.instruments("probed")["step_probe"]
    assert multiples.steps[:3] == [0, 10, 20]


def test_a_tiny_lr_is_found_too_small_and_a_well_set_one_is_not(tmp_path):
    store = Store(tmp_path / "s.db")
    _loop_run(store, "tiny", 0.001)
    _loop_run(store, "good", 1.0)
    kinds = {run: [f.kind for f in store.findings(run)] for run in ("tiny", "good")}
    assert "lr_low" in kinds["tiny"] and "lr_low" not in kinds["good"]
    found = next(f for f in store.findings("tiny") if f.kind == "lr_low")
    assert found.numbers["multiple"] >= 2.0 and "raise it" in found.message
    good = store.instruments("good")["step_probe"].values[1:]
    assert sorted(good)[len(good) // 2] < 2.0 <= found.numbers["multiple"]


def test_track_takes_the_probe_loss_and_warns_on_its_former_name(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def fixed():
        return torch.nn.functional.mse_loss(model(x), y)

    with lrlab.track(opt, name="t", db=tmp_path / "t.db", probe_loss=fixed) as run:
        for _ in range(120):
            opt.zero_grad()
            loss = fixed()
            loss.backward()
            opt.step()
            run.log(loss=loss)
    assert "lr_low" in [f.kind for f in Store(tmp_path / "t.db").findings(run.run_id)]
    with pytest.warns(DeprecationWarning, match="probe_loss"), lrlab.track(
        opt, name="u", db=tmp_path / "t.db", sharpness_loss=fixed
    ):
        pass
    with warnings.catch_warnings(), pytest.raises(ValueError, match="once"):
        warnings.simplefilter("ignore")
        lrlab.track(opt, name="v", db=tmp_path / "t.db", sharpness_loss=fixed, probe_loss=fixed)


def test_probe_every_is_checked():
    assert InstrumentSettings(probe_every=5).probe_every == 5
    with pytest.raises(ValueError, match="probe_every"):
        InstrumentSettings(probe_every=0)


def test_an_update_that_more_than_doubles_far_above_the_usual_is_found_once(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with lrlab.track(opt, name="j", db=tmp_path / "j.db") as run:
        for step in range(40):
            if step == 20:
                opt.param_groups[0]["lr"] = 20.0  # the update far above the usual, at once
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            run.log(loss=min(loss.item(), 1e6))
    store = Store(tmp_path / "j.db")
    jumps = [f for f in store.findings(run.run_id) if f.numbers.get("jump")]
    ratio = store.instruments(run.run_id)["update_ratio/group0"]
    first_high = next(s for s, v in list(zip(ratio.steps, ratio.values))[10:] if v > 0.1)
    assert len(jumps) == 1 and jumps[0].step == first_high
    assert jumps[0].numbers["ratio"] > 2 * jumps[0].numbers["before"] and jumps[0].numbers["ratio"] > 0.1


def test_vectorised_members_carry_the_update_ratio_and_the_probe_and_train_as_without(tmp_path):
    from lrlab.training.vectorized.trainer import train_vectorized

    base = RunConfig(task="digits-linear", lr=0.001, optimizer="sgd", epochs=3, batch_size=32, seed=0)
    configs = [base, base.replace(lr=1.0, schedule=None)]
    store = Store(tmp_path / "v.db")
    train_vectorized(configs, store, ["tiny", "good"])
    train_vectorized(configs, store, ["tiny-bare", "good-bare"], instruments=False)
    for run in ("tiny", "good"):
        assert store.steps(run).loss.tolist() == store.steps(f"{run}-bare").loss.tolist()
        assert store.instruments(f"{run}-bare") == {}
    ratio = store.instruments("good")["update_ratio/group0"]
    assert ratio.steps == store.steps("good").step.tolist() and all(v > 0 for v in ratio.values)
    assert store.instruments("tiny")["step_probe"].steps[:3] == [0, 10, 20]
    kinds = {run: [f.kind for f in store.findings(run)] for run in ("tiny", "good")}
    assert "lr_low" in kinds["tiny"] and "lr_low" not in kinds["good"]
    # the same run alone (lrlab's loop, hooks on torch.optim) reads the same update ratios
    lone = Store(tmp_path / "l.db")
    train_run(configs[1], lone, "good")
    assert lone.instruments("good")["update_ratio/group0"].values == pytest.approx(ratio.values, rel=1e-4)


def _fed(multiples_at: dict[int, float], lr_at) -> list:
    """A panel fed one step at a time (as the vectorised trainer feeds it): the LR of each step
    and, every 10 steps, a probe's multiple."""
    from lrlab.instruments import Instruments

    found = []
    panel = Instruments(on_finding=found.append)
    for count in range(200):
        panel.observe_update(count, [lr_at(count)], [1e-2], multiples_at.get(count))
        panel.observe_step(count, 1.0)
    panel.take()
    return [f for f in found if f.kind == "lr_low"]


def test_the_probe_is_judged_once_settled_and_scaled_to_the_peak_lr():
    every_tenth = dict.fromkeys(range(0, 200, 10), 3.0)
    early_only = {k: v for k, v in every_tenth.items() if k < 50}
    assert _fed(early_only, lambda t: 0.1) == []  # a fresh start's long readings are not judged
    (found,) = _fed(every_tenth, lambda t: 0.1)  # at the peak LR, 3 updates: too short
    assert found.step == 90 and found.numbers["multiple"] == pytest.approx(3.0)
    # the same readings while a decay holds the LR at 0.6 of its peak read 1.8 at the peak: fine
    assert _fed(every_tenth, lambda t: 0.1 if t < 50 else 0.06) == []


def test_a_stalled_loss_at_a_tiny_lr_is_not_called_an_oscillation(tmp_path, caplog):
    from lrlab.training.tasks import get_task

    task = get_task("digits-mlp", hidden=32)
    model = task.make_model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loader = task.train_loader(32, 0)
    xb, yb = next(iter(loader))
    caplog.set_level("WARNING", logger="lrlab")
    with lrlab.track(optimizer, name="tiny", db=tmp_path / "t.db", live=True, model=model,
                     probe_loss=lambda: task.loss_fn(model(xb), yb)) as run:  # fmt: skip
        for _epoch in range(3):
            for inputs, targets in loader:
                optimizer.zero_grad()
                loss = task.loss_fn(model(inputs), targets)
                loss.backward()
                optimizer.step()
                run.log(loss=loss)
    stuck = [r.getMessage() for r in caplog.records if "loss stalled" in r.getMessage()]
    assert stuck and all("not an oscillation" in m and "raise the LR" in m for m in stuck)
    assert not any("a smaller LR" in m for m in stuck)


def test_a_vectorised_instrument_that_fails_warns_once_and_the_runs_train_on(tmp_path, caplog, monkeypatch):
    from lrlab.training.vectorized import instruments as stacked
    from lrlab.training.vectorized.trainer import train_vectorized

    def broken(self):
        raise RuntimeError("probe batch gone")

    monkeypatch.setattr(stacked.StackedInstruments, "_losses", broken)
    base = RunConfig(task="digits-linear", lr=0.1, optimizer="sgd", epochs=1, batch_size=32, seed=0)
    store = Store(tmp_path / "v.db")
    caplog.set_level("WARNING", logger="lrlab.instruments")
    records = train_vectorized([base, base.replace(lr=0.3, schedule=None)], store, ["a", "b"])
    assert [r.status.value for r in records] == ["done", "done"]
    assert sum("instruments stopped" in r.getMessage() for r in caplog.records) == 1
    bare = Store(tmp_path / "bare.db")
    train_vectorized([base, base.replace(lr=0.3, schedule=None)], bare, ["a", "b"], instruments=False)
    assert store.steps("b").loss.tolist() == bare.steps("b").loss.tolist()
