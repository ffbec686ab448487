"""``cxrbench evaluate`` and ``run --external``: saved models scored on external sets.

The external sets are the synthetic test split with a deliberate shift (another contrast,
size and file format). Scoring them with ``evaluate`` must give what a run gives when the same
images are its test split (same models: same training images, split and seed).
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from saved_runs import (
    by_file_name,
    kaggle_with_test,
    max_difference,
    run_saved,
    shifted_copy,
    write_manifest,
)

from cxrbench.cli import main
from cxrbench.results import load, read_results
from cxrbench.run.layout import LOCK_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(synthetic_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate")
    cache = base / "cache"
    shifted = shifted_copy(synthetic_root / "test", base / "shifted")
    manifest = write_manifest(shifted)
    run_a = base / "a"
    run_saved(synthetic_root, run_a, cache)
    run_b = base / "b"  # the shifted images as the test split of an otherwise identical run
    run_saved(kaggle_with_test(synthetic_root, shifted, base / "b_data"), run_b, cache,
              extra=("--no-report",))
    return SimpleNamespace(run_a=run_a, results_b=json.loads((run_b / "results.json")
                                                            .read_text()),
                           shifted=shifted, manifest=manifest, cache=cache, base=base)


@pytest.fixture
def run_dir(world, tmp_path):
    """A copy of the saved run, for tests that write into it."""
    return Path(shutil.copytree(world.run_a, tmp_path / "run"))


def evaluate(run_dir: Path, data: Path, name: str, world, *extra: str) -> int:
    return main(["evaluate", str(run_dir), "--data", str(data), "--name", name,
                 "--cache-dir", str(world.cache), *extra])


def test_evaluate_equals_scoring_the_same_images_inside_a_run(world, run_dir):
    assert evaluate(run_dir, world.shifted, "shifted", world) == 0
    results = read_results(run_dir / "results.json")
    entry = results["external"]["shifted"]
    assert entry["status"] == "ok" and entry["counts"]["NORMAL"] == 6
    inside = {r["model"]: r for r in world.results_b["records"]}
    test_b = world.results_b["evaluation"]["test"]
    for record in results["records"]:
        scored = entry["records"][record["job_id"]]
        other = inside[record["model"]]
        assert scored["status"] == "ok"
        assert scored["threshold"] == record["threshold"] == other["threshold"]
        assert max_difference(by_file_name(entry["ids"], scored["predictions"]),
                              by_file_name(test_b["ids"], other["predictions"]["test"])) <= 1e-6
        for metric, value in other["metrics"]["test"].items():
            assert scored["metrics"][metric] == pytest.approx(value, abs=1e-9, nan_ok=True)


def test_flat_folders_and_manifest_give_the_same_numbers(world, run_dir):
    assert evaluate(run_dir, world.shifted, "flat", world) == 0
    assert evaluate(run_dir, world.manifest, "manifest", world) == 0
    external = read_results(run_dir / "results.json")["external"]
    flat, manifest = external["flat"], external["manifest"]
    assert flat["kind"] == "flat" and manifest["kind"] == "manifest"
    assert flat["data_hash"] == manifest["data_hash"] and flat["ids"] == manifest["ids"]
    for job, scored in flat["records"].items():
        assert scored["predictions"] == manifest["records"][job]["predictions"]
        assert scored["metrics"] == manifest["records"][job]["metrics"]


def test_evaluating_again_replaces_that_entry_and_keeps_everything_else(world, run_dir):
    before = read_results(run_dir / "results.json")
    assert evaluate(run_dir, world.shifted, "x", world) == 0
    assert evaluate(run_dir, world.manifest, "y", world) == 0
    smaller = Path(shutil.copytree(world.shifted, run_dir.parent / "smaller"))
    for path in sorted((smaller / "NORMAL").iterdir())[:2]:
        path.unlink()
    assert evaluate(run_dir, smaller, "x", world) == 0
    after = read_results(run_dir / "results.json")
    assert sorted(after["external"]) == ["x", "y"]
    assert after["external"]["x"]["counts"]["NORMAL"] == 4  # replaced by the smaller set
    assert after["external"]["y"]["counts"]["NORMAL"] == 6  # untouched
    assert after["records"] == before["records"] and after["evaluation"] == before["evaluation"]
    assert after["schema_version"] == 2


def test_a_one_class_or_unreadable_set_is_an_error_entry_and_nothing_is_lost(world, run_dir,
                                                                             capsys):
    assert evaluate(run_dir, world.shifted, "good", world) == 0
    one_class = run_dir.parent / "normals"
    shutil.copytree(world.shifted / "NORMAL", one_class / "NORMAL")
    assert evaluate(run_dir, one_class, "normals", world) == 1
    assert "has NORMAL; ROC AUC, sensitivity and specificity need both" in capsys.readouterr().err
    no_layout = run_dir.parent / "notes"
    no_layout.mkdir()
    (no_layout / "readme.txt").write_text("no images here")
    assert evaluate(run_dir, no_layout, "notes", world) == 1
    assert "matches no data set layout" in capsys.readouterr().err
    external = read_results(run_dir / "results.json")["external"]
    assert external["normals"]["status"] == "error" and external["notes"]["status"] == "error"
    assert "has NORMAL" in external["normals"]["error"]["message"]
    assert external["good"]["status"] == "ok"  # the earlier entry is kept


def test_bad_usage_is_exit_2_and_writes_nothing(world, run_dir, synthetic_root, tmp_path,
                                               capsys):
    path = run_dir / "results.json"
    before = path.read_bytes()
    assert evaluate(run_dir, tmp_path / "nowhere", "n", world) == 2
    assert "does not exist" in capsys.readouterr().err
    assert evaluate(run_dir, world.shifted, "val", world) == 2
    assert "one of the run's own splits" in capsys.readouterr().err
    assert path.read_bytes() == before
    plain = tmp_path / "plain"
    assert main(["run", "--data", str(synthetic_root), "--models", "majority", "--executor",
                 "inline", "--no-report", "--cache-dir", str(world.cache), "--out",
                 str(plain)]) == 0
    assert evaluate(plain, world.shifted, "n", world) == 2
    assert "has no saved model: run it again with --save-models" in capsys.readouterr().err


def test_an_interrupted_evaluate_leaves_the_results_as_they_were(world, run_dir, monkeypatch):
    import cxrbench.run.external as external

    path = run_dir / "results.json"
    before = path.read_bytes()
    real = external.score_model
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(external, "score_model", interrupted)
    assert evaluate(run_dir, world.shifted, "shifted", world) == 130
    assert path.read_bytes() == before
    read_results(path)  # still valid


def test_a_modified_model_is_refused_and_the_others_are_scored(world, run_dir, capsys):
    svm = run_dir / "models" / "hog_svm[seed=0]" / "svm.skops"
    data = bytearray(svm.read_bytes())
    data[len(data) // 2] ^= 1
    svm.write_bytes(bytes(data))
    description = run_dir / "models" / "pixels_logreg[seed=0]" / "model.json"
    description.write_text(description.read_text().replace('"threshold_rule": "youden"',
                                                           '"threshold_rule": "fixed:0.5"'))
    assert evaluate(run_dir, world.shifted, "shifted", world) == 1
    scored = read_results(run_dir / "results.json")["external"]["shifted"]["records"]
    assert "svm.skops was modified after the model was saved" in \
        scored["hog_svm[seed=0]"]["error"]["message"]
    assert "model.json was modified after the run saved it" in \
        scored["pixels_logreg[seed=0]"]["error"]["message"]
    assert scored["majority[seed=0]"]["status"] == "ok"
    assert "2 model(s) could not be scored" in capsys.readouterr().err


def test_a_model_from_another_decoder_version_is_refused_with_the_reason(world, run_dir,
                                                                         monkeypatch):
    import cxrbench.plugins.artifacts as artifacts

    monkeypatch.setattr(artifacts, "DECODER_VERSION", 99)
    assert evaluate(run_dir, world.shifted, "shifted", world) == 1
    scored = read_results(run_dir / "results.json")["external"]["shifted"]["records"]
    message = scored["hog_svm[seed=0]"]["error"]["message"]
    from cxrbench.data import DECODER_VERSION

    assert (f"decoder version {DECODER_VERSION}, and this cxrbench decodes with version 99"
            in message)


def test_a_folder_in_use_is_refused(world, run_dir, capsys):
    with open(run_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        assert evaluate(run_dir, world.shifted, "shifted", world) == 2
    assert "is in use by another cxrbench run" in capsys.readouterr().err


def test_run_external_scores_the_saved_models_after_the_jobs(world, synthetic_root, tmp_path):
    out = tmp_path / "with_external"
    results = run_saved(synthetic_root, out, world.cache, models="majority,pixels_logreg",
                        extra=("--external", f"shifted={world.shifted}", "--no-report"))
    entry = results["external"]["shifted"]
    assert entry["status"] == "ok" and entry["command"][:2] == ["cxrbench", "run"]
    assert sorted(entry["records"]) == ["majority[seed=0]", "pixels_logreg[seed=0]"]
    assert (out / "models" / "pixels_logreg[seed=0]" / "model.json").is_file()
    generalisation = results["statistics"]["generalisation"]
    interval = generalisation["sets"]["shifted"]["records"]["pixels_logreg[seed=0]"]["roc_auc"]
    assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert "pixels_logreg" in generalisation["drop"]["shifted"]
    # the models' predictions on the external set are plugin time; reloading them is not
    timing = results["run"]["timing"]
    external_predict = sum(r["timing"]["predict_s"] for r in entry["records"].values())
    in_jobs = sum(r["timing"]["fit_s"] + r["timing"]["predict_val_s"] + r["timing"]["predict_s"]
                  for r in results["records"])
    assert timing["plugin_s"] == pytest.approx(in_jobs + external_predict, abs=2e-3)
    assert timing["parts_s"]["external_outside_plugins"] == pytest.approx(
        timing["parts_s"]["external"] - external_predict, abs=2e-3)


def test_report_leaderboards_load_merge_and_compare_understand_external_sets(world, run_dir,
                                                                           tmp_path, capsys):
    assert evaluate(run_dir, world.shifted, "shifted", world) == 0
    html = (run_dir / "report.html").read_text()
    assert 'id="generalisation"' in html and "shifted (external)" in html
    assert "Test − shifted ROC AUC" in html and "Source check" in html
    assert "ROC AUC shifted (external)" in (run_dir / "leaderboard.md").read_text()
    assert "ext_shifted_roc_auc_low" in (run_dir / "leaderboard.csv").read_text().splitlines()[0]
    board = load(run_dir / "results.json")
    assert board["ext_shifted_roc_auc"].notna().all()
    merged = tmp_path / "merged.json"
    assert main(["merge", str(run_dir / "results.json"), str(run_dir / "results.json"),
                 "-o", str(merged), "--no-report"]) == 0
    assert read_results(merged)["external"]["shifted"]["records"].keys() == \
        read_results(run_dir / "results.json")["external"]["shifted"]["records"].keys()
    assert main(["compare", str(run_dir / "results.json"), str(merged), "--split",
                 "external:shifted"]) == 0
    assert main(["compare", str(world.run_a / "results.json"), str(merged), "--split",
                 "external:shifted"]) == 2
    assert "was not scored in the baseline" in capsys.readouterr().out


def test_source_checks_of_a_run_on_a_manifest(world, synthetic_root, tmp_path):
    """The run's own images are found through the manifest its models were trained on (the
    results record only the manifest's folder)."""
    data = Path(shutil.copytree(synthetic_root, tmp_path / "data"))
    lines = ["path,label,split"]
    for split in ("train", "test"):
        for label in ("NORMAL", "PNEUMONIA"):
            lines += [f"{p.relative_to(data)},{label},{split}"
                      for p in sorted((data / split / label).iterdir())]
    manifest = data / "list.csv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    run_saved(manifest, out, world.cache, models="majority", extra=("--no-report",))
    assert evaluate(out, world.shifted, "shifted", world) == 0
    results = read_results(out / "results.json")
    assert results["source_check"]["val"]["status"] == "ok"
    assert results["source_check"]["test"]["status"] == "ok"
    check = results["external"]["shifted"]["source_check"]
    assert check["status"] == "ok" and 0 <= check["low"] <= check["roc_auc"] <= check["high"]


def test_unreadable_external_images_are_listed_and_left_out_for_every_model(world, run_dir,
                                                                            capsys):
    damaged = Path(shutil.copytree(world.shifted, run_dir.parent / "damaged"))
    victim = sorted((damaged / "PNEUMONIA").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])
    assert evaluate(run_dir, damaged, "damaged", world) == 0
    assert f"skipping unreadable image PNEUMONIA/{victim.name}" in capsys.readouterr().err
    entry = read_results(run_dir / "results.json")["external"]["damaged"]
    assert entry["unreadable"] == [f"PNEUMONIA/{victim.name}"]
    assert entry["counts"]["PNEUMONIA"] == 5 and len(entry["ids"]) == 11
    assert all(len(r["predictions"]) == 11 for r in entry["records"].values())
