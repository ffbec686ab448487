"""What a clinician reads at the chosen threshold: predictive values and likelihood ratios.

PPV and NPV (the share of positive / negative calls that are right, at the test split's
prevalence) and the likelihood ratios LR+ = sensitivity / (1 - specificity) and LR- =
(1 - sensitivity) / specificity (independent of prevalence), on validation and test, each at
the record's own validation-chosen threshold. Test values are means over seeds with 95 %
patient-bootstrap intervals drawn exactly as ``cxrbench.stats`` draws them (same resamples,
same seed), so they line up with the leaderboard's intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.stats.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    patient_weights,
    percentile_interval,
)

CLINICAL_METRICS = (("ppv", "PPV"), ("npv", "NPV"), ("lr_pos", "LR+"), ("lr_neg", "LR−"))


def _ratios(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray
            ) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        sens = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        return {
            "ppv": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "npv": np.where(tn + fn > 0, tn / (tn + fn), np.nan),
            "lr_pos": np.where(spec < 1, sens / (1 - spec), np.inf),
            "lr_neg": np.where(spec > 0, (1 - sens) / spec, np.inf),
            "sensitivity": sens, "specificity": spec,
        }


def confusion_ratios(counts: dict[str, int]) -> dict[str, float]:
    """PPV, NPV, LR+, LR-, sensitivity and specificity of one confusion matrix."""
    arrays = [np.array([float(counts.get(k, 0))]) for k in ("tp", "fp", "fn", "tn")]
    return {k: float(v[0]) for k, v in _ratios(*arrays).items()}


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def clinical_rows(results: dict[str, Any], order: list[str]) -> list[dict[str, Any]]:
    """Per model: validation and test PPV, NPV, LR+, LR- (test with intervals), in ``order``."""
    test = (results.get("evaluation") or {}).get("test") or {}
    y = np.asarray(test.get("labels") or [], dtype=bool)
    groups = test.get("groups") or []
    if not len(y) or len(groups) != len(y):
        return []
    boot = (((results.get("statistics") or {}).get("method") or {}).get("bootstrap") or {})
    weights = patient_weights(groups, int(boot.get("n_resamples", DEFAULT_RESAMPLES)),
                              int(boot.get("seed", DEFAULT_SEED))).astype(np.float64)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in results.get("records", []):
        p = (record.get("predictions") or {}).get("test")
        if record["status"] == "ok" and p is not None and len(p) == len(y):
            by_model.setdefault(record["model"], []).append(record)
    rows = []
    for model in order:
        records = by_model.get(model)
        if not records:
            continue
        samples: dict[str, list[np.ndarray]] = {}
        estimates: dict[str, list[float]] = {}
        val: dict[str, list[float]] = {}
        for record in records:
            p = np.asarray([np.nan if v is None else v for v in record["predictions"]["test"]],
                           dtype=np.float64)
            threshold = record.get("threshold")
            pred = p >= (0.5 if threshold is None else float(threshold))
            columns = np.c_[pred & y, pred & ~y, ~pred & y, ~pred & ~y].astype(np.float64)
            resampled = _ratios(*(weights @ columns).T)
            point = _ratios(*columns.sum(axis=0)[:, None])
            for key in resampled:
                samples.setdefault(key, []).append(resampled[key])
                estimates.setdefault(key, []).append(float(point[key][0]))
            for key, value in confusion_ratios((record.get("confusion") or {}).get("val")
                                               or {}).items():
                val.setdefault(key, []).append(value)
        row: dict[str, Any] = {"model": model, "n_records": len(records), "test": {}, "val": {}}
        for key in samples:
            low, high = percentile_interval(np.mean(samples[key], axis=0),
                                            float(boot.get("level", 0.95)))
            row["test"][key] = {"estimate": _finite_or_none(np.mean(estimates[key])),
                                "low": _finite_or_none(low), "high": _finite_or_none(high)}
            row["val"][key] = _finite_or_none(np.mean(val[key])) if val.get(key) else None
        rows.append(row)
    return rows
