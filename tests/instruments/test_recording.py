"""The instruments inside the recorders: lrlab's loop, ``lrlab.track`` with ``live=True`` and
the schedule-free evaluation check."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

import lrlab
from lrlab.core.records import RunConfig
from lrlab.schedules import constant
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run

schedulefree = pytest.importorskip("schedulefree")


def test_a_sweep_run_stores_its_update_ratio_and_audit_per_step(tmp_path):
    store = Store(tmp_path / "s.db")
    config = RunConfig(
        task="digits-linear", lr=0.05, optimizer="sgd", schedule=constant(0.05), epochs=1, seed=0
    )
    record = train_run(config, store, "loop")
    series = store.instruments("loop")
    steps = store.steps("loop").step.tolist()
    assert record.status.value == "done"
    assert series["update_ratio/group0"].steps == steps and series["lr_audit/group0"].steps == steps
    assert series["lr_audit/group0"].values == pytest.approx([1.0] * len(steps))
    assert all(0 < v < 1 for v in series["update_ratio/group0"].values)
    assert store.findings("loop") == []


def _schedule_free_run(db, switch: bool):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    with lrlab.track(opt, name="sf", db=db, model=model, live=True) as run:
        for _epoch in range(2):
            model.train()
            opt.train()
            for _ in range(5):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                run.log(loss=loss)
            model.eval()
            if switch:
                opt.eval()
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(model(x), y)
            run.epoch(val_loss=val)
    return run


def test_evaluating_a_schedule_free_optimizer_in_train_mode_is_a_live_finding(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="lrlab.track"):
        run = _schedule_free_run(tmp_path / "a.db", switch=False)
    (found,) = Store(tmp_path / "a.db").findings(run.run_id)
    assert found.kind == "eval_mode" and found.step == 5 and "call optimizer.eval()" in found.message
    assert [
        r.getMessage()
        for r in caplog.records
        if "eval_mode" in r.getMessage() or "optimizer.eval" in r.getMessage()
    ]
    assert run.instrument_findings[0].message == found.message


def test_switching_to_eval_mode_is_not_flagged(tmp_path):
    run = _schedule_free_run(tmp_path / "b.db", switch=True)
    assert Store(tmp_path / "b.db").findings(run.run_id) == []


def test_instruments_off_records_no_series(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with lrlab.track(opt, name="off", db=tmp_path / "c.db", instruments=False) as run:
        for _ in range(3):
            opt.zero_grad()
            model(torch.ones(2, 3)).sum().backward()
            opt.step()
            run.log(loss=1.0)
    assert Store(tmp_path / "c.db").instruments(run.run_id) == {}


def test_track_stores_the_sharpness_and_the_noise_scale_when_named(tmp_path):
    from lrlab.instruments import InstrumentSettings, MicroBatchNorms

    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.005)
    x, y = torch.randn(64, 6), torch.randn(64, 1)

    def probe():
        return torch.nn.functional.mse_loss(model(x), y)

    settings = InstrumentSettings.parse("default,sharpness,noise_scale")
    settings = dataclasses.replace(settings, sharpness_iters=100)  # the top two eigenvalues are 17% apart
    with lrlab.track(
        opt, name="probe", db=tmp_path / "p.db", instruments=settings, probe_loss=probe
    ) as run:
        for _ in range(120):
            opt.zero_grad()
            norms = MicroBatchNorms(list(model.parameters()))
            fresh = torch.randn(64, 6)
            target = fresh.sum(dim=1, keepdim=True) + 0.5 * torch.randn(64, 1)
            for part in range(4):  # four micro-batches of 16 fresh examples, accumulated
                xs, ys = fresh[part * 16 : (part + 1) * 16], target[part * 16 : (part + 1) * 16]
                (torch.nn.functional.mse_loss(model(xs), ys) / 4).backward()
                norms.after_backward()
            small, big, k = norms.pair()
            opt.step()
            run.log(loss=probe())
            run.noise(small, big, 16, 16 * k)
    series = Store(tmp_path / "p.db").instruments(run.run_id)
    design = torch.cat([x, torch.ones(64, 1)], dim=1)  # the weights and the bias
    hessian = 2 * (design.T @ design) / 64  # the MSE of a linear model: its Hessian, constant
    top = float(torch.linalg.eigvalsh(hessian).max())
    assert series["sharpness"].steps == [1, 101]  # the 1st and the 101st update, as logged
    assert series["sharpness"].values[0] == pytest.approx(top, rel=0.05)
    assert series["sharpness_limit"].values == pytest.approx([2 / 0.005] * 2)
    assert len(series["noise_scale"]) == 120 and 0 < series["noise_scale"].values[-1] < 1e4


def test_an_instrument_that_fails_stops_with_one_warning_and_the_run_goes_on(tmp_path, caplog):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def broken_probe():
        raise RuntimeError("the probe's batch is gone")

    quiet = caplog.at_level(logging.WARNING, logger="lrlab.instruments")
    probe = {"instruments": "default,sharpness", "probe_loss": broken_probe}
    with quiet, lrlab.track(opt, name="broken", db=tmp_path / "b.db", **probe) as run:
        for _ in range(5):
            opt.zero_grad()
            model(torch.ones(2, 3)).sum().backward()
            opt.step()
            run.log(loss=1.0)
    assert run.status == "done" and run.steps == 5
    assert [r.getMessage() for r in caplog.records] == [
        "lrlab instruments stopped (RuntimeError: the probe's batch is gone); the run goes on recording without them"
    ]
    assert Store(tmp_path / "b.db").steps(run.run_id).step.tolist() == [1, 2, 3, 4, 5]
