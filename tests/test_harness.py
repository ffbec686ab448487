"""The harness end to end on the tiny synthetic set, plus the real-data acceptance checks."""

import json
import os
import shutil
from pathlib import Path

import pytest

from cxrbench.results.io import read_results
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import RunError, run_benchmark


def config(data, out, models=("majority",), seeds=(0,), executor="inline", **kw):
    return RunConfig(data_path=data, models=[ModelSpec(m) for m in models], seeds=list(seeds),
                     out_dir=out, executor=executor, **kw)


def test_run_writes_results_report_and_split_plan(synthetic_root, tmp_path):
    path, code = run_benchmark(config(synthetic_root, tmp_path / "out", seeds=(0, 1)))
    assert code == 0
    results = read_results(path)
    assert results["run"]["status"] == "complete"
    assert [r["job_id"] for r in results["records"]] == ["majority[seed=0]", "majority[seed=1]"]
    record = results["records"][0]
    assert record["status"] == "ok"
    assert set(record["metrics"]["test"]) >= {"accuracy", "balanced_accuracy", "precision",
                                              "recall", "specificity", "f1", "roc_auc", "pr_auc"}
    assert len(record["predictions"]["test"]) == len(results["evaluation"]["test"]["ids"])
    assert results["provenance"]["data"]["synthetic"] is True
    assert results["split"]["sha256"] == json.loads(
        (tmp_path / "out" / "split_plan.json").read_text())["sha256"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "majority" in html and "Synthetic data" in html


def test_cache_folder_reaches_plugins_without_the_environment(synthetic_root, tmp_path,
                                                              monkeypatch):
    """The run's --cache-dir is handed to plugins on their ImageSets: the feature cache lands
    there, and the inline executor leaves this process's environment untouched."""
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(tmp_path / "elsewhere"))
    cache = tmp_path / "run-cache"
    _, code = run_benchmark(config(synthetic_root, tmp_path / "out", models=("pixels_logreg",),
                                   cache_dir=cache))
    assert code == 0
    assert list((cache / "features").glob("pixels-*/part-*.npz"))
    assert not (tmp_path / "elsewhere").exists()
    assert os.environ["CXRBENCH_CACHE_DIR"] == str(tmp_path / "elsewhere")


def test_same_data_same_split_hash(synthetic_root, tmp_path):
    a, _ = run_benchmark(config(synthetic_root, tmp_path / "a"))
    b, _ = run_benchmark(config(synthetic_root, tmp_path / "b"))
    assert read_results(a)["split"]["sha256"] == read_results(b)["split"]["sha256"]


def test_existing_results_need_resume_or_overwrite(synthetic_root, tmp_path):
    run_benchmark(config(synthetic_root, tmp_path / "o"))
    with pytest.raises(RunError, match="--resume"):
        run_benchmark(config(synthetic_root, tmp_path / "o"))


def test_resume_skips_finished_jobs(synthetic_root, tmp_path):
    out = tmp_path / "r"
    run_benchmark(config(synthetic_root, out, seeds=(0,)))
    first = read_results(out / "results.json")["records"][0]
    path, code = run_benchmark(config(synthetic_root, out, seeds=(0, 1), resume=True))
    records = read_results(path)["records"]
    assert code == 0 and [r["job_id"] for r in records] == ["majority[seed=0]", "majority[seed=1]"]
    assert records[0]["started"] == first["started"]  # kept, not re-run


def test_resume_records_which_commit_ran_which_jobs(synthetic_root, tmp_path):
    out = tmp_path / "r"
    run_benchmark(config(synthetic_root, out, seeds=(0,)))
    assert "resumed" not in read_results(out / "results.json")["run"]
    run_benchmark(config(synthetic_root, out, seeds=(0, 1), resume=True))
    run_benchmark(config(synthetic_root, out, seeds=(0, 1, 2), resume=True))
    sessions = read_results(out / "results.json")["run"]["resumed"]
    assert [s["jobs"] for s in sessions] == [["majority[seed=1]"], ["majority[seed=2]"]]
    assert all({"commit", "dirty"} <= set(s["git"]) and s["finished"] for s in sessions)


def test_process_executor_runs_jobs_in_child_processes(synthetic_root, tmp_path):
    path, code = run_benchmark(config(synthetic_root, tmp_path / "p", executor="process"))
    assert code == 0
    assert read_results(path)["records"][0]["status"] == "ok"


def test_corrupt_and_fake_images_are_skipped_with_count(synthetic_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    victim = sorted((data / "test" / "PNEUMONIA").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    (data / "train" / "NORMAL" / "notes.jpeg").write_text("not an image")
    path, code = run_benchmark(config(data, tmp_path / "out"))
    results = read_results(path)
    assert code == 0
    unreadable = results["provenance"]["data"]["unreadable"]
    assert len(unreadable) == 2 and any("notes.jpeg" in u for u in unreadable)
    assert results["records"][0]["skipped_images"]["count"] == 2
    assert victim.relative_to(data).as_posix() not in results["evaluation"]["test"]["ids"]


def test_one_class_data_is_refused_with_advice(synthetic_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    for split in ("train", "test"):
        shutil.rmtree(data / split / "NORMAL")
        (data / split / "NORMAL").mkdir()
    with pytest.raises((RunError, ValueError)):
        run_benchmark(config(data, tmp_path / "out"))


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_majority_floor_and_stable_split(real_data: Path, tmp_path):
    cache = tmp_path / "cache"
    path, code = run_benchmark(config(real_data, tmp_path / "a", cache_dir=cache))
    results = read_results(path)
    assert code == 0
    assert results["split"]["counts"]["test"] == {"normal": 234, "pneumonia": 390}
    assert results["records"][0]["metrics"]["test"]["accuracy"] == pytest.approx(0.625)
    again, _ = run_benchmark(config(real_data, tmp_path / "b", cache_dir=cache))
    assert read_results(again)["split"]["sha256"] == results["split"]["sha256"]
