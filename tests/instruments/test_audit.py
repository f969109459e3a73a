"""The LR audit in real training loops recorded by ``lrlab.track`` into a real store."""

from __future__ import annotations

import pytest
import torch

import lrlab
from lrlab.schedules import cosine, warmup
from lrlab.store.sqlite import Store
from lrlab.torch import LRScheduler

STEPS, PER_EPOCH = 120, 10


def _train(db, *, per_epoch=False, restart_at=None, head_mult=1.0, declared=None):
    """A two-group model under warmup+cosine; the faults are the switches."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(6, 8), torch.nn.Linear(8, 2)
    groups = [
        {"params": body.parameters(), "lr_mult": 1.0},
        {"params": head.parameters(), "lr_mult": head_mult},
    ]
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    schedule = warmup(cosine(0.1, STEPS), 10)
    sched = LRScheduler(opt, schedule)
    x, y = torch.randn(64, 6), torch.randint(0, 2, (64,))
    with lrlab.track(opt, name="audit", db=db, schedule=schedule, lr_mults=declared) as run:
        for step in range(STEPS):
            if restart_at is not None and step == restart_at:  # a resume whose scheduler restarts at 0
                sched = LRScheduler(opt, schedule)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(torch.relu(body(x))), y).backward()
            opt.step()
            if not per_epoch or (step + 1) % PER_EPOCH == 0:
                sched.step()
            run.log(loss=0.5)
    return Store(db).findings(run.run_id), Store(db).instruments(run.run_id)


def test_a_scheduler_stepped_per_epoch_is_caught_in_a_real_loop(tmp_path):
    findings, series = _train(tmp_path / "r.db", per_epoch=True)
    audit = [f for f in findings if f.kind == "lr_audit"]
    assert len(audit) == 2 and {f.evidence["group"] for f in audit} == {"group0", "group1"}
    assert audit[0].step <= PER_EPOCH + 3  # within the first epochs of the warmup
    assert "per epoch" in audit[0].message and f"step {audit[0].step}:" in audit[0].message
    ratios = series["lr_audit/group0"].values
    assert min(ratios) < 0.5  # the warmup lagging a whole epoch


def test_a_correct_scheduler_is_not_flagged(tmp_path):
    findings, series = _train(tmp_path / "r.db")
    assert [f for f in findings if f.kind == "lr_audit"] == []
    assert series["lr_audit/group0"].values == pytest.approx([1.0] * STEPS, rel=1e-6)
    assert series["lr_audit/group0"].steps == list(range(1, STEPS + 1))  # the steps as logged


def test_a_scheduler_restarted_from_step_0_on_resume(tmp_path):
    findings, _ = _train(tmp_path / "r.db", restart_at=60)
    (audit,) = [f for f in findings if f.kind == "lr_audit" and f.evidence["group"] == "group0"]
    assert 60 <= audit.step <= 63


def test_a_readout_at_ten_times_and_a_lost_multiplier_against_the_declared_ones(tmp_path):
    findings, _ = _train(tmp_path / "a.db", head_mult=10.0, declared=[1.0, 1.0])
    (audit,) = [f for f in findings if f.kind == "lr_audit"]
    assert audit.evidence["group"] == "group1" and audit.evidence["ratio"] == pytest.approx(10.0)
    findings, _ = _train(tmp_path / "b.db", head_mult=1.0, declared=[1.0, 5.0])
    (audit,) = [f for f in findings if f.kind == "lr_audit"]
    assert audit.evidence["ratio"] == pytest.approx(0.2) and "lr_mult 5 was lost" in audit.message


def test_lr_mults_of_the_wrong_length_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="lr_mults has 1 value"):
        _train(tmp_path / "r.db", declared=[1.0])
