"""The report's instrument panel and findings, drawn from a real store of tracked runs."""

from __future__ import annotations

import numpy as np
import torch

import lrlab
from lrlab.report.data import load_report_data
from lrlab.report.figures import build_figures
from lrlab.report.render import write_report
from lrlab.schedules import cosine
from lrlab.store.sqlite import Store
from lrlab.torch import LRScheduler


def _tracked(db, lr: float, per_epoch: bool) -> str:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = LRScheduler(opt, cosine(lr, 60))
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    with lrlab.track(opt, name="panel", sweep="panel", db=db, scheduler=sched, config={"lr": lr}) as run:
        for epoch in range(3):
            for step in range(20):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if not per_epoch or step == 19:
                    sched.step()
                run.log(loss=loss)
            run.epoch(val_loss=loss.item() + 0.01 * epoch)
    return run.run_id


def test_the_panel_draws_the_best_runs_instruments_and_the_page_lists_the_findings(tmp_path):
    db = tmp_path / "r.db"
    good = _tracked(db, 0.05, per_epoch=False)
    bad = _tracked(db, 0.02, per_epoch=True)
    data = load_report_data(Store(db, readonly=True), sweep="panel")
    assert set(data.instruments) == {good, bad}
    (figure,) = [f for f in build_figures(data) if f.key == "instruments"]
    ratio, audit = figure.panels[:2]
    assert len(ratio.traces) == 2 and ratio.ylog and ratio.hline == 1e-3
    drawn = {float(v) for t in audit.traces for v in t.y}
    assert max(drawn) > 1.1 and 1.0 in drawn  # the per-epoch run lags its schedule, the other follows it
    audit_findings = [f for f in data.findings if f.kind == "lr_audit"]
    assert [f.run_ids for f in audit_findings] == [(bad,)]
    assert [v.x for v in audit.vlines] == [float(audit_findings[0].step)]
    files = write_report(data, tmp_path / "report.html", image_dir=tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "instruments" in files.figures and (tmp_path / "report_instruments.png").stat().st_size > 10_000
    assert "lr_audit" in page or "trained at lr" in page
    assert np.isfinite([v for t in ratio.traces for v in t.y if v == v]).all()
