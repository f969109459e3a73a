"""A tracked plain loop and a Lightning run with the Recorder, each drawn by ``lrlab report
--sweep`` and opened offline in real Chromium: the figures carry the very LRs, losses and
gradient norms the training saw, with the task's own loss name."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from tests.report.test_browser import CHROMIUM, browser  # noqa: F401  (the module's Chromium fixture)
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

import lrlab
from lrlab.cli.app import app
from lrlab.lightning import Recorder
from lrlab.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

STEPS = 60


def plain_loop(db):
    """A regression MLP trained by hand, its LR decayed by hand; what it saw, read without lrlab."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.linspace(-1, 1, 8)
    seen = {"lr": [], "loss": [], "grad": [], "val_loss": []}
    with lrlab.track(opt, name="houses", sweep="tracked-plain", db=db, objective="val_mae",
                     loss_name="MSE", total_steps=STEPS) as run:  # fmt: skip
        for step in range(1, STEPS + 1):
            idx = torch.randint(0, 256, (32,), generator=g)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
            loss.backward()
            seen["lr"].append(opt.param_groups[0]["lr"])
            seen["loss"].append(loss.item())
            seen["grad"].append(float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm()))
            opt.step()
            run.log(loss=loss, step=step)
            opt.param_groups[0]["lr"] = 0.05 * (1 - step / STEPS) + 1e-3
            if step % 20 == 0:
                with torch.no_grad():
                    err = model(x).squeeze(1) - y
                seen["val_loss"].append(float(err.pow(2).mean()))
                run.epoch(val_loss=err.pow(2).mean(), val_mae=err.abs().mean())
    return run.run_id, seen


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        self.seen = {"lr": [], "loss": []}

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.seen["lr"].append(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.seen["loss"].append(loss.item())
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=0.02)
        decay = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def lightning_run(db):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=16, shuffle=True, generator=g)
    val = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64)
    module, recorder = Classifier(), Recorder(name="tiny-classifier", sweep="tracked-lightning", db=db)
    pl.Trainer(max_epochs=2, callbacks=[recorder], logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, accelerator="cpu").fit(module, train, val)  # fmt: skip
    return recorder.run.run_id, module.seen


