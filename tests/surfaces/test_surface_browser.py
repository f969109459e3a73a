"""The interactive surface page in a real browser: offline, and the step slider moves the paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrlab.surfaces import run_trajectories
from lrlab.surfaces.drawing import write_surface_figure

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_slider_positions_replay_the_paths_offline(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    trajs = run_trajectories("ravine", ["sgd(lr=0.25)", "nesterov(lr=0.05)"], steps=20)
    out = write_surface_figure(trajs, tmp_path / "ravine.html", max_frames=5, resolution=30)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
        page.goto(out.as_uri(), wait_until="load")
        page.wait_for_function("document.querySelector('.plotly-graph-div .main-svg') !== null")
        # The number of points of each path and of each path's current-point marker.
        lengths = """(gd) => gd._fullData.filter(t => t.legendgroup && t.legendgroup.includes('lr='))
                                         .map(t => t.x.length)"""
        shown = page.evaluate(f"() => ({lengths})(document.querySelector('.plotly-graph-div'))")
        assert shown == [21, 1, 21, 1]  # both paths in full (start + 20 steps), each at its end
        # Move to every slider position with the slider's own arguments, as a click does.
        seen = page.evaluate(
            f"""async () => {{
                const gd = document.querySelector('.plotly-graph-div');
                const out = {{}};
                for (const step of gd.layout.sliders[0].steps) {{
                    await Plotly.animate(gd, ...step.args);
                    out[step.label] = ({lengths})(gd);
                }}
                return out;
            }}"""
        )
        browser.close()
    assert seen == {str(n): [n + 1, 1, n + 1, 1] for n in (0, 5, 10, 15, 20)}
    assert errors == [] and requests == []
