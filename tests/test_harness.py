"""The harness end to end on the tiny synthetic set, plus the real-data acceptance checks."""

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from cxrbench.provenance import cpu_model
from cxrbench.results.io import read_results
from cxrbench.run.config import ConfigError, ModelSpec, RunConfig
from cxrbench.run.harness import RunError, run_benchmark
from cxrbench.scoring.thresholds import ThresholdRule


def config(data, out, models=("majority",), seeds=(0,), executor="inline", **kw):
    return RunConfig(data_path=data, models=[ModelSpec(m) for m in models], seeds=list(seeds),
                     out_dir=out, executor=executor, **kw)


def test_run_writes_results_report_and_split_plan(synthetic_root, tmp_path):
    outcome = run_benchmark(config(synthetic_root, tmp_path / "out", seeds=(0, 1)))
    assert (outcome.status, outcome.n_ok, outcome.n_failed, outcome.signal) == (
        "complete", 2, 0, None)
    assert outcome.report_path == tmp_path / "out" / "report.html"
    path = outcome.results_path
    results = read_results(path)
    assert results["run"]["status"] == "complete"
    assert results["run"]["command"] is None  # started from Python
    assert results["run"]["threshold_rule"] == "youden"
    assert results["summary"]["majority"]["n_ok"] == 2 and results["statistics"]["available"]
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
    outcome = run_benchmark(config(synthetic_root, tmp_path / "out", models=("pixels_logreg",),
                                   cache_dir=cache))
    assert outcome.n_ok == 1
    assert list((cache / "features").glob("pixels-*/part-*.npz"))
    assert not (tmp_path / "elsewhere").exists()
    assert os.environ["CXRBENCH_CACHE_DIR"] == str(tmp_path / "elsewhere")


def test_same_data_same_split_hash(synthetic_root, tmp_path):
    a = run_benchmark(config(synthetic_root, tmp_path / "a")).results_path
    b = run_benchmark(config(synthetic_root, tmp_path / "b")).results_path
    assert read_results(a)["split"]["sha256"] == read_results(b)["split"]["sha256"]


def test_existing_results_need_resume_or_overwrite(synthetic_root, tmp_path):
    run_benchmark(config(synthetic_root, tmp_path / "o"))
    with pytest.raises(RunError, match="--resume"):
        run_benchmark(config(synthetic_root, tmp_path / "o"))


def test_resume_skips_finished_jobs(synthetic_root, tmp_path):
    out = tmp_path / "r"
    run_benchmark(config(synthetic_root, out, seeds=(0,)))
    first = read_results(out / "results.json")["records"][0]
    outcome = run_benchmark(config(synthetic_root, out, seeds=(0, 1), resume=True))
    records = read_results(outcome.results_path)["records"]
    assert outcome.n_ok == 2
    assert [r["job_id"] for r in records] == ["majority[seed=0]", "majority[seed=1]"]
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
    # Who continued the run, and where: the report's provenance needs each session's machine.
    assert all(s["hostname"] == socket.gethostname() and s["cpu_model"] == cpu_model()
               and s["command"] is None for s in sessions)


def test_resume_with_another_threshold_rule_is_refused(synthetic_root, tmp_path):
    out = tmp_path / "r"
    run_benchmark(config(synthetic_root, out, threshold_rule="0.5"))
    assert read_results(out / "results.json")["run"]["threshold_rule"] == "fixed:0.5"
    with pytest.raises(RunError, match="threshold rule fixed:0.5, not youden"):
        run_benchmark(config(synthetic_root, out, seeds=(0, 1), resume=True))
    outcome = run_benchmark(config(synthetic_root, out, seeds=(0, 1), resume=True,
                                   threshold_rule="fixed:0.50"))  # the same rule
    assert outcome.n_ok == 2


def test_process_executor_runs_jobs_in_child_processes(synthetic_root, tmp_path, monkeypatch):
    """A job that would fail in this process succeeds under the process executor: it ran in a
    fresh (spawned) process, which does not see this process's monkeypatch."""

    def in_this_process(*args, **kwargs):
        raise RuntimeError("the job ran in the test process")

    monkeypatch.setattr("cxrbench.run.jobs.create_model", in_this_process)
    inline = run_benchmark(config(synthetic_root, tmp_path / "i", executor="inline"))
    record = read_results(inline.results_path)["records"][0]
    assert (inline.n_failed, record["error"]["message"]) == (1, "the job ran in the test process")
    spawned = run_benchmark(config(synthetic_root, tmp_path / "p", executor="process"))
    assert (spawned.n_ok, spawned.n_failed) == (1, 0)
    assert read_results(spawned.results_path)["records"][0]["status"] == "ok"


