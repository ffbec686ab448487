"""Statistics: new metrics, the patient bootstrap, fast DeLong, McNemar, Holm, calibration."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from report_helpers import fake_results
from scipy.stats import binomtest, norm

from cxrbench.results.io import write_results
from cxrbench.results.leaderboard import load
from cxrbench.scoring.metrics import METRICS, compute_metrics
from cxrbench.stats import (
    compute_statistics,
    delong_components,
    delong_test,
    holm,
    mcnemar,
    patient_weights,
    percentile_interval,
    reliability_bins,
    resample_metrics,
    with_statistics,
)
from cxrbench.stats.delong import auc_standard_error
from cxrbench.stats.weighted import ranking_metrics

# --- metrics added for the statistics ------------------------------------------------------


def test_calibration_and_operating_point_metrics_match_hand_values():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4])
    m = compute_metrics(y, p, 0.5)
    # squared errors .01 .04 .49 .36 .04 .01 .09 .16 -> 1.2 / 8
    assert m["brier"] == pytest.approx(0.15)
    # every image is alone in its bin: ECE = mean |y - p| = 2.6 / 8
    assert m["ece"] == pytest.approx(0.325)
    # specificity >= 90 % allows no false positive: threshold above 0.6 keeps 3 of 4 positives
    assert m["sens_at_spec90"] == pytest.approx(0.75)
    assert m["sens_at_spec95"] == pytest.approx(0.75)
    # sensitivity >= 90 % needs all 4 positives (down to 0.3): negatives 0.6 and 0.4 are above
    assert m["spec_at_sens90"] == pytest.approx(0.5)
    assert m["spec_at_sens95"] == pytest.approx(0.5)


def test_ece_pools_images_of_one_bin():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.71, 0.75, 0.79, 0.05])  # three in bin 7: mean p .75, rate 2/3
    expected = (3 * abs(2 / 3 - 0.75) + 1 * abs(1 - 0.05)) / 4
    assert compute_metrics(y, p, 0.5)["ece"] == pytest.approx(expected)
    bins = reliability_bins(y, p)
    assert len(bins) == 10 and bins[7]["count"] == 3
    assert bins[7]["mean_predicted"] == pytest.approx(0.75)
    assert bins[7]["observed_rate"] == pytest.approx(2 / 3)
    assert bins[3]["count"] == 0 and bins[3]["observed_rate"] is None


def test_probability_one_falls_in_the_last_bin():
    assert reliability_bins(np.array([1]), np.array([1.0]))[9]["count"] == 1


# --- the patient bootstrap ------------------------------------------------------------------


def test_patient_weights_move_a_patients_images_together():
    groups = ["a", "a", "b", "c", "c", "c", "d"]
    w = patient_weights(groups, n_resamples=500, seed=3)
    assert w.shape == (500, 7)
    assert np.array_equal(w[:, 0], w[:, 1])
    assert np.array_equal(w[:, 3], w[:, 5])
    # each resample draws 4 patients: weights of one image per patient sum to 4
    assert np.all(w[:, [0, 2, 3, 6]].sum(axis=1) == 4)
    assert np.array_equal(w, patient_weights(groups, n_resamples=500, seed=3))
    assert not np.array_equal(w, patient_weights(groups, n_resamples=500, seed=4))


@pytest.mark.parametrize("trial", range(6))
def test_resampled_metrics_equal_metrics_of_the_written_out_resample(trial):
    rng = np.random.default_rng(trial)
    n = int(rng.integers(8, 60))
    y = rng.integers(0, 2, n)
    p = np.round(rng.random(n), int(rng.integers(1, 3)))  # coarse: many ties
    groups = [f"p{i // 2}" for i in range(n)]
    weights = patient_weights(groups, n_resamples=40, seed=trial)
    resampled = resample_metrics(y, p, 0.5, weights)
    assert set(resampled) == set(METRICS)
    for b in range(len(weights)):
        index = np.repeat(np.arange(n), weights[b].astype(int))
        expected = compute_metrics(y[index], p[index], 0.5)
        for name, value in expected.items():
            if np.isnan(value):
                assert np.isnan(resampled[name][b]), (name, b)
            else:
                assert resampled[name][b] == pytest.approx(value, abs=1e-6), (name, b)


def test_percentile_interval_ignores_undefined_resamples():
    samples = np.r_[np.arange(1, 101, dtype=float), [np.nan] * 5]
    low, high = percentile_interval(samples, 0.9)
    assert low == pytest.approx(np.percentile(np.arange(1, 101), 5))
    assert high == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert np.isnan(percentile_interval(np.array([np.nan]))[0])


def test_bootstrap_auc_interval_covers_the_true_auc_about_95_percent():
    """Binormal scores with a known AUC (Phi(d / sqrt 2)): 200 simulated test sets."""
    true_auc = 0.8
    d = np.sqrt(2) * norm.ppf(true_auc)
    rng = np.random.default_rng(2024)
    n_pos = n_neg = 60
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    weights = patient_weights(np.arange(len(y)).astype(str), n_resamples=400, seed=0)
    covered = 0
    n_sims = 200
    for _ in range(n_sims):
        scores = np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]
        low, high = percentile_interval(ranking_metrics(y, scores, weights)["roc_auc"])
        covered += low <= true_auc <= high
    assert 0.90 <= covered / n_sims <= 0.99


def test_patient_bootstrap_is_wider_than_image_bootstrap_on_duplicated_images():
    """Two identical images per patient carry the information of one: the interval widens."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(80, int), np.zeros(80, int)]
    scores = rng.normal(size=160) + 1.2 * y
    y2, s2 = np.repeat(y, 2), np.repeat(scores, 2)
    patients = np.repeat(np.arange(160), 2).astype(str)
    images = np.arange(320).astype(str)

    def width(groups: np.ndarray) -> float:
        low, high = percentile_interval(
            ranking_metrics(y2, s2, patient_weights(groups, 1000, 0))["roc_auc"])
        return high - low

    assert width(patients) > 1.25 * width(images)


