"""lrlab.track on a real plain training loop: the store read back, statuses, live findings,
bad input, and ``lrlab report`` / ``lrlab runs list`` on the tracked sweep."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import pytest
import torch

import lrlab
from lrlab.store import Store


def loop(run, opt, model, steps=60, lr_fn=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.linspace(-1, 1, 8)
    for step in range(1, steps + 1):
        idx = torch.randint(0, 256, (32,), generator=g)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
        loss.backward()
        opt.step()
        run.log(loss=loss, step=step)
        if lr_fn is not None:
            for group in opt.param_groups:
                group["lr"] = lr_fn(step)
        if step % 20 == 0:
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
            run.epoch(val_loss=val, val_mae=float((model(x).squeeze(1) - y).abs().mean().detach()))


def test_plain_loop_read_back(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(
        [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.01}], lr=0.05, momentum=0.9
    )
    with lrlab.track(opt, name="plain", db=tmp_path / "r.db", sweep="mine", config={"width": 8}) as run:
        loop(run, opt, model, lr_fn=lambda s: 0.05 * (1 - s / 60))
    store = Store(tmp_path / "r.db", readonly=True)
    rec = store.run(run.run_id)
    assert str(rec.status) == "done" and rec.sweep == "mine" and rec.config.task == "plain"
    assert rec.config.lr == 0.05 and rec.extras["config"] == {"width": 8}
    series = store.steps(run.run_id)
    assert list(series.step) == list(range(1, 61)) and series.lrs.shape == (60, 2)
    assert series.lrs[:, 1] == pytest.approx([0.01] + [0.05 * (1 - s / 60) for s in range(1, 60)])
    assert series.momentum == pytest.approx([0.9] * 60)
    # the gradient norm of the step's gradients (still on the parameters when log() ran): recomputed
    assert series.grad_norm[-1] == pytest.approx(
        float(torch.cat([model.weight.grad.flatten(), model.bias.grad]).norm()), rel=1e-6
    )
    assert series.loss[-1] < series.loss[0] / 5
    epochs = store.epochs(run.run_id)
    assert [e.epoch for e in epochs] == [1, 2, 3] and all(e.metrics["val_mae"] > 0 for e in epochs)
    assert epochs[0].train_loss == pytest.approx(float(series.loss[:20].mean()))


def test_diverged_and_failed_runs(tmp_path):
    db = tmp_path / "r.db"
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=10.0)
    with lrlab.track(opt, name="blow", db=db) as run:
        loop(run, opt, model, steps=40)
    rec = Store(db).run(run.run_id)
    assert str(rec.status) == "diverged" and rec.diverged_step is not None and rec.diverged_step <= 40
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ZeroDivisionError), lrlab.track(opt, name="crash", db=db) as run:
        run.log(loss=1.0)
        run.log(loss=0.5)
        1 / 0  # noqa: B018
    rec = Store(db).run(run.run_id)
    assert str(rec.status) == "failed" and "ZeroDivisionError" in rec.error
    assert list(Store(db).steps(run.run_id).loss) == [1.0, 0.5]  # nothing buffered lost


def test_bad_input_is_one_line_and_keeps_what_was_stored(tmp_path):
    db = tmp_path / "r.db"
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with lrlab.track(opt, name="bad", db=db) as run:
        run.log(loss=0.7)
        with pytest.raises(TypeError, match=r"^metric 'val_accuracy' must be a number .*got str: 'high'"):
            run.epoch(val_accuracy="high")
        with pytest.raises(TypeError, match=r"^metric 'loss' must be a number"):
            run.log(loss=[1.0])
        with pytest.raises(RuntimeError, match="already recorded by run"):
            lrlab.track(opt, name="again", db=db)
        run.log(loss=0.6)
    assert str(Store(db).run(run.run_id).status) == "done"
    assert list(Store(db).steps(run.run_id).loss) == pytest.approx([0.7, 0.6])
    assert [r.id for r in Store(db).runs()] == [run.run_id]
    with lrlab.track(opt, name="after", db=db):  # the optimizer is free again after the run
        pass


def test_live_findings_are_logged_once_each(tmp_path, caplog):
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    caplog.set_level(logging.WARNING, logger="lrlab.track")
    with lrlab.track(opt, name="flat", db=tmp_path / "r.db", live=True, total_steps=200) as run:
        loop(run, opt, model, steps=200)
    decay = [r for r in caplog.records if "never decays" in r.getMessage()]
    assert len(decay) == 1 and "0.02" in decay[0].getMessage()
    caplog.clear()
    opt = torch.optim.SGD(model.parameters(), lr=1.5)  # past 2/curvature for this problem: it blows up
    with lrlab.track(opt, name="blow", db=tmp_path / "r.db", live=True) as run:
        loop(run, opt, model, steps=120)
    messages = [r.getMessage() for r in caplog.records]
    # the instruments' early warning (the loss rising step over step) and the diagnostics' divergence,
    # each logged once, the warning first
    early = [i for i, m in enumerate(messages) if "rose on each of the last" in m]
    div = [i for i, m in enumerate(messages) if "its first value" in m]
    assert len(early) == 1 and len(div) == 1 and early[0] < div[0]
    assert run.status == "diverged"


def test_report_and_runs_list_on_a_tracked_sweep(tmp_path):
    db = tmp_path / "r.db"
    for lr in (0.01, 0.05):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        with lrlab.track(opt, name="plain", db=db, sweep="tracked") as run:
            loop(run, opt, model)
    out = tmp_path / "report.html"
    cli = [sys.executable, "-m", "lrlab"]
    result = subprocess.run([*cli, "report", "--db", str(db), "--sweep", "tracked", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert out.stat().st_size > 20_000 and "plain" in page and "lr=0.05" in page
    listing = subprocess.run([*cli, "runs", "list", "--db", str(db), "--sweep", "tracked"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count(" done ") == 2 and listing.stdout.rstrip().endswith("2 done")  # rows, footer
    assert math.isfinite(Store(db).steps(run.run_id).grad_norm.sum())


def grads_norm(model):
    return float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())


def test_the_gradient_norm_is_that_of_the_gradients_the_optimizer_stepped_with(tmp_path):
    """Whatever the loop's order: clipped before the step, zero_grad() before log(), log()
    before the step, accumulated micro-batches, a closure (LBFGS)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    x, y = torch.randn(64, 8), torch.randn(64)

    def backward(rows=slice(None)):
        torch.nn.functional.mse_loss(model(x[rows]).squeeze(1), y[rows]).backward()

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    expected = []
    with lrlab.track(opt, name="orders", db=tmp_path / "r.db") as run:
        for _ in range(3):  # clipped, then stepped, then logged
            opt.zero_grad()
            backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
            expected.append(grads_norm(model))
            opt.step()
            run.log(loss=1.0)
        for _ in range(3):  # the gradients let go before log()
            backward()
            expected.append(grads_norm(model))
            opt.step()
            opt.zero_grad()
            run.log(loss=1.0)
        for _ in range(2):  # two accumulated micro-batches per step
            opt.zero_grad()
            backward(slice(0, 32))
            backward(slice(32, 64))
            expected.append(grads_norm(model))
            opt.step()
            run.log(loss=1.0)
        for _ in range(3):  # log() before the step: the gradients at the call
            opt.zero_grad()
            backward()
            expected.append(grads_norm(model))
            run.log(loss=1.0)
            opt.step()
    assert expected[0] == pytest.approx(0.5, rel=1e-4)  # clipping was active
    assert list(Store(tmp_path / "r.db").steps(run.run_id).grad_norm) == pytest.approx(expected, rel=1e-5)

    lbfgs = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=4)

    def closure():
        lbfgs.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
        loss.backward()
        return loss

    expected = []
    with lrlab.track(lbfgs, name="closure", db=tmp_path / "r.db") as run:
        for _ in range(3):
            loss = lbfgs.step(closure)
            expected.append(grads_norm(model))  # the last closure's gradients
            run.log(loss=loss)
    assert list(Store(tmp_path / "r.db").steps(run.run_id).grad_norm) == pytest.approx(expected, rel=1e-5)


