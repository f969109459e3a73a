"""The top of a report page as a PNG (chromium via Playwright), for docs/report.md.

Run: ``python -m tests.report.screenshot lrlab-runs/demo/report.html docs/img/report_page.png``
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def screenshot(page_path: Path, out: Path, width: int = 1280, height: int = 1000) -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.route("http*://**/*", lambda route: route.abort())  # the page is offline
        page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=120_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out))
        browser.close()
    return out


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
