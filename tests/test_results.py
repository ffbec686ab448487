import json

import pytest

from cxrbench.results.io import ResultsError, read_results, summarize, write_results


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
    summary = data["summary"]["a"]
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