def test_tensor_losses_are_read_in_batches_and_the_divergence_step_is_exact(tmp_path, caplog):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = [torch.tensor(1.0 / step, requires_grad=True) * 1.0 for step in range(1, 81)]
    losses[36] = torch.tensor(float("nan"))  # step 37
    caplog.set_level(logging.WARNING, logger="lrlab.track")
    with lrlab.track(opt, name="tensors", db=tmp_path / "r.db", live=True) as run:
        for step, loss in enumerate(losses, 1):
            run.log(loss=loss, step=step, grad_norm=torch.tensor(float(step)))
            if step == 70:
                run.epoch(val_loss=torch.tensor(0.25))
    store = Store(tmp_path / "r.db")
    rec, series = store.run(run.run_id), store.steps(run.run_id)
    assert str(rec.status) == "diverged" and rec.diverged_step == 37 and run.diverged_step == 37
    stored = list(series.loss)
    assert math.isnan(stored[36]) and stored[:36] + stored[37:] == pytest.approx(
        [1.0 / s for s in range(1, 81) if s != 37], rel=1e-6
    )
    assert list(series.grad_norm) == pytest.approx(list(range(1, 81)))
    epochs = store.epochs(run.run_id)
    assert [e.step for e in epochs] == [70, 80] and epochs[0].val_loss == 0.25
    assert [r.getMessage() for r in caplog.records if "non-finite at step 37" in r.getMessage()]


