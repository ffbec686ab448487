"""``cxrbench predict``: a saved model applied to image files, decoded as in training."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from saved_runs import by_file_name, max_difference, run_saved

from cxrbench.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(synthetic_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    results = run_saved(synthetic_root, base / "out", base / "cache",
                        models="pixels_logreg,hog_svm", extra=("--no-report",))
    return base / "out", results


@pytest.fixture
def films(synthetic_root, tmp_path):
    """The test images in nested folders, with a corrupt JPEG, a text file named .png, a
    hidden file and a note (not an image) among them."""
    folder = tmp_path / "films"
    shutil.copytree(synthetic_root / "test", folder / "ward")
    good = sorted((folder / "ward").rglob("*.jpeg"))
    (folder / "ward" / "broken.jpeg").write_bytes(good[0].read_bytes()[:300])
    (folder / "not_an_image.png").write_text("hello")
    (folder / ".hidden.png").write_bytes(good[1].read_bytes())
    (folder / "notes.txt").write_text("not an image")
    return folder, good


def test_predict_folders_with_good_and_bad_files(run, films, tmp_path, capsys):
    out, results = run
    folder, good = films
    target = tmp_path / "p.csv"
    model = out / "models" / "hog_svm[seed=0]"
    assert main(["predict", str(model), str(folder), "--csv", str(target)]) == 0
    captured = capsys.readouterr()
    assert "warning: skipping unreadable image" in captured.err
    assert "broken.jpeg" in captured.err and "not_an_image.png" in captured.err
    assert ".hidden" not in captured.out + captured.err and "notes.txt" not in captured.out
    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(good) and {r["label"] for r in rows} <= {"NORMAL", "PNEUMONIA"}
    # Decoded exactly as in training: the run's own test predictions, to the last digit.
    record = next(r for r in results["records"] if r["model"] == "hog_svm")
    test = results["evaluation"]["test"]
    assert max_difference(by_file_name([r["path"] for r in rows],
                                       [float(r["probability"]) for r in rows]),
                          by_file_name(test["ids"], record["predictions"]["test"])) <= 1e-6
    for row in rows:
        expected = "PNEUMONIA" if float(row["probability"]) >= record["threshold"] else "NORMAL"
        assert row["label"] == expected


def test_predict_json_lists_predictions_and_skipped_files(run, films, capsys):
    out, _ = run
    folder, good = films
    model = out / "models" / "pixels_logreg[seed=0]"
    assert main(["predict", str(model), str(good[0]), str(folder / "ward" / "broken.jpeg"),
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"]["name"] == "pixels_logreg"
    assert [p["path"] for p in payload["predictions"]] == [str(good[0])]
    assert payload["skipped"][0]["path"].endswith("broken.jpeg")
    assert "truncated" in payload["skipped"][0]["reason"] or payload["skipped"][0]["reason"]


def test_predict_exit_codes(run, films, tmp_path, capsys):
    out, results = run
    folder, _ = films
    model = out / "models" / "pixels_logreg[seed=0]"
    assert main(["predict", str(model), str(folder / "not_an_image.png")]) == 1
    assert main(["predict", str(model), str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(model), str(empty)]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "no_model"), str(folder)]) == 2
    assert "is not a model folder" in capsys.readouterr().err
    record = next(r for r in results["records"] if r["model"] == "pixels_logreg")
    digest = record["model_artifact"]["model_json_sha256"]
    assert main(["predict", str(model), str(folder), "--model-sha256", digest]) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(folder), "--model-sha256", "0" * 64]) == 2
    assert "modified after the run saved it" in capsys.readouterr().err


def test_predict_refuses_a_tampered_model(run, films, tmp_path, capsys):
    out, _ = run
    folder, _ = films
    model = shutil.copytree(out / "models" / "pixels_logreg[seed=0]", tmp_path / "model")
    state = model / "state.json"
    state.write_text(state.read_text().replace("0", "1", 1))
    assert main(["predict", str(model), str(folder)]) == 2
    assert "state.json was modified after the model was saved" in capsys.readouterr().err
