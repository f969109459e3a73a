"""The HTML report in a real browser (Debian's chromium driven by Playwright)."""

from pathlib import Path

import pytest
from tests.report.synthetic import synthetic_sweep

from lrlab.report.data import build_report_data
from lrlab.report.render import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
XSS_IMG = '<img src=x onerror="window.__xss=1;alert(1)"> & co'
XSS_SCRIPT = "<script>window.__xss=2</script>"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (CI installs it)"
    ),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    sw = synthetic_sweep(
        lrs=(0.01, 0.3, 2.0), seeds=(0, 1), optimizers=("sgd", XSS_IMG), epochs=6, steps_per_epoch=200,
        task=XSS_SCRIPT,
    )  # fmt: skip
    data = build_report_data(sw.runs, sw.epochs, sw.steps, title=f"Sweep {XSS_IMG}")
    out = tmp_path_factory.mktemp("browser") / "report.html"
    write_report(data, out)
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def loaded(browser, report):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    events = {"console": [], "dialogs": [], "requests": []}
    page.on("console", lambda m: events["console"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["console"].append(str(e)))

    def on_dialog(dialog):
        events["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda r: events["requests"].append(r.url) if not r.url.startswith("file:") else None)
    page.goto(report.as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 7")
    page.wait_for_timeout(300)
    yield page, events
    page.close()


def test_the_page_loads_offline_without_console_errors(loaded):
    _page, events = loaded
    assert events["console"] == []
    assert events["requests"] == []


def test_every_chart_renders_traces_and_svg_paths(loaded):
    page, _ = loaded
    charts = page.evaluate(
        """() => [...document.querySelectorAll('.plotly-graph-div')].map(gd => ({
            id: gd.id,
            traces: gd.data.length,
            paths: [...gd.querySelectorAll('.scatterlayer path')]
                .filter(p => (p.getAttribute('d') || '').length > 20).length,
        }))"""
    )
    assert [c["id"] for c in charts] == [
        "fig-loss",
        "fig-metrics",
        "fig-gap",
        "fig-lr",
        "fig-ucurve",
        "fig-steps",
    ]
    for chart in charts:
        assert chart["traces"] > 0 and chart["paths"] > 0, chart


def test_clicking_a_legend_entry_hides_that_configuration(loaded):
    page, _ = loaded
    count = "() => [...document.querySelectorAll('#fig-loss .scatterlayer .trace')].filter(t => t.style.opacity !== '0').length"
    before = page.evaluate(count)
    page.locator("#fig-loss .legend .traces .legendtoggle").first.click(force=True)
    page.wait_for_timeout(700)
    hidden = page.evaluate(
        "() => document.getElementById('fig-loss').data.filter(t => t.visible === 'legendonly').map(t => t.legendgroup)"
    )
    after = page.evaluate(count)
    assert hidden and len(set(hidden)) == 1  # one configuration: train, val, band (and marker)
    assert after < before
    page.locator("#fig-loss .legend .traces .legendtoggle").first.click(force=True)  # and back
    page.wait_for_timeout(700)
    assert page.evaluate(count) == before


def test_the_log_button_switches_the_y_axis(loaded):
    page, _ = loaded
    page.locator("#fig-loss .updatemenu-button", has_text="log y").click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => document.getElementById('fig-loss').layout.yaxis.type") == "log"
    page.locator("#fig-loss .updatemenu-button", has_text="linear y").click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => document.getElementById('fig-loss').layout.yaxis.type") == "linear"


def test_hostile_labels_show_as_text_and_never_run(loaded):
    page, events = loaded
    assert page.evaluate("() => window.__xss === undefined")
    assert events["dialogs"] == []
    assert page.evaluate("() => document.querySelectorAll('body img').length") == 0
    assert XSS_IMG in page.inner_text("#report-title")
    legend = page.evaluate(
        "() => [...document.querySelectorAll('#fig-loss .legendtext')].map(t => t.textContent)"
    )
    assert any(XSS_IMG in text for text in legend), legend
    table = page.inner_text("#runs")
    assert XSS_IMG in table


def test_screenshot_is_saved_as_an_artifact(loaded):
    page, _ = loaded
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "report.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 50_000


def test_the_answer_comes_first_and_the_diagnostics_are_grouped(loaded):
    page, _ = loaded
    top = page.evaluate(
        """() => ({
            answer: document.querySelector('#answer').getBoundingClientRect().top,
            firstFigure: document.querySelector('section.figure').getBoundingClientRect().top,
            diagnostics: document.querySelector('#diagnostics').getBoundingClientRect().top,
            viewport: window.innerHeight,
            rows: document.querySelectorAll('#leaderboard-table tbody tr').length,
            best: document.querySelector('#best').textContent,
            kinds: [...document.querySelectorAll('details.kind')].map(d => d.dataset.kind),
        })"""
    )
    assert top["answer"] < top["viewport"] and top["answer"] < top["firstFigure"] < top["diagnostics"]
    assert top["rows"] >= 3 and top["best"].startswith("Best configuration")
    assert "divergence" in top["kinds"] and len(top["kinds"]) == len(set(top["kinds"]))


# ---------------------------------------------------------------- at the scale of a study


@pytest.fixture(scope="module", params=[54, 540], ids=["54-runs", "540-runs"])
def study_page(request, browser, tmp_path_factory):
    """A study-shaped report (3 optimizers x 9 schedules, some diverged) opened offline: every
    http(s) request is routed to a failure and recorded, console errors and warnings kept."""
    from tests.report.synthetic import study_sweep

    if request.param == 54:
        sw = study_sweep(lrs=(0.1, 0.6), seeds=(0,), epochs=6, steps_per_epoch=40)
    else:
        lrs = (0.003, 0.006, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 1.0)
        sw = study_sweep(lrs=lrs, seeds=(0, 1), epochs=6, steps_per_epoch=40)
    assert len(sw.runs) == request.param and any(r.status == "diverged" for r in sw.runs)
    data = build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders, title=f"Study of {len(sw.runs)} runs")
    out = tmp_path_factory.mktemp(f"study{request.param}") / "report.html"
    write_report(data, out)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    events = {"console": [], "requests": []}
    page.on("console", lambda m: events["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: events["console"].append(str(e)))

    def refuse(route):
        events["requests"].append(route.request.url)
        route.abort()

    page.route("http://**/*", refuse)
    page.route("https://**/*", refuse)
    page.goto(out.as_uri(), wait_until="load", timeout=240_000)  # 540 runs: a large page for plotly to draw
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 7", timeout=240_000)
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"report_study_{request.param}.png"))
    yield page, events, request.param
    page.close()


def test_a_study_report_opens_offline_without_console_errors_or_warnings(study_page):
    _page, events, _runs = study_page
    assert events["console"] == []
    assert events["requests"] == []


def test_the_recommendation_is_in_the_first_viewport(study_page):
    page, _events, _runs = study_page
    box = page.evaluate(
        """() => { const r = document.querySelector('#best').getBoundingClientRect();
                   return {top: r.top, bottom: r.bottom, height: window.innerHeight}; }"""
    )
    assert box["top"] >= 0 and box["bottom"] <= box["height"] == 800, box


def test_no_legend_is_clipped(study_page):
    """Every legend entry in a figure's data (and its named lines and bands) is drawn, inside
    its chart and without a scrollbar hiding some of them; at most ten colours plus the grey rest."""
    page, _events, runs = study_page
    charts = page.evaluate(
        """() => [...document.querySelectorAll('.plotly-graph-div')].map(gd => {
            const groups = new Set(gd.data.filter(t => t.showlegend !== false).map(t => t.legendgroup || t.name));
            (gd.layout.shapes || []).filter(s => s.showlegend).forEach(s => groups.add(s.legendgroup || s.name));
            const box = gd.getBoundingClientRect();
            const items = [...gd.querySelectorAll('.legend .traces')].map(t => t.getBoundingClientRect());
            const scroll = gd.querySelector('.legend .scrollbar');
            return {id: gd.id, inData: groups.size, drawn: items.length,
                    inside: items.every(r => r.top >= box.top && r.bottom <= box.bottom + 1 && r.height > 0),
                    scrollbar: scroll ? scroll.getBoundingClientRect().height : 0};
        })"""
    )
    assert len(charts) >= 7
    for chart in charts:
        assert chart["drawn"] == chart["inData"], chart
        assert chart["inside"] and chart["scrollbar"] == 0, chart
    loss = next(c for c in charts if c["id"] == "fig-loss")
    assert loss["drawn"] <= 11 and (runs < 100 or loss["drawn"] >= 2)
