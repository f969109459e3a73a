"""FinderResult: the figure it draws and the record it becomes."""

import numpy as np
import pytest
import torch
from finder_problems import make_classifier
from torch.nn import functional as F

from lrlab.core.records import FinderRecord
from lrlab.finder import FinderResult, find_lr


@pytest.fixture(scope="module")
def result():
    from finder_problems import make_blobs
    from torch.utils.data import DataLoader

    loader = DataLoader(make_blobs(), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    model = make_classifier()
    return find_lr(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9),
        F.cross_entropy,
        loader,
        start_lr=1e-5,
        end_lr=100.0,
        num_iter=60,
    )


def test_plot_marks_every_suggestion_on_a_log_axis(result):
    fig = result.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    [legend] = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    for name, lr in result.suggestions.items():
        assert any(label.startswith(f"{name}: {lr:.3g}") for label in labels)
    assert any("(recommended)" in label for label in labels)
    # the bounds and the chosen LR are named in the legend, not written over the curves
    assert any(label.startswith("cyclic bounds") for label in labels)
    assert any(label.startswith(f"chosen lr={result.lr:.3g}") for label in labels)
    assert len(ax.texts) == 0


def test_plot_writes_png_svg_and_offline_html(result, tmp_path):
    png = result.plot(tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert result.plot(tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    html = result.plot(tmp_path / "f.html").read_text()
    assert "plotly" in html and '"type":"log"' in html.replace(" ", "")
    with pytest.raises(ValueError, match="must end in one of"):
        result.plot(tmp_path / "f.jpg")


def test_plot_is_the_reports_range_test_figure(result, tmp_path):
    from lrlab.plot import save_figure
    from lrlab.plot.range_test import RangeTest, range_test_figure
    from lrlab.report.data import ReportData
    from lrlab.report.figures import finder_figure

    test = RangeTest(result.lrs, result.losses, result.smoothed, result.suggestions, result.lr, result.rule,
                     result.cyclic_bounds())  # fmt: skip
    spec = range_test_figure([test], title="t")
    # The same spec, the same renderer: the same bytes.
    assert (
        result.plot(tmp_path / "a.png", title="t").read_bytes()
        == save_figure(spec, tmp_path / "b.png").read_bytes()
    )
    # The report draws the stored record with the same builder: the same curves and marks.
    record = result.to_record("t", "sgd")
    stored = finder_figure(ReportData("r", [], [], {}, {}, [record], [], {}))
    ours, theirs = spec.panels[0], stored.panels[0]

    def drawn(panel):
        return [(t.mode, t.marker, t.color, t.name if t.mode == "markers" else None) for t in panel.traces]

    assert drawn(ours) == drawn(theirs)
    for a, b in zip(ours.traces, theirs.traces):
        np.testing.assert_array_equal(a.y, b.y)
    assert [v.x for v in ours.vlines] == [v.x for v in theirs.vlines] == [result.lr]
    assert (
        [(s.x0, s.x1) for s in ours.spans] == [(s.x0, s.x1) for s in theirs.spans] == [result.cyclic_bounds()]
    )


def test_importing_the_finder_does_not_import_the_report():
    import subprocess
    import sys

    code = "import sys, lrlab.finder; sys.exit('lrlab.report' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_to_record_carries_everything_the_store_needs(result):
    record = result.to_record("digits-mlp", "sgd(momentum=0.9)", sweep="s1", config={"batch_size": 32})
    assert isinstance(record, FinderRecord)
    assert record.id.startswith("find-") and record.task == "digits-mlp" and record.sweep == "s1"
    np.testing.assert_array_equal(record.lrs, result.lrs)
    np.testing.assert_array_equal(record.losses, result.losses)
    assert record.suggestions == result.suggestions and record.lr == result.lr
    assert (record.base_lr, record.max_lr) == result.cyclic_bounds()
    assert record.config["batch_size"] == 32 and record.config["num_iter"] == 60
    assert record.config["rule"] == result.rule


def test_a_result_without_a_decision_still_draws():
    measured = FinderRecord("", "", "", np.array([1e-3, 1e-2]), np.array([np.nan, np.nan]), np.array([np.nan, np.nan]),
                            {}, float("nan"), "no rule could decide")  # fmt: skip
    empty = FinderResult(measured, rule=None)
    assert empty.plot() is not None and empty.skipped == 2 and not empty.trustworthy
    assert empty.to_record("t", "sgd").base_lr is None


def test_the_result_is_its_record_before_it_is_named(result):
    """One measurement, held once: the result reads the curve, the suggestions and the
    recommendation off its record, and naming it only adds the name and the bounds."""
    assert result.record.id == "" and result.record.base_lr is None
    assert result.lrs is result.record.lrs and result.suggestions is result.record.suggestions
    assert (result.lr, result.reason, result.config) == (result.record.lr, result.record.reason, result.record.config)
    assert result.skipped == int(np.sum(~np.isfinite(result.losses)))
    named = result.to_record("digits-mlp", "sgd", id="f1")
    assert (named.id, named.task, named.optimizer) == ("f1", "digits-mlp", "sgd")
    assert (named.base_lr, named.max_lr) == result.cyclic_bounds()
    assert named.suggestions == result.suggestions and named.suggestions is not result.suggestions
    assert {k: v for k, v in named.config.items() if k not in ("rule", "problem")} == result.config
