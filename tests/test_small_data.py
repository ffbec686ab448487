"""Small-data honesty: a split too small to trust is warned about by `run`, flagged in the
results (``small_data``) and shown next to the numbers in the report and leaderboard.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrbench.cli import main
from cxrbench.data import make_synthetic_dataset
from cxrbench.stats.small_data import MIN_IMAGES_PER_CLASS, small_data, undefined_resample_reasons


def run(capsys: pytest.CaptureFixture, data: Path, out: Path) -> tuple[dict, str]:
    code = main(["run", "--data", str(data), "--out", str(out), "--models",
                 "majority,pixels_logreg", "--seeds", "0", "--executor", "inline"])
    assert code == 0
    return json.loads((out / "results.json").read_text()), capsys.readouterr().err


def test_three_images_per_class_are_warned_flagged_and_shown(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "tiny", n_train=(3, 3), n_test=(3, 3), size=32)
    results, err = run(capsys, data, tmp_path / "out")
    test_reason = ("the test split has 3 NORMAL and 3 PNEUMONIA images, fewer than 20 of a "
                   "class (every reported number comes from it): its numbers are too "
                   "uncertain to rank models by")
    assert f"warning: small data: {test_reason}" in err
    assert "warning: small data: the val split has 1 NORMAL and 1 PNEUMONIA images" in err
    flag = results["small_data"]
    assert flag["flagged"] and flag["min_images_per_class"] == MIN_IMAGES_PER_CLASS
    assert test_reason in flag["reasons"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="small-data-note"' in html and test_reason in html
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "> **Small data**: " in board and "fewer than 20 of a class" in board


def test_a_large_enough_split_is_not_flagged(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "big", n_train=(150, 150), n_test=(20, 20),
                                  size=32)
    results, err = run(capsys, data, tmp_path / "out")
    assert "small data" not in err
    assert results["small_data"] == {"flagged": False, "min_images_per_class": 20,
                                     "reasons": []}
    assert 'id="small-data-note"' not in (tmp_path / "out" / "report.html").read_text()


def test_most_resamples_undefined_is_a_reason():
    statistics = {"method": {"bootstrap": {"n_resamples": 1000}}, "models": {
        "tiny": {"test": {"accuracy": {"undefined_resamples": 0},
                          "roc_auc": {"undefined_resamples": 967}}},
        "fine": {"test": {"roc_auc": {"undefined_resamples": 120}}}}}
    assert undefined_resample_reasons(statistics) == [
        "tiny: 967 of 1000 bootstrap resamples of the test set left roc_auc undefined (a "
        "class missing): its interval means nothing"]
    flag = small_data({"evaluation": {}}, statistics)
    assert flag["flagged"] and len(flag["reasons"]) == 1


def test_older_files_without_the_flag_still_read_and_get_it(tmp_path, capsys):
    """schema_version 1 files written before small_data existed: read, flag recomputed."""
    data = make_synthetic_dataset(tmp_path / "tiny", n_train=(3, 3), n_test=(3, 3), size=32)
    results, _ = run(capsys, data, tmp_path / "out")
    old = {k: v for k, v in results.items() if k not in ("small_data", "summary", "statistics")}
    path = tmp_path / "old" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(old))
    assert main(["report", str(path)]) == 0
    assert 'id="small-data-note"' in (path.parent / "report.html").read_text()
