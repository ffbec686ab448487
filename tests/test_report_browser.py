"""The report in a real browser: headless Chromium, offline, no console errors; the explorer,
the legend, the print layout and the phone layout work.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(the ``dev`` extra); skipped with the reason when either is missing. Playwright drives the
system browser, so no browser download is needed.
"""

from __future__ import annotations

import io
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_helpers import (
    FIGURES,
    TEST_PLUGIN,
    fake_results,
    real_run_results,
    registered_test_plugin,
    with_statistics,
)

from cxrbench.report import render_report
from cxrbench.report.context import leaderboard_columns
from cxrbench.scoring.metrics import confusion_counts
from cxrbench.stats import summarize

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
A4_CONTENT_PX = (210 - 20) / 25.4 * 96  # A4 width less the print stylesheet's 10 mm margins
MIN_FIGURE_TEXT_PX = 9


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
def run_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("browser-report")
    with registered_test_plugin() as name:
        results, data_root = real_run_results(out, ["majority", name])
    return render_report(results, out / "report.html", data_root=data_root), results


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten models with long names, a failure and histories: the widest tables a run makes."""
    results = fake_results(n_models=10, n_test=200, histories=True, failures=1)
    for record in results["records"]:
        model = record["model"].replace("model_", "transfer_mobilenetv2_variant_")
        record["job_id"] = record["job_id"].replace(record["model"], model)
        record["model"] = model
    results["summary"] = summarize(results["records"])
    out = tmp_path_factory.mktemp("wide-report")
    return render_report(with_statistics(results, 200), out / "report.html")


@pytest.fixture
def page_of(browser):
    """Open the report in a new page that records console problems and every request."""
    pages = []

    def open_page(path: Path, **options):
        page = browser.new_page(**options)
        page.problems, page.fetched = [], []
        page.on("console", lambda m: page.problems.append(m.text)
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda err: page.problems.append(str(err)))
        page.on("request", lambda r: page.fetched.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


def _model_order(page) -> list[str]:
    return page.eval_on_selector_all("#leaderboard-table tbody tr",
                                     "rows => rows.map(r => r.dataset.model)")


@pytest.mark.slow
def test_report_in_headless_chromium(page_of, run_report, tmp_path):
    report, _ = run_report
    page = page_of(report, viewport=LAPTOP)
    assert page.problems == []
    assert [u for u in page.fetched if not u.startswith(("file:", "data:"))] == []

    # every figure is there, drawn and of a readable size at a laptop's 1366 px
    for figure in FIGURES:
        box = page.locator(f"#{figure} svg").first.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 150, figure
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

    # column chooser and family filter
    page.click("#leaderboard .chooser summary")
    page.uncheck("#leaderboard .chooser input[data-col='brier']")
    assert not page.locator("#leaderboard-table th[data-col='brier']").is_visible()
    page.select_option("#leaderboard select.family-filter", "baseline")
    assert page.locator("#leaderboard-table tbody tr:visible").count() == 1

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 50_000
    assert page.problems == []


def _explorer_counts(page, split: str) -> dict[str, int]:
    return {k: int(page.inner_text(f"#op-{split}-{k}")) for k in ("tp", "fp", "tn", "fn")}


@pytest.mark.slow
def test_explorer_slider_counts_what_python_counts(page_of, run_report):
    report, results = run_report
    page = page_of(report, viewport=LAPTOP)
    page.select_option("#op-record", f"{TEST_PLUGIN}[seed=0]")
    record = next(r for r in results["records"] if r["model"] == TEST_PLUGIN)
    labels = {s: np.asarray(results["evaluation"][s]["labels"]) for s in ("val", "test")}
    scores = {s: np.asarray(record["predictions"][s]) for s in ("val", "test")}
    # at the chosen threshold the explorer agrees with the record's own confusion matrices
    assert _explorer_counts(page, "test") == record["confusion"]["test"]
    assert _explorer_counts(page, "val") == record["confusion"]["val"]
    steps = int(page.get_attribute("#op-slider", "max"))
    seen = set()
    for position in (steps // 5, steps // 2, (4 * steps) // 5):
        page.eval_on_selector("#op-slider", "(el, v) => { el.value = String(v); "
                              "el.dispatchEvent(new Event('input', {bubbles: true})); }",
                              position)
        threshold = float(page.input_value("#op-threshold"))
        seen.add(threshold)
        for split in ("val", "test"):
            assert _explorer_counts(page, split) == confusion_counts(
                labels[split], scores[split], threshold), (split, threshold)
    assert len(seen) == 3  # three different thresholds
    # a typed threshold, and the marked validation target for sensitivity 0.95
    page.fill("#op-threshold", "0.5")
    page.dispatch_event("#op-threshold", "change")
    assert _explorer_counts(page, "test") == confusion_counts(labels["test"], scores["test"],
                                                              0.5)
    page.click("#op-marks button:has-text('0.95')")
    sensitivity = float(page.inner_text("#op-val-sens"))
    assert sensitivity >= 0.95
    assert page.problems == []


@pytest.mark.slow
def test_legend_click_hides_and_shows_a_curve(page_of, run_report):
    report, _ = run_report
    page = page_of(report, viewport=LAPTOP)
    button = page.locator("#curves .legend .series-toggle").first
    series = button.get_attribute("data-series")
    curve = page.locator(f"#figure-roc svg [data-series='{series}']").first
    assert curve.is_visible()
    button.click()
    assert button.get_attribute("aria-pressed") == "false"
    for figure in ("figure-roc", "figure-roc-zoom", "figure-pr"):
        shown = page.locator(f"#{figure} svg [data-series='{series}']")
        assert shown.count() and not any(shown.nth(i).is_visible()
                                         for i in range(shown.count())), figure
    button.click()
    assert curve.is_visible()
    assert page.problems == []


@pytest.mark.slow
@pytest.mark.parametrize("which", ["real-run", "ten-long-names"])
def test_every_leaderboard_column_prints_on_a4(page_of, run_report, wide_report, which):
    pypdf = pytest.importorskip("pypdf", reason="pypdf not installed (pip install -e .[dev])")
    report = run_report[0] if which == "real-run" else wide_report
    page = page_of(report, viewport={"width": round(A4_CONTENT_PX), "height": 1000})
    page.emulate_media(media="print")
    # every table fits the printable width of an A4 page
    widths = page.eval_on_selector_all(
        "table", "ts => ts.map(t => [t.id || t.className, t.getBoundingClientRect().width])")
    too_wide = [(name, w) for name, w in widths if w > A4_CONTENT_PX + 1]
    assert too_wide == []
    pdf = page.pdf(format="A4", print_background=True)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    text = " ".join(unicodedata.normalize("NFKC", text).split())  # "ﬁ" ligatures -> "fi"
    start = text.index("Leaderboard (test split)")
    section = text[start:start + 3000]
    for column in leaderboard_columns():
        words = column["label"].split()
        assert all(word in section for word in words), column["label"]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["real-run", "ten-long-names"])
def test_phone_layout_keeps_figure_text_readable(page_of, run_report, wide_report, which):
    report = run_report[0] if which == "real-run" else wide_report
    page = page_of(report, viewport=PHONE, device_scale_factor=1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    sizes = page.eval_on_selector_all(
        "figure svg text",
        "ts => ts.map(t => parseFloat(getComputedStyle(t).fontSize)"
        " * t.closest('svg').getScreenCTM().a)")
    assert sizes and min(sizes) >= MIN_FIGURE_TEXT_PX, min(sizes)
    assert page.problems == []


@pytest.mark.slow
def test_downloads_enlargements_and_anchors(page_of, run_report, tmp_path):
    report, results = run_report
    page = page_of(report, viewport=LAPTOP)
    # per-image predictions of every record, made in the page from the embedded data
    with page.expect_download() as info:
        page.click("button[data-download='predictions'][data-split='test']")
    table = pd.read_csv(info.value.path())
    assert info.value.suggested_filename == "SYNTHETIC-test-predictions.csv"
    ok = [r for r in results["records"] if r["status"] == "ok"]
    assert len(table) == len(ok) * len(results["evaluation"]["test"]["ids"])
    for record in ok:
        rows = table[table["job_id"] == record["job_id"]]
        assert list(rows["image"]) == results["evaluation"]["test"]["ids"]
        assert np.allclose(rows["probability"], record["predictions"]["test"])
        assert rows["called_pneumonia"].sum() == (record["confusion"]["test"]["tp"]
                                                  + record["confusion"]["test"]["fp"])
    with page.expect_download() as info:
        page.click("#leaderboard button[data-download='leaderboard']")
    assert Path(info.value.path()).read_text() == (report.parent / "leaderboard.csv").read_text()

    # a thumbnail opens a larger copy of its image
    page.click("#gallery button.enlarge >> nth=0")
    assert page.locator("#lightbox").is_visible()
    shown = page.get_attribute("#lightbox-img", "src")
    image_id = page.get_attribute("#gallery button.enlarge >> nth=0", "data-image")
    embedded = page.evaluate("id => JSON.parse(document.getElementById('report-data')"
                             ".textContent).images[id]", image_id)
    assert shown.startswith("data:image/jpeg;base64,") and shown == embedded
    page.keyboard.press("Escape")
    assert not page.locator("#lightbox").is_visible()

    # a section reached from the sticky bar is not hidden under it
    page.click("nav.toc a[href='#records']")
    page.wait_for_timeout(900)  # smooth scrolling
    nav = page.locator("nav.toc").bounding_box()
    heading = page.locator("#records h2").bounding_box()
    assert heading["y"] >= nav["y"] + nav["height"] - 1
    assert page.problems == []
