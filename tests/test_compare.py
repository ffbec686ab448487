"""cxrbench compare: direction-aware regression checks, refusals, tolerances and the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cxrbench.cli import main
from cxrbench.results.io import write_results
from cxrbench.results.regression import (
    CompareError,
    Tolerance,
    compare_metric,
    compare_results,
    default_tolerances,
    parse_fail_on,
)
from cxrbench.scoring.metrics import compute_metrics

SCORES = {"roc_auc": 0.90, "pr_auc": 0.92, "accuracy": 0.85, "balanced_accuracy": 0.84,
          "precision": 0.86, "recall": 0.90, "specificity": 0.78, "f1": 0.88, "brier": 0.10}
TIMING = {"fit_s": 10.0, "predict_s": 1.0, "predict_ms_per_image": 1.6, "peak_rss_mb": 400.0}


def record(model: str, seed: int = 0, *, status: str = "ok", params: dict | None = None,
           **changes: float) -> dict[str, Any]:
    """An ok record with SCORES and TIMING; keyword arguments override single values."""
    if status != "ok":
        return {"job_id": f"{model}[seed={seed}]", "model": model, "seed": seed,
                "status": status, "params": params or {},
                "error": {"type": "RuntimeError", "message": "out of memory"}}
    test = {k: changes.get(k, v) for k, v in SCORES.items()}
    timing = {k: changes.get(k, v) for k, v in TIMING.items()}
    return {"job_id": f"{model}[seed={seed}]", "model": model, "seed": seed, "status": "ok",
            "params": params or {}, "metrics": {"val": dict(SCORES), "test": test},
            "timing": timing}


def results(*records: dict[str, Any], split: str = "a" * 64, data: str = "d" * 64,
            rule: str = "youden", **provenance: Any) -> dict[str, Any]:
    prov = {"hostname": "ci", "cpu_model": "Xeon", "cpu_count": 2, "backend": "tensorflow",
            "device": "cpu", "packages": {"numpy": "2.0"}, "git": {"commit": "abc", "dirty": False},
            "data": {"data_hash": data}, "split_sha256": split, **provenance}
    return {"schema_version": 1, "run": {"threshold_rule": rule, "status": "complete"},
            "provenance": prov, "split": {"sha256": split}, "records": list(records)}


BASE = results(record("hog_svm"), record("cnn_seed"))


def regressions_of(baseline: dict, candidate: dict, **options: Any) -> list[str]:
    return compare_results(baseline, candidate, **options).regressions


def test_identical_runs_pass():
    comparison = compare_results(BASE, copy.deepcopy(BASE))
    assert comparison.exit_code == 0
    assert comparison.regressions == [] and comparison.warnings == []
    assert {m.status for m in comparison.models} == {"compared"}


def test_lower_auc_is_a_regression_naming_model_and_metric():
    candidate = results(record("hog_svm", roc_auc=0.85), record("cnn_seed"))
    comparison = compare_results(BASE, candidate)
    assert comparison.exit_code == 1
    assert len(comparison.regressions) == 1
    assert comparison.regressions[0].startswith("hog_svm: roc_auc 0.900 -> 0.850")


@pytest.mark.parametrize("metric, worse, better", [
    ("roc_auc", 0.85, 0.95),           # higher is better
    ("brier", 0.15, 0.05),             # lower is better
    ("fit_s", 60.0, 5.0),              # lower is better, relative (default +400 %)
    ("peak_rss_mb", 800.0, 200.0),
])
def test_each_metric_in_its_own_direction(metric, worse, better):
    assert regressions_of(BASE, results(record("hog_svm", **{metric: worse}),
                                        record("cnn_seed")))
    comparison = compare_results(BASE, results(record("hog_svm", **{metric: better}),
                                               record("cnn_seed")))
    assert comparison.exit_code == 0
    delta = next(d for d in comparison.models[0].deltas if d.metric == metric)
    assert delta.status == "better"


def test_drop_within_tolerance_passes():
    candidate = results(record("hog_svm", roc_auc=0.895, fit_s=30.0), record("cnn_seed"))
    comparison = compare_results(BASE, candidate)
    assert comparison.exit_code == 0
    statuses = {d.metric: d.status for d in comparison.models[0].deltas}
    assert statuses["roc_auc"] == statuses["fit_s"] == "within tolerance"


def test_timing_floor_absorbs_jitter_of_tiny_timings():
    base = results(record("majority", fit_s=0.001, predict_ms_per_image=0.01))
    slower = results(record("majority", fit_s=0.5, predict_ms_per_image=0.2))
    assert compare_results(base, slower).exit_code == 0


def test_fail_on_overrides_and_ignore_timing():
    candidate = results(record("hog_svm", roc_auc=0.85, fit_s=60.0), record("cnn_seed"))
    assert len(regressions_of(BASE, candidate)) == 2
    loose = parse_fail_on(["roc_auc:0.1", "fit_s:600%"])
    assert regressions_of(BASE, candidate, tolerances=loose) == []
    tight = parse_fail_on(["fit_s:25%"])
    slower = results(record("hog_svm", fit_s=16.0), record("cnn_seed"))  # +60 %, 6 s
    assert regressions_of(BASE, slower) == []
    assert regressions_of(BASE, slower, tolerances=tight)[0].startswith("hog_svm: fit_s")
    only_auc = regressions_of(BASE, candidate, ignore_timing=True)
    assert len(only_auc) == 1 and "roc_auc" in only_auc[0]
    off = parse_fail_on(["roc_auc:off"])
    assert "roc_auc" not in " ".join(regressions_of(BASE, candidate, tolerances=off))


def test_parse_fail_on():
    parsed = parse_fail_on(["fit_s:+50%", "roc_auc:0.02", "peak_rss_mb:off"])
    assert parsed["fit_s"] == Tolerance(relative=0.5, floor=default_tolerances()["fit_s"].floor)
    assert parsed["roc_auc"] == Tolerance(absolute=0.02)
    assert not parsed["peak_rss_mb"].gated
    assert parsed["fit_s"].allowance(100.0) == pytest.approx(50.0)


@pytest.mark.parametrize("spec, message", [
    ("auc:0.01", "unknown metric 'auc'"),
    ("roc_auc", "METRIC:TOLERANCE"),
    ("roc_auc:abc", "not a number"),
    ("fit_s:-5%", ">= 0"),
])
def test_bad_fail_on_is_named(spec, message):
    with pytest.raises(CompareError, match=message):
        parse_fail_on([spec])


@pytest.mark.parametrize("change, message", [
    ({"split": "b" * 64}, "split plan"),
    ({"data": "e" * 64}, "data hash"),
    ({"rule": "0.5"}, "threshold rule"),
])
def test_different_data_split_or_rule_is_incomparable(change, message):
    comparison = compare_results(BASE, results(record("hog_svm"), record("cnn_seed"), **change))
    assert comparison.exit_code == 2
    assert message in comparison.incomparable[0]
    assert comparison.models == []


def test_other_machine_warns_but_compares():
    candidate = results(record("hog_svm"), record("cnn_seed"), hostname="laptop", cpu_count=8,
                        packages={"numpy": "2.1"})
    comparison = compare_results(BASE, candidate)
    assert comparison.exit_code == 0
    text = " ".join(comparison.warnings)
    assert "hostname" in text and "cpu_count" in text and "numpy 2.0 -> 2.1" in text


def test_an_added_model_is_not_a_failure_a_missing_one_is():
    comparison = compare_results(BASE, results(record("hog_svm"), record("hog_xgboost")))
    assert {m.model: m.status for m in comparison.models} == {
        "hog_svm": "compared", "cnn_seed": "missing", "hog_xgboost": "added"}
    assert comparison.exit_code == 1
    assert comparison.regressions == ["cnn_seed: missing from the candidate (it succeeded in "
                                      "the baseline: cnn_seed[seed=0])"]
    # A model that failed in the baseline may go: noted, not a failure.
    base = results(record("hog_svm"), record("cnn_seed", status="error"))
    comparison = compare_results(base, results(record("hog_svm")))
    assert comparison.exit_code == 0 and comparison.models[1].status == "removed"


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
@pytest.mark.parametrize("how", ["missing", "no ok records", "no metrics"])
def test_cli_fails_when_a_baseline_model_is_missing_or_empty(tmp_path, capsys, how, strict):
    candidate = {
        "missing": results(record("hog_svm")),
        "no ok records": results(record("hog_svm"), record("cnn_seed", status="error")),
        "no metrics": results(record("hog_svm"), record(
            "cnn_seed", **{k: None for k in SCORES})),
    }[how]
    base = _write(tmp_path / "base.json", copy.deepcopy(BASE))
    cand = _write(tmp_path / "cand.json", candidate)
    md = tmp_path / "summary.md"
    code = main(["compare", base, cand, "--markdown", str(md), *(["--strict"] if strict else [])])
    assert code == 1
    out = capsys.readouterr()
    expected = {"missing": "cnn_seed: missing from the candidate",
                "no ok records": "cnn_seed: cnn_seed[seed=0] error",
                "no metrics": "cnn_seed: no test scores in the candidate"}[how]
    assert expected in out.out and "exit 1: 1 REGRESSION(S)" in out.err
    assert f"- {expected}" in md.read_text().replace("\\", "")
    assert "| cnn\\_seed |" not in md.read_text()  # an underscore inside a name stays as it is


def test_a_metric_lost_in_the_candidate_is_a_regression():
    candidate = results(record("hog_svm"), record("cnn_seed"))
    del candidate["records"][1]["metrics"]["test"]["roc_auc"]
    assert regressions_of(BASE, candidate) == [
        "cnn_seed: roc_auc 0.900 -> missing (not recorded, or undefined, in the candidate)"]


def test_model_failing_in_candidate_is_a_regression():
    comparison = compare_results(BASE, results(record("hog_svm"),
                                               record("cnn_seed", status="error")))
    assert comparison.exit_code == 1
    assert comparison.regressions[0].startswith("cnn_seed: cnn_seed[seed=0] error")
    assert "out of memory" in comparison.regressions[0]


def test_one_seed_failing_is_a_regression_and_a_fix_is_not():
    base = results(record("a", 0), record("a", 1), record("b", 0, status="timeout"))
    cand = results(record("a", 0), record("a", 1, status="timeout"), record("b", 0))
    comparison = compare_results(base, cand)
    assert comparison.exit_code == 1
    assert [r.split(" ")[1] for r in comparison.regressions] == ["a[seed=1]"]
    assert {m.model: m.status for m in comparison.models}["b"] == "fixed"


def test_seed_spread_absorbs_a_drop_unless_strict():
    base = results(*(record("cnn", s, roc_auc=v) for s, v in enumerate([0.90, 0.86, 0.94])))
    cand = results(*(record("cnn", s, roc_auc=v) for s, v in enumerate([0.86, 0.83, 0.92])))
    comparison = compare_results(base, cand)  # mean drop 0.03 < 1.96 SE of ~0.05
    delta = next(d for d in comparison.models[0].deltas if d.metric == "roc_auc")
    assert delta.status == "within noise" and delta.noise_source == "seed std"
    assert comparison.exit_code == 0
    assert compare_results(base, cand, use_noise=False).exit_code == 1


def test_candidates_own_bootstrap_interval_is_the_noise_when_runs_are_not_paired():
    """Without predictions on the same images in both files, the noise is the candidate's own
    interval, computed from its records: a stored (forged or stale) one is never trusted."""
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 40)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, len(y)), 0, 1)
    candidate = with_evaluation(results(scored("hog_svm", p, y)), y)
    auc = candidate["records"][0]["metrics"]["test"]["roc_auc"]
    baseline = results(record("hog_svm", roc_auc=auc + 0.03))  # no predictions: not paired
    candidate["statistics"] = {"models": {"hog_svm": {"test": {"roc_auc": {
        "low": auc - 0.5, "high": auc + 0.5}}}}}  # would absorb any drop
    comparison = compare_results(baseline, candidate)
    delta = next(d for d in comparison.models[0].deltas if d.metric == "roc_auc")
    from cxrbench.stats import compute_statistics

    interval = compute_statistics(candidate)["models"]["hog_svm"]["test"]["roc_auc"]
    assert delta.noise_source == "candidate's bootstrap CI"
    assert delta.noise == pytest.approx((interval["high"] - interval["low"]) / 2)
    assert 0.03 < delta.noise < 0.5  # the recomputed interval, not the stored one
    assert delta.status == "within noise"
    assert compare_results(baseline, candidate, use_noise=False).exit_code == 1


def test_the_same_rule_spelled_two_ways_is_comparable():
    old = results(record("hog_svm"), record("cnn_seed"), rule="0.5")
    new = results(record("hog_svm"), record("cnn_seed"), rule="fixed:0.5")
    assert compare_results(old, new).exit_code == 0
    assert compare_results(old, BASE).exit_code == 2  # 0.5 is not youden


def scored(model: str, p: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """A record whose metrics are computed from its test predictions, as the harness does."""
    test = compute_metrics(y, p, 0.5)
    return {"job_id": f"{model}[seed={seed}]", "model": model, "seed": seed, "status": "ok",
            "params": {}, "threshold": 0.5, "metrics": {"val": test, "test": test},
            "timing": dict(TIMING), "predictions": {"test": p.tolist()}}


def with_evaluation(data: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    ids = [f"img{i}" for i in range(len(y))]
    data["evaluation"] = {"test": {"ids": ids, "labels": y.tolist(),
                                   "groups": [f"patient{i // 2}" for i in range(len(y))]}}
    return data


def test_paired_bootstrap_sets_the_noise_from_predictions():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 100)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, len(y)), 0, 1)
    base = with_evaluation(results(scored("m", p, y)), y)
    jitter = np.clip(p + rng.normal(0, 0.1, len(y)), 0, 1)  # AUC -0.020, noise 0.026
    noisy = with_evaluation(results(scored("m", jitter, y)), y)
    delta = next(d for d in compare_results(base, noisy).models[0].deltas
                 if d.metric == "roc_auc")
    assert delta.noise_source == "paired bootstrap"
    assert 0.005 < delta.noise < 0.05  # narrower than the ~0.06 of one run's own interval
    assert delta.worse_by is not None and delta.worse_by > delta.allowed
    assert delta.status == "within noise"
    # The same predictions with an edited metric: the change is not noise.
    edited = copy.deepcopy(base)
    edited["records"][0]["metrics"]["test"]["roc_auc"] -= 0.05
    assert compare_results(base, edited).regressions[0].startswith("m: roc_auc")
    worse = with_evaluation(results(scored("m", rng.uniform(0, 1, len(y)), y)), y)
    assert any("roc_auc" in r for r in compare_results(base, worse).regressions)


def test_metric_missing_from_an_older_file_is_not_a_failure():
    old = results(record("hog_svm"), record("cnn_seed"))
    for r in old["records"]:
        del r["metrics"]["test"]["brier"]
    comparison = compare_results(old, BASE)
    assert comparison.exit_code == 0
    assert compare_metric("roc_auc", [0.9], [], default_tolerances()["roc_auc"]).status \
        == "regression"  # recorded but undefined (NaN) after a defined baseline


def test_changed_params_are_noted():
    candidate = results(record("hog_svm", params={"cell_size": 64}, roc_auc=0.7),
                        record("cnn_seed"))
    comparison = compare_results(BASE, candidate)
    assert "params differ: cell_size None -> 64" in comparison.models[0].notes


def _write(path: Path, data: dict) -> str:
    write_results(path, data)
    return str(path)


def test_cli_exit_codes_markdown_and_json(tmp_path, capsys):
    base = _write(tmp_path / "base.json", copy.deepcopy(BASE))
    worse = _write(tmp_path / "worse.json", results(record("hog_svm", roc_auc=0.85),
                                                    record("cnn_seed")))
    other = _write(tmp_path / "other.json", results(record("hog_svm"), split="c" * 64))
    assert main(["compare", base, base]) == 0
    md, js = tmp_path / "summary.md", tmp_path / "cmp.json"
    assert main(["compare", base, worse, "--markdown", str(md), "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "hog_svm" in out
    summary = md.read_text()
    assert "| hog_svm | REGRESSION |" in summary and "roc_auc 0.900 -> 0.850" in summary
    data = json.loads(js.read_text())
    assert data["exit_code"] == 1 and data["regressions"][0].startswith("hog_svm: roc_auc")
    assert main(["compare", base, worse, "--fail-on", "roc_auc:0.1"]) == 0
    assert main(["compare", base, other]) == 2
    assert main(["compare", base, str(tmp_path / "missing.json")]) == 2
    assert main(["compare", base, base, "--fail-on", "nope:1"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "unknown metric 'nope'" in err


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, synthetic_root) -> Path:
    """A results file from a real (tiny) harness run on synthetic data, inline."""
    from cxrbench.run.config import ModelSpec, RunConfig
    from cxrbench.run.harness import run_benchmark

    out = tmp_path_factory.mktemp("run")
    config = RunConfig(data_path=synthetic_root, models=[ModelSpec("majority")], seeds=[0, 1],
                       out_dir=out, cache_dir=out / "cache", executor="inline", report=False)
    outcome = run_benchmark(config)
    assert outcome.status == "complete" and outcome.n_failed == 0
    return outcome.results_path


def test_realistic_results_file(real_run, tmp_path):
    assert main(["compare", str(real_run), str(real_run)]) == 0
    data = json.loads(real_run.read_text())
    lowered = copy.deepcopy(data)
    for r in lowered["records"]:
        r["metrics"]["test"]["roc_auc"] -= 0.05
    assert main(["compare", str(real_run), _write(tmp_path / "low.json", lowered)]) == 1
    resplit = copy.deepcopy(data)
    resplit["split"]["sha256"] = "0" * 64
    assert main(["compare", str(real_run), _write(tmp_path / "split.json", resplit)]) == 2
