"""What the report says: computed sentences, verdicts, tables, files and their names."""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pandas as pd
import pytest
from report_helpers import fake_results, with_statistics

from cxrbench.report import render_report
from cxrbench.report.audit import audit_summary
from cxrbench.report.clinical import clinical_rows, confusion_ratios
from cxrbench.report.reading import verdict
from cxrbench.report.records import reproduce_command


@pytest.fixture(scope="module")
def four_models():
    return with_statistics(fake_results(n_models=4, n_seeds=2, n_test=120, histories=True))


def test_leaderboard_csv_is_rounded_and_says_what_it_was_made_on(four_models, tmp_path):
    render_report(four_models, tmp_path / "report.html")
    text = (tmp_path / "leaderboard.csv").read_text()
    table = pd.read_csv(io.StringIO(text), dtype={"commits": str})
    assert len(table.columns) < 45
    assert {"data_hash", "split_sha256", "commits", "threshold_rule", "data"} <= set(table.columns)
    assert set(table["data"]) == {"real"} and set(table["commits"]) == {"0" * 12}
    numbers = re.findall(r"\d+\.\d+", text)
    assert numbers and max(len(n.split(".")[1]) for n in numbers) <= 4


def test_synthetic_run_is_marked_in_every_output(tmp_path):
    results = with_statistics(fake_results(n_models=2, n_test=60, synthetic=True))
    results["provenance"]["data"]["kind"] = "synthetic"
    html = render_report(results, tmp_path / "report.html").read_text()
    assert "(synthetic, SYNTHETIC)" not in html and "SYNTHETIC</strong>" in html
    assert set(pd.read_csv(tmp_path / "leaderboard.csv")["data"]) == {"SYNTHETIC"}


def test_report_files_follow_the_umask(four_models, tmp_path):
    old = os.umask(0o022)
    try:
        path = render_report(four_models, tmp_path / "report.html")
    finally:
        os.umask(old)
    for written in (path, tmp_path / "leaderboard.md", tmp_path / "leaderboard.csv"):
        assert written.stat().st_mode & 0o777 == 0o644, written


def test_tables_beside_another_name_take_its_stem(four_models, tmp_path):
    (tmp_path / "leaderboard.md").write_text("another run's table")
    render_report(four_models, tmp_path / "review.html")
    assert (tmp_path / "review.leaderboard.md").is_file()
    assert (tmp_path / "review.leaderboard.csv").is_file()
    assert (tmp_path / "leaderboard.md").read_text() == "another run's table"


def test_all_failed_report_does_not_claim_successes(tmp_path):
    results = with_statistics(fake_results(n_models=0, failures=2, n_test=60))
    results["statistics"]["method"] = {}
    html = render_report(results, tmp_path / "report.html").read_text()
    assert "one successful seed" not in html and "No successful record" in html
    assert "took ?" not in html and "2 job(s) failed" in html


def test_figures_have_accessible_names_and_data_tables(four_models, tmp_path):
    html = render_report(four_models, tmp_path / "report.html").read_text()
    svgs = re.findall(r"<svg [^>]*>", html)
    figures = [s for s in svgs if "figure-svg" in s]
    assert figures and all(re.search(r'aria-label="[^"]{20,}"', s) for s in figures)
    assert html.count("<title>") >= len(figures)
    for table in ("curves-table", "reliability-table", "cost-table"):
        assert f'id="{table}"' in html


def test_records_show_hyperparameters_history_and_command(tmp_path):
    results = fake_results(n_models=2, n_test=60, histories=True)
    record = results["records"][-1]
    record["params"] = {"epochs": 3}
    record["fit_info"]["chosen"] = {"C": 10.0}
    results["run"]["command"] = ["cxrbench", "run", "--suite", "full"]
    html = render_report(with_statistics(results), tmp_path / "report.html").read_text()
    assert "<code>epochs=3</code>" in html and "<code>C=10</code>" in html
    assert "Training history" in html and "xxxxxxxx" in html  # the job id is explained
    assert "cxrbench run --suite full" in html
    command = reproduce_command(results, record)
    assert command.startswith("cxrbench run --data /nonexistent/cxr-data --models model_01")
    assert "--param model_01.epochs=3" in command and "--split-seed 0" in command


def test_data_path_is_shown_resolved(four_models, tmp_path):
    results = dict(four_models)
    data = tmp_path / "data"
    data.mkdir()
    results["provenance"] = {**results["provenance"],
                             "data": {**results["provenance"]["data"],
                                      "path": str(tmp_path / "x" / ".." / "data")}}
    html = render_report(results, tmp_path / "report.html").read_text()
    assert f"<dd>{data.resolve()} (kaggle)" in html and "/../" not in html


