"""The HTML report, leaderboard.md and leaderboard.csv: content, shapes of runs, no network."""

from __future__ import annotations

import copy
import re
from pathlib import Path

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
from cxrbench.report.cost_figures import pareto_front
from cxrbench.report.svg import clean_svg
from cxrbench.report.tables import leaderboard_markdown
from cxrbench.results.io import write_results
from cxrbench.results.leaderboard import leaderboard
from cxrbench.stats import summarize

SECTIONS = ("headline", "leaderboard", "comparisons", "operating-points", "curves", "confusion",
            "calibration", "cost", "gallery", "seeds", "data", "split-plan", "provenance",
            "failures", "methods")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """majority and a fast test plugin, run for real on a small synthetic data set."""
    with registered_test_plugin() as name:
        return real_run_results(tmp_path_factory.mktemp("real-run"), ["majority", name])


def assert_offline(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert not re.search(r'\b(?:src|href)="(?!#|data:)', html), "external reference"


def test_report_of_a_real_run(real_run, tmp_path):
    results, data_root = real_run
    assert results["statistics"]["available"]  # written by the harness (write_results)
    path = render_report(results, tmp_path / "report.html", data_root=data_root)
    html = path.read_text()
    assert_offline(html)
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    for figure in FIGURES:
        match = re.search(rf'id="{figure}">\s*(?:<figure>\s*)?<svg', html)
        assert match, f"{figure} missing"
    assert 'id="synthetic-banner"' in html and "SYNTHETIC DATA" in html
    assert html.count("data:image/jpeg;base64,") >= 4  # the gallery read the test images
    assert f'data-model="{TEST_PLUGIN}"' in html and 'data-model="majority"' in html
    # the best model is the plugin, marked, with intervals in the leaderboard
    assert results["statistics"]["best_model"] == TEST_PLUGIN
    assert re.search(r'<tr class="best" data-model="' + TEST_PLUGIN, html)
    assert '<span class="ci">[' in html

    markdown = (tmp_path / "leaderboard.md").read_text()
    assert f"**{TEST_PLUGIN}** ◆" in markdown and "SYNTHETIC DATA" in markdown
    table = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(table["model"]) == [TEST_PLUGIN, "majority"]
    assert {"roc_auc_low", "roc_auc_high", "brier", "delong_p_holm"} <= set(table.columns)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_models": 1},
        {"n_models": 4, "n_seeds": 3, "failures": 2, "histories": True},
        {"n_models": 3, "status": "running"},
        {"n_models": 0, "failures": 2},
    ],
    ids=["one-model", "seeds-and-failures", "running", "all-failed"],
)
def test_report_shapes_of_runs(tmp_path, kwargs):
    results = with_statistics(fake_results(n_test=80, **kwargs))
    html = render_report(results, tmp_path / "report.html").read_text()
    assert_offline(html)
    n_ok_models = kwargs["n_models"]
    assert html.count("<tr class=\"best\"") == (1 if n_ok_models else 0)
    assert ('id="figure-training"' in html) == bool(kwargs.get("histories"))
    if kwargs.get("status") == "running":
        assert 'id="status-banner"' in html and "3 of 3" in html
    if kwargs.get("failures"):
        assert html.count('class="text err"') == kwargs["failures"]
        assert "boom 0 &lt;&amp;&gt;" in html and "boom 0 <&>" not in html  # escaped
    if not n_ok_models:
        assert "No successful record yet" in html
    assert (tmp_path / "leaderboard.md").is_file() and (tmp_path / "leaderboard.csv").is_file()


@pytest.mark.slow
def test_report_of_twenty_models_on_624_images_stays_small(tmp_path):
    results = with_statistics(fake_results(n_models=20, n_test=624, histories=True), 200)
    path = render_report(results, tmp_path / "report.html")
    html = path.read_text()
    assert_offline(html)
    assert html.count("<tr data-model=") + html.count('<tr class="best"') == 20
    assert path.stat().st_size < 5 * 2**20, f"{path.stat().st_size / 2**20:.1f} MB"


def test_older_results_without_statistics_get_them(tmp_path):
    results = fake_results(n_models=2, n_test=60)
    assert "statistics" not in results
    html = render_report(results, tmp_path / "report.html").read_text()
    assert "Holm" in html and "<span class=\"ci\">[" in html
    assert "statistics" not in results  # the caller's dict is not modified