def report(db, sweep, out):
    result = CliRunner().invoke(app, ["report", "--db", str(db), "--sweep", sweep, "--out", str(out)],
                                env={"COLUMNS": "200", "NO_COLOR": "1"})  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def open_offline(browser, path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    events = {"console": [], "requests": []}
    page.on("console", lambda m: events["console"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["console"].append(str(e)))

    def refuse(route):
        events["requests"].append(route.request.url)
        route.abort()

    page.route("http://**/*", refuse)
    page.route("https://**/*", refuse)
    page.goto(path.as_uri(), wait_until="load", timeout=120_000)
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 6")
    page.wait_for_timeout(300)
    return page, events


FIGURES = """() => Object.fromEntries([...document.querySelectorAll('.plotly-graph-div')].map(gd => [gd.id, {
    axes: Object.keys(gd.layout).filter(k => /^[xy]axis/.test(k)).map(k => ((gd.layout[k].title) || {}).text || ''),
    paths: [...gd.querySelectorAll('.scatterlayer path')].filter(p => (p.getAttribute('d') || '').length > 20).length,
    traces: gd._fullData.map(t => ({name: t.name, axis: t.yaxis, x: Array.from(t.x || []), y: Array.from(t.y || [])})),
}]))"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory, browser):  # noqa: F811
    tmp = tmp_path_factory.mktemp("tracked")
    db = tmp / "runs.db"
    plain_id, plain_seen = plain_loop(db)
    lit_id, lit_seen = lightning_run(db)
    opened = {}
    for key, sweep, run_id, seen in (("plain", "tracked-plain", plain_id, plain_seen),
                                     ("lightning", "tracked-lightning", lit_id, lit_seen)):  # fmt: skip
        page, events = open_offline(browser, report(db, sweep, tmp / f"{key}.html"))
        opened[key] = {"run_id": run_id, "seen": seen, "events": events, "figures": page.evaluate(FIGURES),
                       "runs": page.inner_text("#runs"), "series": Store(db, readonly=True).steps(run_id)}  # fmt: skip
        page.close()
    return opened


@pytest.mark.parametrize("key", ["plain", "lightning"])
def test_the_page_opens_offline_without_console_errors_and_draws_every_figure(pages, key):
    got = pages[key]
    assert got["events"] == {"console": [], "requests": []}
    figures = got["figures"]
    assert {"fig-loss", "fig-lr", "fig-steps"} <= set(figures)
    for name, figure in figures.items():
        assert figure["traces"] and figure["paths"] > 0, name
    assert got["run_id"] in got["runs"]


@pytest.mark.parametrize("key", ["plain", "lightning"])
def test_the_lr_trace_is_the_lr_each_step_ran_at(pages, key):
    got = pages[key]
    # the momentum never changed (0.9): no momentum panel, the value in the LR panel's title
    [lr] = [t for t in got["figures"]["fig-lr"]["traces"]]
    steps = len(got["seen"]["lr"])
    assert lr["x"] == list(range(1, steps + 1)) and lr["axis"] == "y"
    assert lr["y"] == pytest.approx(got["seen"]["lr"], rel=1e-6)  # float32 in the page
    assert lr["y"] == pytest.approx(list(got["series"].lr), rel=1e-6)
    assert list(got["series"].momentum) == pytest.approx([0.9] * steps, rel=1e-6)
    assert len(set(lr["y"])) > 3  # the decay is drawn, not a constant


@pytest.mark.parametrize("key", ["plain", "lightning"])
def test_the_step_traces_are_the_losses_and_gradient_norms_of_training(pages, key):
    got = pages[key]
    # each panel: every step (faint), then the same smoothed (what its hover reads)
    loss, loss_smoothed, grad, grad_smoothed = got["figures"]["fig-steps"]["traces"]
    assert loss["name"].endswith("(every step)") and grad["name"].endswith("(every step)")
    assert loss["y"] == pytest.approx(got["seen"]["loss"], rel=1e-6)
    assert grad["y"] == pytest.approx(list(got["series"].grad_norm), rel=1e-6)
    if key == "plain":  # recomputed from the gradients the optimizer stepped with
        assert grad["y"] == pytest.approx(got["seen"]["grad"], rel=1e-5)
    from lrlab.report.figures import SMOOTH_FRACTION, ema

    span = max(1.0, SMOOTH_FRACTION * len(loss["y"]))
    assert loss_smoothed["y"] == pytest.approx(list(ema(np.asarray(loss["y"]), span)), rel=1e-6)
    assert grad_smoothed["y"] == pytest.approx(list(ema(np.asarray(grad["y"]), span, log=True)), rel=1e-6)


def test_the_loss_is_named_as_each_task_names_it(pages):
    plain = [title for f in pages["plain"]["figures"].values() for title in f["axes"]]
    lightning = [title for f in pages["lightning"]["figures"].values() for title in f["axes"]]
    assert "loss (MSE)" in plain and "validation loss (MSE)" in plain and "val_mae" in plain
    assert not any("cross-entropy" in t or "nats" in t for t in plain)
    assert "loss (cross-entropy, nats)" in lightning and not any("MSE" in t for t in lightning)
    train, val = pages["plain"]["figures"]["fig-loss"]["traces"][:2]
    assert val["y"] == pytest.approx(pages["plain"]["seen"]["val_loss"], rel=1e-6)
    means = [sum(pages["plain"]["seen"]["loss"][i : i + 20]) / 20 for i in (0, 20, 40)]
    assert train["y"] == pytest.approx(means, rel=1e-5)
