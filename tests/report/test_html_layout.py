"""The top of the page: its title names the study or sweep; a plain sweep keeps the plain ranking."""

from lrlab.report.data import build_report_data
from lrlab.report.html import page_title, render_page

from ._records import epochs, run


def _data(title):
    runs = [run("a0", 0.1, 0), run("a1", 0.1, 1), run("b0", 0.5, 0, sweep="other")]
    eps = {
        "a0": epochs("a0", [1, 0.5], [1, 0.30], [0.2, 0.10]),
        "a1": epochs("a1", [1, 0.5], [1, 0.32], [0.2, 0.12]),
        "b0": epochs("b0", [1, 0.5], [1, 0.50], [0.3, 0.20]),
    }
    return build_report_data(runs, eps, {}, title=title)


def test_a_report_of_chosen_runs_is_titled_by_their_sweeps_not_by_a_count():
    data = _data("3 runs")
    assert page_title(data) == "3 runs of sweeps other, s"
    data.runs = data.runs[:2]
    assert page_title(data) == "2 runs of sweep s"
    assert page_title(_data("Sweep s")) == "Sweep s"


def test_a_sweep_that_is_no_study_opens_with_the_plain_ranking():
    data = _data("Sweep s")
    page = render_page(data, [])
    assert data.study is None and '<h1 id="report-title">Sweep s</h1>' in page
    assert "Best configuration: lr=0.1" in page and 'class="recommended"' not in page
    # the one scorer's order: lr=0.1 (0.11 mean over 2 seeds) before lr=0.5 (0.2)
    assert page.index("<td>lr=0.1</td>") < page.index("<td>lr=0.5</td>")
    assert "0.09 (beyond the spread over seeds)" in page and "Tie rule" not in page
