"""The transfer's figure and page, drawn from a result built on known optima (no training):
the band holds the prediction at the target, the PNG and the page are written whole."""

import math
from pathlib import Path

import numpy as np
import pytest

from lrlab.core.bracket import fit_optimum, fit_power_law
from lrlab.transfer import TransferResult
from lrlab.transfer.figure import band


def _optimum(centre: float, noise: float, seed: int):
    """A U-curve in log LR around ``centre``, two seeds, bracketed on a half-octave grid."""
    rng = np.random.default_rng(seed)
    lrs = [centre * 2 ** (k / 2) for k in range(-3, 4)]
    losses = [[(math.log(lr / centre)) ** 2 + noise * rng.standard_normal() for _ in range(2)] for lr in lrs]
    return fit_optimum(lrs, losses)


@pytest.fixture(scope="module")
def result():
    scales = (32.0, 64.0, 128.0)
    optima = tuple(_optimum(0.01 * (s / 32) ** -0.5, 0.02, i) for i, s in enumerate(scales))
    law = fit_power_law(scales, optima, 1024)
    return TransferResult(name="synthetic", axis="width", target=1024.0, optimizer="adam", schedule="cosine",
                          seeds=2, parametrization="standard", law=law, scales=scales, proxies=optima,
                          target_steps=500, proxy_steps=(500, 500, 500), store_path=Path("none.db"),
                          sweeps=())  # fmt: skip


def test_the_fit_recovers_a_known_slope(result):
    assert result.slope == pytest.approx(-0.5, abs=0.1)
    assert result.interval[0] < 0.01 * 32**-0.5 < result.interval[1]
    assert not result.transfers_unchanged
    assert "reusing the largest proxy's optimum" in str(result)


def test_the_band_runs_from_the_smallest_proxy_to_the_target_and_holds_the_prediction(result):
    scales, lrs, low, high = band(result)
    assert scales[0] == pytest.approx(32) and scales[-1] == pytest.approx(1024)
    assert np.all(low <= lrs) and np.all(lrs <= high)
    assert lrs[-1] == pytest.approx(result.lr) and (low[-1], high[-1]) == pytest.approx(result.interval)


def test_the_report_writes_the_page_and_the_png(result, tmp_path):
    page = result.report(tmp_path / "out" / "transfer.html")
    png = page.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = page.read_text()
    assert "data:image/png;base64," in text and text.count("<tr>") == 4  # header + three proxies
    assert "LR* ~ width^" in text and "torch.optim.Adam" in text
    assert "<tr class='self-check'><td>128: the law of 32, 64</td>" in text
    assert "self-check: the law fitted on width 32 and 64 predicted 128&#x27;s optimum" in text
    assert "the proxies&#x27; 500 steps" in text.replace("\n# ", " ") and "the study" not in text
    with pytest.raises(ValueError, match=r"must end in \.html"):
        result.report(tmp_path / "transfer.png")


CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_page_shows_the_figure_and_the_table_offline_in_a_browser(result, tmp_path):
    from playwright.sync_api import sync_playwright

    page_path = result.report(tmp_path / "transfer.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        outside: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None
        )
        page.goto(page_path.as_uri(), wait_until="load")
        width, height = page.evaluate(
            "() => [document.images[0].naturalWidth, document.images[0].naturalHeight]"
        )
        rows = page.evaluate("() => document.querySelectorAll('table tr').length")
        verdict = page.inner_text("ul.verdict")
        browser.close()
    assert (errors, outside) == ([], [])
    assert width > 800 and height > 300  # the PNG decoded
    assert rows == 5  # header, three proxies, the self-check
    assert verdict.startswith("Predicted optimal LR at width 1024")
