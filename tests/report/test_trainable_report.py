"""The report of a trial function's runs (no validation loss, only the objective it declared,
such as a mean return or a score) plots that objective with its direction and never draws an
empty panel: from a real store written by a tiny study of a trainable."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lrlab
from lrlab.core.records import EpochRecord, Objective, RunConfig, RunRecord, RunStatus
from lrlab.report import load_report_data, write_report
from lrlab.report.figures import build_figures, metrics_figure
from lrlab.store.sqlite import Store


@lrlab.trainable(objective="score", direction="maximize", epochs=3, steps_per_epoch=2, lr_range=(1e-3, 1e-1))
def scored(trial: lrlab.Trial) -> None:
    """Reports only its score (peaked at lr = 0.01 in log LR), logs no loss."""
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            opt.zero_grad()
            (weight - 1.0).pow(2).sum().backward()
            opt.step()
            sched.step()
        trial.report(epoch, score=epoch * (1.0 - (math.log10(trial.lr) + 2.0) ** 2))


@pytest.fixture(scope="module")
def report_data(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("trainable") / "runs.db"
    result = lrlab.study(scored, optimizers=["sgd"], store=path, schedules=["constant", "cosine"])
    return load_report_data(Store(path), sweep=result.result.name)


def _finite(trace) -> bool:
    return bool(np.isfinite(np.asarray(trace.y, dtype=np.float64)).any())


def test_no_figure_has_an_empty_panel(report_data) -> None:
    figures = build_figures(report_data)
    assert figures
    for spec in figures:
        for panel in spec.panels:
            assert any(_finite(t) for t in panel.traces) or panel.contour is not None, (spec.key, panel.title)
    titles = [p.title for spec in figures for p in spec.panels]
    assert not [t for t in titles if "Validation loss" in t or "Training loss" in t]


def test_the_objective_is_drawn_with_its_direction(report_data) -> None:
    figures = {spec.key: spec for spec in build_figures(report_data)}
    (panel,) = figures["metrics"].panels
    assert panel.ylabel == "score (higher is better)" and "score" in figures["metrics"].title
    finals = {t.name: float(t.y[-1]) for t in panel.traces}
    assert finals and max(finals.values()) == pytest.approx(3.0)  # lr = 0.01 scores 3 at epoch 3
    ucurve = figures["ucurve"].panels[0]
    assert ucurve.ylabel == "final score (higher is better)" and any(_finite(t) for t in ucurve.traces)
    assert figures["steps"].title == "Gradient norm vs step"  # the function logged no loss


def test_the_pngs_show_the_objective(report_data, tmp_path: Path) -> None:
    files = write_report(report_data, tmp_path / "report.html", image_dir=tmp_path / "img")
    assert "metrics" in files.figures and "loss" not in files.figures and "gap" not in files.figures
    png = tmp_path / "img" / "report_metrics.png"
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert pixels.std() > 10  # lines drawn, not a blank canvas
    page = (tmp_path / "report.html").read_text()
    assert "score (higher is better)" in page and "Validation loss" not in page


def test_a_minimised_objective_says_lower_is_better(tmp_path: Path) -> None:
    store = Store(tmp_path / "runs.db")
    declared = Objective(metric="cost", higher_is_better=False, loss="as logged", unit="")
    for i, lr in enumerate((0.01, 0.1)):
        rid = f"r{i}"
        store.begin_run(RunRecord(rid, "t", RunStatus.QUEUED, RunConfig(task="t", lr=lr), 0),
                        {"objective": declared.to_dict()})  # fmt: skip
        store.append_metrics(
            rid,
            [(s, 1 + s // 5, [lr], None, math.nan, 0.5) for s in range(10)],
            [EpochRecord(rid, e, 5 * e, None, None, None, None, 0.1, {"cost": lr / e}) for e in (1, 2)],
        )
        store.end_run(rid, RunStatus.DONE)
    data = load_report_data(store, sweep="t")
    spec = metrics_figure(data)
    (panel,) = spec.panels
    assert panel.ylabel == "cost (lower is better)" and "lower is better" in spec.title
    assert sorted(float(t.y[-1]) for t in panel.traces) == pytest.approx([0.005, 0.05])