def test_corrupt_and_fake_images_are_skipped_with_count(synthetic_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    victim = sorted((data / "test" / "PNEUMONIA").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    (data / "train" / "NORMAL" / "notes.jpeg").write_text("not an image")
    outcome = run_benchmark(config(data, tmp_path / "out"))
    results = read_results(outcome.results_path)
    assert outcome.n_failed == 0
    unreadable = results["provenance"]["data"]["unreadable"]
    assert len(unreadable) == 2 and any("notes.jpeg" in u for u in unreadable)
    assert results["records"][0]["skipped_images"]["count"] == 2
    assert victim.relative_to(data).as_posix() not in results["evaluation"]["test"]["ids"]


def test_one_class_data_is_refused_with_advice(synthetic_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    for split in ("train", "test"):
        shutil.rmtree(data / split / "NORMAL")
    with pytest.raises(RunError, match=r"the train split of .* has only PNEUMONIA; a pneumonia "
                       r"benchmark needs both .* Add the missing class folder"):
        run_benchmark(config(data, tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # refused before anything was written
    for split in ("train", "test"):  # an empty class folder is named by the reader
        (data / split / "NORMAL").mkdir()
    with pytest.raises(RunError, match=r"NORMAL has no images .* add its images or remove"):
        run_benchmark(config(data, tmp_path / "out"))


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_majority_floor_and_stable_split(real_data: Path, tmp_path):
    cache = tmp_path / "cache"
    outcome = run_benchmark(config(real_data, tmp_path / "a", cache_dir=cache))
    results = read_results(outcome.results_path)
    assert outcome.n_failed == 0
    assert results["split"]["counts"]["test"] == {"normal": 234, "pneumonia": 390}
    assert results["records"][0]["metrics"]["test"]["accuracy"] == pytest.approx(0.625)
    again = run_benchmark(config(real_data, tmp_path / "b", cache_dir=cache)).results_path
    assert read_results(again)["split"]["sha256"] == results["split"]["sha256"]


def test_image_shape_is_computed_once_and_carried_by_the_job(synthetic_root, tmp_path):
    from cxrbench.plugins.registry import get_card
    from cxrbench.run.plan import input_shape

    card = get_card("cnn_seed")
    assert input_shape(ModelSpec("cnn_seed")) == (card.input_size, card.channels)
    assert input_shape(ModelSpec("cnn_seed", {"input_size": 48, "channels": 1})) == (48, 1)
    records = []
    run_benchmark(config(synthetic_root, tmp_path / "o", models=("pixels_logreg",),
                         report=False), on_record=records.append)
    assert (records[0]["image_size"], records[0]["channels"]) == input_shape(
        ModelSpec("pixels_logreg"))


@pytest.mark.parametrize(("change", "message"), [
    ({"seeds": []}, "seeds is empty"),
    ({"seeds": [0, 0]}, r"seed\(s\) \[0\] given more than once"),
    ({"seeds": [-1]}, r"\[-1\] not integers in \[0, 4294967295\]"),
    ({"threshold_rule": "median"}, "unknown threshold rule 'median'"),
    ({"timeout_s": float("nan")}, "timeout must be a number of seconds"),
    ({"val_fraction": 1.5}, "val_fraction must lie strictly between 0 and 1"),
    ({"executor": "cloud"}, "unknown executor 'cloud'"),
    ({"models": []}, "no models given"),
])
def test_bad_configuration_is_refused_before_any_work(synthetic_root, tmp_path, change,
                                                     message):
    values = {"data_path": synthetic_root, "models": [ModelSpec("majority")], "seeds": [0],
              "out_dir": tmp_path / "o", **change}
    with pytest.raises(ConfigError, match=message):
        RunConfig(**values)


def test_config_parses_the_threshold_rule_once():
    made = RunConfig(data_path="d", models=[ModelSpec("majority")], seeds=[0], out_dir="o",
                     threshold_rule="0.5")
    assert made.threshold_rule == ThresholdRule("fixed", 0.5)
    assert str(made.threshold_rule) == "fixed:0.5"
    assert RunConfig(data_path="d", models=[ModelSpec("majority")], seeds=[0],
                     out_dir="o").threshold_rule == ThresholdRule("youden")


def test_statistics_are_computed_once_per_run_not_per_record(synthetic_root, tmp_path,
                                                             monkeypatch):
    """Each record is saved as it finishes, without its 2000-resample bootstrap; summary and
    statistics are computed once, when the run ends."""
    import cxrbench.run.harness as harness
    import cxrbench.run.output as output

    calls, writes = [], []
    real_with_statistics, real_write = harness.with_statistics, output.write_results
    monkeypatch.setattr(harness, "with_statistics",
                        lambda results: calls.append(len(results["records"]))
                        or real_with_statistics(results))
    monkeypatch.setattr(output, "write_results",
                        lambda path, results: writes.append("statistics" in results)
                        or real_write(path, results))
    outcome = run_benchmark(config(synthetic_root, tmp_path / "o", seeds=(0, 1, 2)))
    assert calls == [3]  # once, with every record
    # start, 3 records, finish, and the run's timing (report included) once the report is out
    assert writes == [False, False, False, False, True, True]
    assert read_results(outcome.results_path)["statistics"]["models"]["majority"]["n_records"] \
        == 3


def test_run_records_where_its_time_went(synthetic_root, tmp_path):
    """run.timing: the plugins' fit + predict against the harness's own time, which is the
    rest of the wall time; the parts name where the harness spent it."""
    outcome = run_benchmark(config(synthetic_root, tmp_path / "o",
                                   models=("majority", "pixels_logreg"), seeds=(0, 1)))
    results = read_results(outcome.results_path)
    timing = results["run"]["timing"]
    records = results["records"]
    plugin = sum(r["timing"]["fit_s"] + r["timing"]["predict_val_s"] + r["timing"]["predict_s"]
                 for r in records)
    assert timing["jobs"] == 4 and timing["plugin_s"] == pytest.approx(plugin, abs=2e-3)
    assert timing["harness_s"] == pytest.approx(timing["wall_s"] - timing["plugin_s"], abs=2e-3)
    assert 0 < timing["harness_fraction"] < 1
    parts = timing["parts_s"]
    assert set(parts) >= {"load_data", "split", "image_cache", "jobs", "jobs_outside_plugins",
                          "results_writes", "statistics", "report"}
    assert sum(parts[k] for k in ("load_data", "split", "image_cache", "jobs", "statistics",
                                  "report")) <= timing["wall_s"] + 1e-3
    for record in records:  # each job's own wall time covers its plugin's
        t = record["timing"]
        assert t["job_s"] >= t["fit_s"] + t["predict_val_s"] + t["predict_s"]
