"""``compute_statistics(results)``: the ``statistics`` section of a results file.

What it holds (every choice is also written into ``statistics["method"]``):

- ``records[job_id]["test"][metric]``: estimate and 95 % patient-bootstrap interval of every
  test metric of every successful record, at that record's own (validation-chosen) threshold.
- ``models[model]["test"][metric]``: the same for the **mean over the model's seeds**: each
  resample is scored by every seed's record and the scores averaged, so the interval is for
  the seed-mean (test-set sampling only; the seed-to-seed spread is in ``summary``). The
  leaderboard shows these.
- ``comparisons[model]``: every model against the best (highest seed-mean test ROC AUC):
  DeLong's test on seed-mean AUCs, McNemar's test on accuracy (seed-matched record pairs; with
  several seeds the largest p-value is kept), Holm-adjusted p-values, and the paired bootstrap
  interval of the difference (model minus best).
- ``records[job_id]["reliability"]``: reliability-diagram bins.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cxrbench.scoring.metrics import ECE_BINS, METRICS
from cxrbench.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_p_value,
    group_codes,
    patient_weights,
    percentile_interval,
)
from cxrbench.stats.calibration import reliability_bins
from cxrbench.stats.delong import auc_standard_error, delong_components, delong_test
from cxrbench.stats.paired import EXACT_BELOW, holm, mcnemar
from cxrbench.stats.weighted import resample_metrics

ALPHA = 0.05
COMPARED_METRICS = ("roc_auc", "accuracy")  # paired bootstrap differences against the best


def _usable(results: dict[str, Any], n: int) -> tuple[list[tuple[dict, np.ndarray]], list[dict]]:
    usable, skipped = [], []
    for record in results.get("records", []):
        if record.get("status") != "ok":
            continue
        p = (record.get("predictions") or {}).get("test")
        if p is None or len(p) != n:
            skipped.append({"job_id": record["job_id"],
                            "reason": "no test predictions aligned with evaluation.test"})
            continue
        usable.append((record, np.asarray(p, dtype=np.float64)))
    return usable, skipped


def _interval(samples: np.ndarray, estimate: float, level: float) -> dict[str, Any]:
    low, high = percentile_interval(samples, level)
    return {"estimate": estimate, "low": low, "high": high,
            "undefined_resamples": int(np.sum(~np.isfinite(samples)))}


def _method(n_resamples: int, seed: int, level: float, n: int, n_groups: int) -> dict[str, Any]:
    return {
        "bootstrap": {
            "unit": "patient (evaluation.test.groups): drawn with replacement, all their images",
            "n_resamples": n_resamples, "seed": seed, "level": level,
            "interval": "percentile", "n_images": n, "n_groups": n_groups,
        },
        "threshold": "each record's own decision threshold, chosen on validation",
        "model_intervals": "for the mean over seeds: each resample scored by every seed's "
                           "record, then averaged (test-set sampling only)",
        "calibration": {"bins": ECE_BINS, "binning": "equal-width on [0, 1]; bin k holds "
                        "k/10 <= p < (k+1)/10, the last bin includes 1"},
        "operating_points": "read off the empirical test ROC curve (corner points, no "
                            "interpolation); for reporting only, never used as a threshold",
        "comparisons": {
            "reference": "the model with the highest seed-mean test ROC AUC",
            "auc": "DeLong's test (fast algorithm of Sun & Xu 2014), two-sided, on seed-mean "
                   "AUCs (seed-averaged structural components); images treated as independent",
            "accuracy": f"McNemar's test at each record's threshold (exact binomial below "
                        f"{EXACT_BELOW} discordant pairs, else chi-square with continuity "
                        "correction); seed-matched pairs, the largest p-value over seeds kept",
            "correction": "holm", "alpha": ALPHA,
            "not_worse": f"Holm-adjusted DeLong p >= {ALPHA}",
        },
    }


def compute_statistics(
    results: dict[str, Any],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Intervals, comparisons and calibration for ``results`` (see the module docstring)."""
    start = time.perf_counter()
    test = (results.get("evaluation") or {}).get("test") or {}
    y = np.asarray(test.get("labels") or [], dtype=np.int64)
    groups = test.get("groups") or []
    if len(y) == 0 or len(groups) != len(y):
        return {"available": False,
                "reason": "results have no evaluation.test labels and patient groups"}
    usable, skipped = _usable(results, len(y))
    _, n_groups = group_codes(groups)
    out: dict[str, Any] = {
        "available": True,
        "method": _method(n_resamples, seed, level, len(y), n_groups),
        "records": {}, "models": {}, "comparisons": {}, "best_model": None, "skipped": skipped,
    }
    if not usable:
        return out
    weights = patient_weights(groups, n_resamples, seed)
    ones = np.ones((1, len(y)))
    samples: dict[str, dict[str, np.ndarray]] = {}
    estimates: dict[str, dict[str, float]] = {}
    for record, p in usable:
        threshold = record.get("threshold")
        threshold = 0.5 if threshold is None else float(threshold)
        job = record["job_id"]
        samples[job] = resample_metrics(y, p, threshold, weights)
        estimates[job] = {k: float(v[0]) for k, v in resample_metrics(y, p, threshold,
                                                                     ones).items()}
        out["records"][job] = {
            "model": record["model"], "seed": record.get("seed"), "threshold": threshold,
            "test": {k: _interval(samples[job][k], estimates[job][k], level) for k in METRICS},
            "reliability": reliability_bins(y, p),
        }
    two_classes = 0 < y.sum() < len(y)
    components = (delong_components(y, np.vstack([p for _, p in usable]))
                  if two_classes else None)
    if components is not None:
        for i, se in enumerate(auc_standard_error(components)):
            out["records"][usable[i][0]["job_id"]]["roc_auc_se_delong"] = float(se)

    by_model: dict[str, list[int]] = {}
    for i, (record, _) in enumerate(usable):
        by_model.setdefault(record["model"], []).append(i)
    model_samples: dict[str, dict[str, np.ndarray]] = {}
    for model, index in by_model.items():
        jobs = [usable[i][0]["job_id"] for i in index]
        model_samples[model] = {k: np.mean([samples[j][k] for j in jobs], axis=0)
                                for k in METRICS}
        mean_estimate = {k: float(np.mean([estimates[j][k] for j in jobs])) for k in METRICS}
        out["models"][model] = {
            "n_records": len(jobs),
            "records": jobs,
            "representative": _representative(jobs, estimates),
            "test": {k: _interval(model_samples[model][k], mean_estimate[k], level)
                     for k in METRICS},
        }
    best = _best_model(out["models"])
    out["best_model"] = best
    if best is not None and components is not None:
        out["comparisons"] = _comparisons(best, by_model, usable, y, components,
                                          model_samples, level)
    out["method"]["elapsed_s"] = round(time.perf_counter() - start, 3)
    return out