# --- DeLong -----------------------------------------------------------------------------------


def delong_reference(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) straight from the definition: O(m n) pairwise kernels."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    auc = psi.mean(axis=(1, 2))
    v10 = psi.mean(axis=2)  # (k, m)
    v01 = psi.mean(axis=1)  # (k, n)
    k = len(scores)
    s10 = np.array([[np.sum((v10[a] - auc[a]) * (v10[b] - auc[b])) / (m - 1) for b in range(k)]
                    for a in range(k)])
    s01 = np.array([[np.sum((v01[a] - auc[a]) * (v01[b] - auc[b])) / (n - 1) for b in range(k)]
                    for a in range(k)])
    return auc, s10 / m + s01 / n


@pytest.mark.parametrize("trial", range(4))
def test_fast_delong_matches_the_pairwise_definition(trial):
    rng = np.random.default_rng(trial)
    n = 70
    y = (rng.random(n) < 0.4).astype(int)
    base = rng.normal(size=n) + y
    scores = np.vstack([np.round(base + rng.normal(0, s, n), 1) for s in (0.3, 0.8, 1.5)])
    fast = delong_components(y, scores)
    auc, cov = delong_reference(y, scores)
    np.testing.assert_allclose(fast.auc, auc, atol=1e-12)
    np.testing.assert_allclose(fast.covariance(), cov, atol=1e-12)


def test_delong_on_a_hand_computed_case():
    # A: positives .9 .6, negatives .7 .1 -> AUC 3/4; components (1, .5) and (.5, 1): var .125
    # B: ranks every positive above every negative -> AUC 1 with zero variance
    y = np.array([1, 1, 0, 0])
    a = delong_components(y, np.array([[0.9, 0.6, 0.7, 0.1]]))
    b = delong_components(y, np.array([[0.8, 0.4, 0.3, 0.35]]))
    result = delong_test(a, b)
    assert result["auc_first"] == pytest.approx(0.75) and result["auc_second"] == 1.0
    assert result["se_difference"] == pytest.approx(np.sqrt(0.125))
    assert result["z"] == pytest.approx(-0.25 / np.sqrt(0.125))
    assert result["p"] == pytest.approx(2 * norm.cdf(-1 / np.sqrt(2)))  # 0.4795


def test_delong_standard_error_on_hanley_mcneil_1982_ratings():
    """109 CT images rated 1-5 (Hanley & McNeil 1982, Radiology 143:29): AUC 0.893, SE 0.032."""
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    scores = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    y = np.r_[np.zeros(58, int), np.ones(51, int)]
    components = delong_components(y, scores[None].astype(float))
    assert components.auc[0] == pytest.approx(0.8932, abs=5e-4)
    assert auc_standard_error(components)[0] == pytest.approx(0.032, abs=0.002)


def test_delong_identical_models_and_type_one_error():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    s = rng.normal(size=100) + y
    same = delong_components(y, s[None])
    assert delong_test(same, same)["p"] == 1.0
    rejections = 0
    for _ in range(300):  # two equally good models, correlated through a shared signal
        shared = rng.normal(size=100) + y
        two = delong_components(y, np.vstack([shared + rng.normal(size=100),
                                              shared + rng.normal(size=100)]))
        first = type(two)(two.auc[:1], two.positive[:1], two.negative[:1])
        second = type(two)(two.auc[1:], two.positive[1:], two.negative[1:])
        rejections += delong_test(first, second)["p"] < 0.05
    assert 0.02 <= rejections / 300 <= 0.09


# --- McNemar and Holm -----------------------------------------------------------------------


def test_mcnemar_exact_for_few_discordant_pairs_chi_square_for_many():
    a = np.array([1] * 7 + [0] * 2 + [1] * 20, bool)
    b = np.array([0] * 7 + [1] * 2 + [1] * 20, bool)
    small = mcnemar(a, b)
    assert (small["b"], small["c"], small["method"]) == (7, 2, "exact binomial")
    assert small["p"] == pytest.approx(binomtest(2, 9, 0.5).pvalue)
    a = np.array([1] * 30 + [0] * 10, bool)
    large = mcnemar(a, ~a)
    assert large["method"] == "chi-square, continuity-corrected"
    assert large["statistic"] == pytest.approx(19 ** 2 / 40)
    assert large["p"] == pytest.approx(0.002663, abs=2e-6)
    assert mcnemar(a, a)["p"] == 1.0


