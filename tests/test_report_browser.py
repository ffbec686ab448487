"""The report in a real browser: headless Chromium, offline, no console errors, sorting works.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(the ``dev`` extra); skipped with the reason when either is missing. Playwright drives the
system browser, so no browser download is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report_helpers import TEST_PLUGIN, real_run_results, registered_test_plugin

from cxrbench.report import render_report

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FIGURES = ("figure-roc", "figure-roc-zoom", "figure-pr", "figure-confusion",
           "figure-reliability", "figure-training", "figure-cost")
LAPTOP = {"width": 1366, "height": 768}


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("no system Chromium: install Debian's `chromium` package to run browser tests")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install -e .[dev])")
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser-report")
    with registered_test_plugin() as name:
        results, data_root = real_run_results(out, ["majority", name])
    return render_report(results, out / "report.html", data_root=data_root)


def _model_order(page) -> list[str]:
    return page.eval_on_selector_all("#leaderboard-table tbody tr",
                                     "rows => rows.map(r => r.dataset.model)")


@pytest.mark.slow
def test_report_in_headless_chromium(browser, report, tmp_path):
    page = browser.new_page(viewport=LAPTOP)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")

    assert problems == []
    assert [u for u in fetched if not u.startswith(("file:", "data:"))] == []

    # every figure is there, drawn and of a readable width at a laptop's 1366 px
    for figure in FIGURES:
        box = page.locator(f"#{figure} svg").bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 150, figure
    assert page.locator("#gallery img").count() >= 4
    # the page itself never scrolls sideways; wide tables scroll inside their wrapper
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]

    # clicking headers re-orders the leaderboard, in each column's better direction
    assert _model_order(page) == [TEST_PLUGIN, "majority"]
    page.click("#leaderboard-table th[data-key='fit_s']")  # fastest first
    assert _model_order(page) == ["majority", TEST_PLUGIN]
    page.click("#leaderboard-table th[data-key='roc_auc']")  # best AUC first
    assert _model_order(page) == [TEST_PLUGIN, "majority"]
    page.click("#leaderboard-table th[data-key='roc_auc']")  # again: reversed
    assert _model_order(page) == ["majority", TEST_PLUGIN]
    header = page.locator("#leaderboard-table th[data-key='roc_auc']")
    assert header.get_attribute("aria-sort") == "ascending"

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 50_000
    assert problems == []
    page.close()
