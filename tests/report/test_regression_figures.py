"""A regression sweep's report speaks of its own loss and metric, not of cross-entropy and
classification error."""

from __future__ import annotations

from lrlab.core.records import EpochRecord, Objective, RunConfig, RunRecord, RunStatus
from lrlab.report import load_report_data
from lrlab.report.axes import loss_label
from lrlab.report.figures import metrics_figure
from lrlab.store.sqlite import Store


def test_a_regression_report_draws_val_mae_beside_the_mse(tmp_path):
    store = Store(tmp_path / "runs.db")
    declared = Objective.for_kind("regression")
    for i, lr in enumerate((0.01, 0.1)):
        rid = f"r{i}"
        store.begin_run(RunRecord(rid, "reg", RunStatus.QUEUED, RunConfig(task="reg", lr=lr), 0),
                        {"objective": declared.to_dict()})  # fmt: skip
        store.append_metrics(
            rid,
            [(s, 1 + s // 5, [lr], None, 1.0 / (s + 1), 0.5) for s in range(10)],
            [EpochRecord(rid, e, 5 * e, 0.5 / e, 0.6 / e, None, None, 0.1,
                         {"val_mae": 0.4 / e + lr, "val_r2": 1 - 0.1 / e}) for e in (1, 2)],
        )  # fmt: skip
        store.end_run(rid, RunStatus.DONE)
    data = load_report_data(store, sweep="reg")
    assert loss_label("validation loss", data=data) == "validation loss (MSE)"
    spec = metrics_figure(data)
    left, right = spec.panels
    assert left.ylabel == "validation loss (MSE)"
    assert spec.title == "Validation loss vs val_mae" and "cross-entropy" not in spec.caption
    assert right.ylabel == "val_mae" and len(right.traces) == 2
    maes = sorted(float(t.y[-1]) for t in right.traces)
    assert maes == [0.2 + 0.01, 0.2 + 0.1]