def test_holm_step_down():
    adjusted = holm([0.01, 0.04, 0.03, 0.005, None])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjusted[4] is None
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


# --- compute_statistics ---------------------------------------------------------------------


def test_compute_statistics_intervals_comparisons_and_method():
    results = fake_results(n_models=3, n_seeds=2, n_test=150)
    stats = compute_statistics(results, n_resamples=300, seed=7)
    assert stats["available"] and stats["best_model"] == "model_02"
    boot = stats["method"]["bootstrap"]
    assert (boot["n_resamples"], boot["seed"], boot["n_images"]) == (300, 7, 150)
    assert boot["n_groups"] == len(set(results["evaluation"]["test"]["groups"]))
    assert stats["method"]["comparisons"]["correction"] == "holm"
    for job, entry in stats["records"].items():
        record = next(r for r in results["records"] if r["job_id"] == job)
        for name in METRICS:  # estimates are the record's own test metrics
            assert entry["test"][name]["estimate"] == pytest.approx(
                record["metrics"]["test"][name], abs=1e-6)
        auc = entry["test"]["roc_auc"]
        assert auc["low"] <= auc["estimate"] <= auc["high"]
    model = stats["models"]["model_01"]
    jobs = model["records"]
    assert model["test"]["accuracy"]["estimate"] == pytest.approx(
        np.mean([stats["records"][j]["test"]["accuracy"]["estimate"] for j in jobs]))
    assert set(stats["comparisons"]) == {"model_00", "model_01"}
    comparison = stats["comparisons"]["model_00"]
    assert comparison["delong"]["difference"] < 0
    assert comparison["delong"]["p_holm"] >= comparison["delong"]["p"]
    assert len(comparison["mcnemar"]["pairs"]) == 2
    assert comparison["mcnemar"]["p"] == max(p["p"] for p in comparison["mcnemar"]["pairs"])
    assert comparison["not_worse"] == (comparison["delong"]["p_holm"] >= 0.05)
    again = compute_statistics(results, n_resamples=300, seed=7)
    assert again["models"] == stats["models"] and again["comparisons"] == stats["comparisons"]


def test_seed_mean_delong_uses_averaged_components():
    results = fake_results(n_models=2, n_seeds=3, n_test=100, seed=1)
    stats = compute_statistics(results, n_resamples=50)
    y = np.array(results["evaluation"]["test"]["labels"])

    def mean_components(model: str):
        scores = np.vstack([r["predictions"]["test"] for r in results["records"]
                            if r["model"] == model])
        return delong_components(y, scores).mean()

    expected = delong_test(mean_components("model_00"), mean_components("model_01"))
    assert stats["comparisons"]["model_00"]["delong"]["p"] == pytest.approx(expected["p"])
    assert stats["models"]["model_01"]["test"]["roc_auc"]["estimate"] == pytest.approx(
        expected["auc_second"])


def test_statistics_degrade_gracefully():
    assert compute_statistics({"records": []})["available"] is False
    results = fake_results(n_models=1, n_test=60, failures=2)
    stats = compute_statistics(results, n_resamples=50)
    assert stats["best_model"] == "model_00" and stats["comparisons"] == {}
    results["records"][0]["predictions"]["test"] = [0.5]  # misaligned: skipped, named
    stats = compute_statistics(results, n_resamples=50)
    assert stats["skipped"][0]["job_id"] == "model_00[seed=0]" and stats["best_model"] is None


@pytest.mark.slow
def test_twenty_records_on_624_images_take_seconds():
    results = fake_results(n_models=10, n_seeds=2, n_test=624, seed=3)
    start = time.perf_counter()
    stats = compute_statistics(results, n_resamples=2000)
    elapsed = time.perf_counter() - start
    assert len(stats["records"]) == 20
    assert elapsed < 30, f"statistics took {elapsed:.1f} s"  # ~1-2 s on an idle laptop core


def test_write_results_stores_statistics_and_load_has_intervals(tmp_path):
    results = fake_results(n_models=2, n_test=80)
    path = write_results(tmp_path / "results.json", with_statistics(results))
    stored = json.loads(path.read_text())["statistics"]
    assert stored["available"] and stored["best_model"] == "model_01"
    assert stored["method"]["bootstrap"]["n_resamples"] == 2000
    board = load(path)
    assert list(board["model"]) == ["model_01", "model_00"]
    for column in ("roc_auc_low", "roc_auc_high", "brier", "ece_low", "delong_p_holm",
                   "mcnemar_p", "not_worse", "n_params", "family"):
        assert column in board.columns
    best = board.iloc[0]
    assert best["roc_auc_low"] <= best["roc_auc"] <= best["roc_auc_high"]
    assert bool(best["best"]) and bool(best["not_worse"])
