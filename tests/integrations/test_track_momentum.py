"""``lrlab.track`` records what ran: a one-cycle LR scheduler that drives no momentum leaves
the momentum as the optimizer has it, and the stored config says no momentum schedule ran
(a run lrlab builds would cycle it: ``lrlab.core.records.default_momentum``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lrlab
from lrlab.schedules import momentum_for, one_cycle
from lrlab.store.sqlite import Store
from lrlab.torch import LRScheduler

STEPS = 40


def _loop(db, *, cycle: bool, **options) -> str:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.999))
    schedule = one_cycle(max_lr=0.01, total_steps=STEPS)
    scheduler = LRScheduler(opt, schedule, momentum=momentum_for(schedule) if cycle else None)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with lrlab.track(opt, name="oc", db=db, schedule=schedule, **options) as run:
        for _ in range(STEPS):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            run.log(loss=loss)
            scheduler.step()
    return run.run_id


def test_a_one_cycle_that_drives_no_momentum_is_recorded_without_one(tmp_path):
    db = tmp_path / "r.db"
    run_id = _loop(db, cycle=False)
    record = Store(db).run(run_id)
    assert record.config.momentum is None and "momentum" not in record.config.to_dict()
    assert str(record.config.schedule).startswith("one_cycle(")
    np.testing.assert_array_equal(Store(db).steps(run_id).momentum, np.full(STEPS, 0.9))


@pytest.mark.parametrize("how", ["momentum", "scheduler"])
def test_a_cycled_momentum_is_recorded_when_the_loop_cycles_it(tmp_path, how):
    db = tmp_path / "r.db"
    schedule = one_cycle(max_lr=0.01, total_steps=STEPS)
    cycled = momentum_for(schedule)
    if how == "momentum":
        run_id = _loop(db, cycle=True, momentum=cycled)
    else:  # the scheduler itself, which knows its momentum=
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        scheduler = LRScheduler(opt, schedule, momentum=cycled)
        with lrlab.track(opt, name="oc", db=db, scheduler=scheduler) as run:
            for _ in range(STEPS):
                opt.zero_grad()
                loss = model(torch.ones(2, 4)).pow(2).mean()
                loss.backward()
                opt.step()
                run.log(loss=loss)
                scheduler.step()
        run_id = run.run_id
    record = Store(db).run(run_id)
    assert record.config.momentum == cycled and record.config.schedule == schedule
    recorded = Store(db).steps(run_id).momentum
    np.testing.assert_allclose(recorded, cycled(np.arange(STEPS)), rtol=1e-12)
    assert recorded.max() == pytest.approx(0.95) and recorded.min() == pytest.approx(0.85, abs=1e-3)


def test_a_scheduler_that_is_not_lrlab_s_is_one_line(tmp_path):
    opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=0.01)
    other = torch.optim.lr_scheduler.StepLR(opt, 10)
    with pytest.raises(TypeError, match=r"^scheduler must be an lrlab.torch.LRScheduler, got StepLR$"):
        lrlab.track(opt, name="x", db=tmp_path / "r.db", scheduler=other)