def test_resumed_sessions_and_run_note_are_shown(tmp_path):
    results = with_statistics(fake_results(n_models=2, n_test=60))
    results["run"]["note"] = "assembled from two machines"
    results["run"]["resumed"] = [{
        "started": "2026-11-29T23:02:34+00:00", "finished": "2026-11-29T23:31:13+00:00",
        "git": {"commit": "04ac04204a3d", "dirty": False, "error": None},
        "jobs": ["model_01[seed=1]", "model_01[seed=2]"],
    }]
    html = render_report(results, tmp_path / "report.html").read_text()
    assert "assembled from two machines" in html and "resumed 1 time(s)" in html
    assert "04ac04204a3d" in html and "2 job(s), model_01[seed=1], model_01[seed=2]" in html


def test_gallery_is_skipped_when_the_data_is_not_reachable(tmp_path):
    results = with_statistics(fake_results(n_models=2, n_test=60))
    html = render_report(results, tmp_path / "r.html", data_root=tmp_path / "gone").read_text()
    assert "Gallery skipped" in html and "data:image" not in html  # figures are all vector


def test_clean_svg_drops_prolog_namespaces_and_prefixes_ids():
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
           '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
           '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="100pt" height="50pt" '
           'viewBox="0 0 100 50" xmlns="http://www.w3.org/2000/svg"><defs>'
           '<clipPath id="p1"><rect/></clipPath><path id="m2"/></defs>'
           '<g clip-path="url(#p1)"><use xlink:href="#m2"/></g></svg>')
    cleaned = clean_svg(svg, "fig-a")
    assert cleaned.startswith("<svg") and "http" not in cleaned and "xmlns" not in cleaned
    assert 'id="fig-a-p1"' in cleaned and "url(#fig-a-p1)" in cleaned
    assert 'href="#fig-a-m2"' in cleaned and 'width="100pt"' not in cleaned
    assert "max-width:147px" in cleaned  # 100 pt at 4/3 px per pt, at most 110 %


def test_pareto_front_keeps_models_no_other_beats_on_cost_and_quality():
    points = {"fast": (1.0, 0.7), "slow_good": (100.0, 0.95), "dominated": (50.0, 0.69),
              "middle": (10.0, 0.9), "tie_slower": (10.0, 0.85)}
    assert pareto_front(points) == ["fast", "middle", "slow_good"]


def test_markdown_marks_best_and_escapes_pipes():
    results = with_statistics(fake_results(n_models=3, n_test=60, failures=1))
    results["records"] = [dict(r, model=r["model"].replace("model_01", "a|b"))
                          for r in results["records"]]
    results["summary"] = summarize(results["records"])
    results = with_statistics(results)
    rows = leaderboard(results).to_dict("records")
    text = leaderboard_markdown(results, rows)
    assert "**model_02** ◆" in text and "a\\|b" in text
    assert "1 failed job(s)" in text and "broken_0[seed=0]" in text
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    assert all(line.count(" | ") >= header.count(" | ") - 1
               for line in text.splitlines() if line.startswith("| "))


def test_cli_report_writes_the_html_beside_the_results(tmp_path, capsys):
    from cxrbench.cli import main

    results = copy.deepcopy(fake_results(n_models=2, n_test=60))
    path = write_results(tmp_path / "results.json", results)
    assert main(["report", str(path)]) == 0
    assert (tmp_path / "report.html").is_file() and (tmp_path / "leaderboard.md").is_file()


def test_gallery_frames_the_thorax_crop_of_a_model_that_crops(tmp_path):
    from chest_helpers import chest
    from PIL import Image

    results = with_statistics(fake_results(n_models=2, n_test=60))
    for record in results["records"]:
        if record["model"] == "model_01":  # the better model: first in the gallery
            record["fit_info"]["preprocessing"] = {"intensity": "none", "thorax_crop": True}
    root = tmp_path / "data"
    for i, record_id in enumerate(results["evaluation"]["test"]["ids"]):
        (root / record_id).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(chest(size=128, seed=i)).save(root / record_id, format="JPEG")
    html = render_report(results, tmp_path / "r.html", data_root=root).read_text()
    section = html[html.index('<section id="gallery">'):]
    section = section[:section.index("</section>")]
    cropped, plain = section.split("<h3>model_00")
    assert "the dashed frame is the crop it saw" in cropped
    assert cropped.count('class="crop-box"') == cropped.count('class="thumb"') > 0
    assert 'class="crop-box"' not in plain
    box = re.search(r'class="crop-box" style="top: ([\d.]+)%; left: ([\d.]+)%; '
                    r'width: ([\d.]+)%; height: ([\d.]+)%"', cropped)
    top, left, width, height = map(float, box.groups())
    # chest() puts the lungs at rows 20-75 % and columns 18-82 %: the frame holds them.
    assert top <= 20 and top + height >= 75 and left <= 18 and left + width >= 82
    assert width < 100 or height < 100