KILLED = """
import json, os, signal, sys, torch, lrlab
import lrlab.track
if sys.argv[3] != "default":
    lrlab.track.WRITE_SECONDS = float(sys.argv[3])
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(16, 4), torch.randn(16)
run = lrlab.track(opt, name="killed", db=sys.argv[1]).begin()
losses = []
for step in range(1, int(sys.argv[2]) + 1):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
    loss.backward()
    opt.step()
    run.log(loss=loss)
    losses.append(loss.item())
print(json.dumps({"run_id": run.run_id, "losses": losses}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(
    ("steps", "write_seconds", "kept"),
    [pytest.param(1030, "default", 1000, id="every-1000-steps"), pytest.param(120, "0", 120, id="by-time")],
)
def test_a_killed_process_loses_only_the_unwritten_tail(tmp_path, steps, write_seconds, kept):
    import json

    db = tmp_path / "r.db"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    done = subprocess.run([sys.executable, str(script), str(db), str(steps), write_seconds],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == -9, done.stderr
    out = json.loads(done.stdout)
    store = Store(db)
    series = store.steps(out["run_id"])
    assert list(series.step) == list(range(1, kept + 1))  # what was written is all there
    assert list(series.loss) == pytest.approx(out["losses"][:kept], rel=1e-6)
    assert str(store.run(out["run_id"]).status) == "running"
    model = torch.nn.Linear(2, 1)  # the store takes the next run as usual
    with lrlab.track(torch.optim.SGD(model.parameters(), lr=0.1), name="next", db=db) as run:
        run.log(loss=0.5)
    assert str(Store(db).run(run.run_id).status) == "done"


def test_a_declared_objective_the_run_lacks_stops_in_one_line_and_keeps_the_rows(tmp_path):
    db = tmp_path / "r.db"
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lacks = r"^objective 'val_f1' is not a metric of run .*\(its epochs have: train_loss, val_loss, val_mae\)"
    run = lrlab.track(opt, name="lacks", db=db, objective="val_f1", higher_is_better=True)
    with pytest.raises(ValueError, match=lacks) as info, run:
        loop(run, opt, model, steps=30)
    assert "\n" not in str(info.value)
    rec = Store(db).run(run.run_id)
    assert str(rec.status) == "failed" and "objective 'val_f1'" in rec.error
    assert len(Store(db).steps(run.run_id)) == 20 and len(Store(db).epochs(run.run_id)) == 1
    with lrlab.track(opt, name="has", db=db, objective="val_mae") as run:  # a metric it has: no complaint
        loop(run, opt, model, steps=40)
    assert str(Store(db).run(run.run_id).status) == "done"