def _representative(jobs: list[str], estimates: dict[str, dict[str, float]]) -> str:
    """The seed with the median test ROC AUC (lower middle): the one curves are drawn for."""
    def key(job: str) -> float:
        auc = estimates[job]["roc_auc"]
        return auc if np.isfinite(auc) else -np.inf

    ordered = sorted(jobs, key=key)
    return ordered[(len(ordered) - 1) // 2]


def _best_model(models: dict[str, dict[str, Any]]) -> str | None:
    candidates = [(m["test"]["roc_auc"]["estimate"], name) for name, m in models.items()
                  if np.isfinite(m["test"]["roc_auc"]["estimate"])]
    if not candidates:
        return None
    top = max(auc for auc, _ in candidates)
    return min(name for auc, name in candidates if auc == top)  # ties: alphabetical


def _comparisons(best: str, by_model: dict[str, list[int]], usable: list[tuple[dict, np.ndarray]],
                 y: np.ndarray, components: Any, model_samples: dict[str, dict[str, np.ndarray]],
                 level: float) -> dict[str, Any]:
    def subset(index: list[int]) -> Any:
        return type(components)(components.auc[index], components.positive[index],
                                components.negative[index]).mean()

    def correct(i: int) -> np.ndarray:
        record, p = usable[i]
        threshold = record.get("threshold")
        return (p >= (0.5 if threshold is None else threshold)) == y.astype(bool)

    best_mean = subset(by_model[best])
    best_by_seed = {usable[i][0].get("seed"): i for i in by_model[best]}
    comparisons: dict[str, Any] = {}
    for model, index in by_model.items():
        if model == best:
            continue
        delong = delong_test(subset(index), best_mean)
        pairs = []
        for i in index:
            ref = best_by_seed.get(usable[i][0].get("seed"), by_model[best][0])
            pairs.append({"job_id": usable[i][0]["job_id"],
                          "reference_job_id": usable[ref][0]["job_id"],
                          **mcnemar(correct(i), correct(ref))})
        worst = max(pairs, key=lambda pair: pair["p"])
        differences = {}
        for name in COMPARED_METRICS:
            diff = model_samples[model][name] - model_samples[best][name]
            estimate = float(np.nanmean(diff)) if np.isfinite(diff).any() else float("nan")
            low, high = percentile_interval(diff, level)
            differences[name] = {"low": low, "high": high, "p": bootstrap_p_value(diff),
                                 "mean_resampled": estimate}
        comparisons[model] = {
            "reference": best,
            "delong": delong,
            "mcnemar": {"p": worst["p"], "method": worst["method"], "b": worst["b"],
                        "c": worst["c"], "pairs": pairs},
            "bootstrap_difference": differences,
        }
    names = list(comparisons)
    for test_name in ("delong", "mcnemar"):
        adjusted = holm([comparisons[m][test_name]["p"] for m in names])
        for model, value in zip(names, adjusted, strict=True):
            comparisons[model][test_name]["p_holm"] = value
    for model in names:
        p_holm = comparisons[model]["delong"]["p_holm"]
        comparisons[model]["not_worse"] = bool(p_holm is not None and p_holm >= ALPHA)
    return comparisons