def test_how_to_read_states_the_threshold_shift_when_it_occurs(tmp_path):
    results = fake_results(n_models=3, n_test=120)
    for record in results["records"]:
        record["metrics"]["val"]["specificity"] = 0.99  # far above any test interval
    html = render_report(with_statistics(results), tmp_path / "report.html").read_text()
    section = html[html.index('id="how-to-read"'):html.index('id="headline"')]
    assert "does not transfer to the test split</strong> for 3 of 3" in section
    assert "median 0.99 on validation" in section
    results = fake_results(n_models=3, n_test=120)
    for record in results["records"]:
        record["metrics"]["val"]["specificity"] = record["metrics"]["test"]["specificity"]
    html = render_report(with_statistics(results), tmp_path / "report.html").read_text()
    assert "carry over to test" in html and "does not transfer" not in html


def test_verdicts_agree_with_adjusted_p_and_interval():
    assert verdict({"not_worse": False, "auc_diff": {"low": -0.1, "high": -0.05}})["key"] \
        == "worse"
    unadjusted = verdict({"not_worse": True, "auc_diff": {"low": -0.025, "high": -0.003}})
    assert unadjusted["key"] == "unadjusted" and "Holm" in unadjusted["text"]
    assert verdict({"not_worse": True, "auc_diff": {"low": -0.01, "high": 0.02}})["key"] \
        == "tied"


def test_headline_says_a_model_is_tied_and_better_elsewhere(tmp_path):
    results = with_statistics(fake_results(n_models=2, n_test=80))
    rows = {r: None for r in ()}
    del rows
    best = results["statistics"]["best_model"]
    other = next(m for m in results["statistics"]["comparisons"])
    results["statistics"]["comparisons"][other]["not_worse"] = True
    results["statistics"]["comparisons"][other]["delong"]["p_holm"] = 0.8
    html = render_report(results, tmp_path / "report.html").read_text()
    headline = html[html.index('id="headline"'):html.index('id="leaderboard"')]
    assert f"<strong>{best}</strong>" in headline and "tied with it" in headline
    assert other in headline


def test_clinical_ratios_match_the_confusion_matrix(four_models):
    assert confusion_ratios({"tp": 90, "fp": 20, "fn": 10, "tn": 80}) == pytest.approx({
        "ppv": 90 / 110, "npv": 80 / 90, "lr_pos": 0.9 / 0.2, "lr_neg": 0.1 / 0.8,
        "sensitivity": 0.9, "specificity": 0.8})
    rows = clinical_rows(four_models, ["model_03"])
    record = next(r for r in four_models["records"] if r["job_id"] == "model_03[seed=0]")
    twin = next(r for r in four_models["records"] if r["job_id"] == "model_03[seed=1]")
    expected = np.mean([confusion_ratios(r["confusion"]["test"])["npv"] for r in (record, twin)])
    npv = rows[0]["test"]["npv"]
    assert npv["estimate"] == pytest.approx(expected)
    assert npv["low"] <= npv["estimate"] <= npv["high"]


def test_audit_summary_keeps_counts_and_trims_lists():
    audit = {"n_images": 10, "duplicate_groups": [{"record_ids": [str(i)]} for i in range(50)],
             "cross_split_duplicate_groups": [], "cross_label_duplicate_groups": [],
             "unreadable": [], "patients_in_several_splits": {
                 "count": 170, "note": "n", "patients": {f"person{i}": ["test", "train"]
                                                         for i in range(170)}}}
    summary = audit_summary(audit, examples=5)
    assert summary["n_duplicate_groups"] == 50 and len(summary["duplicate_groups"]) == 5
    assert summary["patients_in_several_splits"]["count"] == 170
    assert len(summary["patients_in_several_splits"]["examples"]) == 5


@pytest.mark.slow
def test_the_committed_full_results_render_under_5_mb(tmp_path):
    from pathlib import Path

    from cxrbench.results.io import read_results

    path = Path(__file__).resolve().parents[1] / "results" / "full" / "results.json"
    report = render_report(read_results(path), tmp_path / "report.html", data_root=tmp_path)
    assert report.stat().st_size < 5 * 2**20
    html = report.read_text()
    results = read_results(path)
    commit = results["provenance"]["git"]["commit"][:12]
    assert commit in html


def test_cost_chart_draws_a_far_outlier_at_the_edge():
    from cxrbench.report.cost_figures import clipped_bottom, clipped_left

    assert clipped_left([2e-4, 1.0, 9.0, 50.0, 300.0]) == pytest.approx(0.25)
    assert clipped_left([0.5, 1.0, 9.0, 50.0]) is None
    assert clipped_bottom([0.5, 0.89, 0.92, 0.95, 0.96]) == pytest.approx(0.86)
    assert clipped_bottom([0.85, 0.89, 0.92, 0.95]) is None
