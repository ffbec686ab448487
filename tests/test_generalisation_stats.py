"""statistics.generalisation (every set, drops, rankings) and the source check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from cxrbench.run.source_check import sample_for_check, source_auc
from cxrbench.scoring.metrics import compute_metrics
from cxrbench.stats import with_statistics
from cxrbench.stats.generalisation import generalisation_statistics, kendall_tau_b

MODELS = ("good", "fair", "poor")


def _scores(rng, labels, strength):
    return np.clip(0.5 + strength * (labels - 0.5) + rng.normal(0, 0.25, len(labels)), 0, 1)


def results_with_external(n=60):
    """Three models on val, test and an external set where 'good' and 'poor' swap places."""
    rng = np.random.default_rng(0)
    sets = {}
    for name in ("val", "test", "ext"):
        labels = (np.arange(n) % 2).astype(int)
        sets[name] = {"ids": [f"{name}/NORMAL/IM-{i:04d}-0001.jpeg" if y == 0 else
                              f"{name}/PNEUMONIA/person{i}_virus_1.jpeg"
                              for i, y in enumerate(labels)],
                      "labels": labels.tolist(), "groups": [f"{name}{i // 2}" for i in range(n)]}
    strengths = {"val": (0.6, 0.4, 0.2), "test": (0.6, 0.4, 0.2), "ext": (0.1, 0.3, 0.5)}
    records, external = [], {}
    for k, model in enumerate(MODELS):
        job = f"{model}[seed=0]"
        p = {s: _scores(rng, np.asarray(sets[s]["labels"]), strengths[s][k]).round(6).tolist()
             for s in sets}
        metrics = {s: compute_metrics(np.asarray(sets[s]["labels"]), np.asarray(p[s]), 0.5)
                   for s in ("val", "test")}
        records.append({"job_id": job, "model": model, "seed": 0, "status": "ok",
                        "threshold": 0.5, "metrics": metrics,
                        "predictions": {"val": p["val"], "test": p["test"]}})
        external[job] = {"status": "ok", "model": model, "seed": 0, "threshold": 0.5,
                         "metrics": compute_metrics(np.asarray(sets["ext"]["labels"]),
                                                    np.asarray(p["ext"]), 0.5),
                         "predictions": p["ext"]}
    return {"schema_version": 2, "run": {}, "provenance": {}, "split": {},
            "evaluation": {"val": sets["val"], "test": sets["test"]}, "records": records,
            "external": {"ext": {"status": "ok", "data_hash": "h", **sets["ext"],
                                 "subgroups": [""] * n, "records": external}}}


def test_sets_drops_and_rankings():
    results = with_statistics(results_with_external())
    gen = results["statistics"]["generalisation"]
    assert list(gen["sets"]) == ["val", "test", "ext"]
    test_models = results["statistics"]["models"]
    for model in MODELS:  # the same intervals as the leaderboard's for test
        assert gen["sets"]["test"]["models"][model]["roc_auc"] == pytest.approx(
            {k: test_models[model]["test"]["roc_auc"][k] for k in ("estimate", "low", "high")})
        drop = gen["drop"]["ext"][model]
        assert drop["estimate"] == pytest.approx(
            gen["sets"]["test"]["models"][model]["roc_auc"]["estimate"]
            - gen["sets"]["ext"]["models"][model]["roc_auc"]["estimate"])
        assert drop["low"] <= drop["estimate"] <= drop["high"]
        record = gen["sets"]["ext"]["records"][f"{model}[seed=0]"]
        assert record["roc_auc"]["low"] <= record["roc_auc"]["estimate"] <= record[
            "roc_auc"]["high"]
    auc = {s: [gen["sets"][s]["models"][m]["roc_auc"]["estimate"] for m in MODELS]
           for s in ("test", "ext")}
    assert gen["ranking"]["ext"]["kendall_tau"] == pytest.approx(
        kendalltau(auc["test"], auc["ext"]).statistic)
    assert gen["ranking"]["ext"]["kendall_tau"] < 0  # the order flipped
    assert gen["ranking"]["val"]["n_models"] == 3


def test_version_1_files_get_kaggle_subgroups_from_their_ids():
    results = results_with_external()
    results.pop("external")
    gen = generalisation_statistics(results, n_resamples=100)
    assert sorted(gen["subgroups"]["test"]) == ["normal IM", "viral"]


def test_vectorised_kendall_tau_equals_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, (6, 300)).astype(float), rng.integers(0, 4, (6, 300)).astype(float)
    ours = kendall_tau_b(a, b)
    for k in range(300):
        expected = kendalltau(a[:, k], b[:, k]).statistic
        assert (np.isnan(expected) and np.isnan(ours[k])) or ours[k] == pytest.approx(expected)


def _images(rng, n, brightness):
    base = rng.normal(100 + brightness, 30, (n, 64, 64, 1))
    return np.clip(base, 0, 255).astype(np.uint8)


def test_the_source_check_sees_a_visible_shift_and_not_a_random_split():
    rng = np.random.default_rng(0)
    labels = (np.arange(200) % 2).astype(int)
    groups = np.array([f"p{i // 2}" for i in range(200)])
    index = sample_for_check(labels, groups)
    assert len(index) == 200 and labels[index].sum() == 100
    train = _images(rng, 100, 0)
    same = source_auc(train, groups[:100], _images(rng, 100, 0), groups[100:])
    assert same["low"] <= 0.5 <= same["high"] + 0.05
    brighter = source_auc(train, groups[:100], _images(rng, 100, 40), groups[100:])
    assert brighter["roc_auc"] > 0.95 and brighter["status"] == "ok"
