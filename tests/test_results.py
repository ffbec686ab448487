"""The results file: atomic round trip, typed validation of every record, and readers that
recompute summary and statistics from the records instead of trusting stored copies."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from cxrbench.cli import main
from cxrbench.results.io import ResultsError, read_results, write_results
from cxrbench.results.schema import SCHEMA_VERSION
from cxrbench.results.validate import find_problems
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import run_benchmark
from cxrbench.stats import summarize, with_statistics


def minimal_results(records):
    return {"schema_version": 1, "run": {}, "provenance": {}, "split": {"sha256": "x"},
            "records": records}


def ok_record(model, seed, auc, fit_s=1.0):
    metrics = {"roc_auc": auc, "accuracy": 0.8}
    return {"job_id": f"{model}[seed={seed}]", "model": model, "seed": seed, "status": "ok",
            "metrics": {"val": metrics, "test": metrics}, "timing": {"fit_s": fit_s}}


def test_roundtrip_and_summary(tmp_path):
    records = [ok_record("a", 0, 0.9), ok_record("a", 1, 0.8),
               {"job_id": "a[seed=2]", "model": "a", "seed": 2, "status": "error",
                "error": {"type": "ValueError", "message": "boom"}}]
    path = write_results(tmp_path / "results.json", minimal_results(records))
    data = read_results(path)
    assert "summary" not in data  # writing stores what it is given, computes nothing
    summary = with_statistics(data)["summary"]["a"]
    assert summary["n_seeds"] == 3 and summary["n_ok"] == 2
    assert summary["test"]["roc_auc"]["mean"] == pytest.approx(0.85)
    assert summary["test"]["roc_auc"]["min"] == pytest.approx(0.8)
    assert summary["test"]["roc_auc"]["std"] == pytest.approx(0.0707107, rel=1e-4)


def test_nan_is_stored_as_null(tmp_path):
    path = write_results(tmp_path / "r.json", minimal_results([ok_record("a", 0, float("nan"))]))
    assert json.loads(path.read_text())["records"][0]["metrics"]["test"]["roc_auc"] is None


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"schema_version": 1, "run": {}', "not valid JSON"),
        ('{"schema_version": 1}', "missing required field"),
        ('{"schema_version": 99, "run": {}, "provenance": {}, "split": {}, "records": []}',
         "not supported"),
        ('{"schema_version": 0, "run": {}, "provenance": {}, "split": {}, "records": []}',
         "schema_version: 0 is not supported"),
        ('{"schema_version": 1, "run": {}, "provenance": {}, "split": {}, '
         '"records": [{"job_id": "a", "model": "a", "seed": 0, "status": "maybe"}]}', "status"),
    ],
)
def test_damaged_files_are_named(tmp_path, text, message):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(ResultsError, match=message):
        read_results(path)


def test_summary_ignores_failed_records():
    assert summarize([{"job_id": "b", "model": "b", "seed": 0, "status": "timeout"}])["b"][
        "test"]["roc_auc"]["mean"] is None


# ------------------------------------------------------------------ validation of every record
@pytest.fixture(scope="module")
def real_results(synthetic_root, tmp_path_factory) -> Path:
    """A results file from a real (tiny) run: majority, two seeds, inline."""
    out = tmp_path_factory.mktemp("results")
    outcome = run_benchmark(RunConfig(
        data_path=synthetic_root, models=[ModelSpec("majority")], seeds=[0, 1], out_dir=out,
        cache_dir=out / "cache", executor="inline", report=False))
    assert outcome.n_ok == 2
    return outcome.results_path


def _set(data, path, value):
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()
RECORD = ("records", 0)
# Each hand edit of issue #12 item 5, and the message that names it.
DAMAGES = [
    ((*RECORD, "predictions", "test"), [0.5] * 5,
     "predictions.test holds 5 probabilities for the 12 images of evaluation.test"),
    ((*RECORD, "metrics", "test", "roc_auc"), 2.5,
     "metrics.test.roc_auc is 2.5; scores lie in [0, 1]"),
    ((*RECORD, "metrics", "test"), {}, "metrics.test is empty"),
    ((*RECORD, "metrics", "val"), _DELETE, "an ok record needs metrics.val"),
    ((*RECORD, "metrics", "test", "roc_auc"), "0.9", "metrics.test.roc_auc is '0.9'"),
    ((*RECORD, "model"), None, "model must be a non-empty string (a plugin name), got None"),
    ((*RECORD, "model"), "", "model must be a non-empty string"),
    (("schema_version",), 0, "schema_version: 0 is not supported"),
    ((*RECORD, "timing", "fit_s"), -1.0, "timing.fit_s is -1.0; timings are non-negative"),
    ((*RECORD, "confusion", "test", "tp"), -3, "confusion.test must hold non-negative integer"),
    ((*RECORD, "status"), "done", "has status 'done'; expected one of"),
    ((*RECORD, "seed"), -1, "seed must be a non-negative integer"),
    ((*RECORD, "threshold"), 7, "threshold 7 must be a number in [0, 1]"),
    ((*RECORD, "predictions", "test", 0), 1.5, "predictions.test has 1 value(s) that are not"),
    (("run", "status"), "paused", "run.status: 'paused' is not one of"),
    (("run", "threshold_rule"), "median", "unknown threshold rule 'median'"),
    (("evaluation", "test", "labels", 0), 2, "evaluation.test.labels: must be a list of 0"),
    (("records", 1, "job_id"), "majority[seed=0]", "same job_id as record 0"),
    (("provenance", "data"), "here", "provenance.data: must be an object"),
]


@pytest.mark.parametrize(("path", "value", "message"), DAMAGES,
                         ids=[" ".join(map(str, d[0])) + f"={d[1]!r}"[:20] for d in DAMAGES])
def test_every_hand_edit_is_named(real_results, tmp_path, path, value, message):
    data = json.loads(real_results.read_text())
    assert find_problems(data) == []
    _set(data, path, value)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ResultsError) as info:
        read_results(broken)
    assert any(message in problem for problem in info.value.problems), info.value.problems
    assert str(broken) in str(info.value)


def test_every_problem_is_listed_at_once(real_results, tmp_path):
    data = json.loads(real_results.read_text())
    data["records"][0]["metrics"]["test"]["roc_auc"] = 2.5
    data["records"][1]["model"] = None
    data["records"][1]["timing"]["peak_rss_mb"] = -5
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ResultsError) as info:
        read_results(broken)
    assert len(info.value.problems) == 3
    text = str(info.value)
    assert "has 3 problems" in text and "roc_auc is 2.5" in text and "peak_rss_mb" in text


@pytest.mark.parametrize("verb", ["report", "merge", "compare"])
def test_damaged_file_is_exit_2_with_the_problems_not_a_traceback(real_results, tmp_path,
                                                                  capsys, verb):
    data = json.loads(real_results.read_text())
    data["records"][0]["metrics"]["test"] = {}
    data["records"][1]["metrics"]["test"]["roc_auc"] = "high"
    del data["records"][1]["metrics"]["val"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    argv = {"report": ["report", str(broken), "-o", str(tmp_path / "r.html")],
            "merge": ["merge", str(real_results), str(broken), "-o", str(tmp_path / "m.json")],
            "compare": ["compare", str(real_results), str(broken)]}[verb]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "has 3 problems" in err
    assert "metrics.test is empty" in err and "metrics.test.roc_auc is 'high'" in err


def test_version_this_cxrbench_writes_is_read_back(real_results):
    assert read_results(real_results)["schema_version"] == SCHEMA_VERSION == 2


def test_version_1_files_are_still_read(tmp_path):
    """Files written before external validation (schema version 1: no ``external``,
    ``source_check``, ``model_artifact`` or evaluation subgroups) still read."""
    data = json.loads((Path(__file__).parent.parent / "results" / "baseline.json").read_text())
    data["schema_version"] = 1
    for key in ("external", "source_check"):
        data.pop(key, None)
    for section in data["evaluation"].values():
        section.pop("subgroups", None)
    for record in data["records"]:
        record.pop("model_artifact", None)
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(data))
    read = read_results(old)
    assert read["schema_version"] == 1 and "external" not in read
    assert [r["job_id"] for r in read["records"]] == [r["job_id"] for r in data["records"]]


def test_report_recomputes_a_stale_stored_summary(real_results, tmp_path):
    """A hand-edited summary or statistics section is ignored: the report is computed from
    the records."""
    data = json.loads(real_results.read_text())
    truth = copy.deepcopy(data)
    data["summary"]["majority"]["test"]["accuracy"]["mean"] = 0.999
    data["statistics"]["models"]["majority"]["test"]["accuracy"]["low"] = 0.998
    edited = tmp_path / "edited" / "results.json"
    edited.parent.mkdir()
    edited.write_text(json.dumps(data))
    assert main(["report", str(edited)]) == 0
    board = pd.read_csv(edited.parent / "leaderboard.csv").iloc[0]
    expected = truth["summary"]["majority"]["test"]["accuracy"]["mean"]
    # leaderboard.csv holds 4 decimals
    assert board["accuracy"] == pytest.approx(expected, abs=5e-5) != 0.999
    assert board["accuracy_low"] == pytest.approx(
        truth["statistics"]["models"]["majority"]["test"]["accuracy"]["low"], abs=5e-5)
