"""Scores of many records on one evaluation set, with patient-bootstrap intervals: per record
and for the mean over each model's seeds (the resampled metrics are averaged over seeds, so the
interval is for the seed mean and reflects test-set sampling only)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from cxrbench.scoring.metrics import METRICS
from cxrbench.stats.bootstrap import percentile_interval
from cxrbench.stats.weighted import resample_metrics


def interval(samples: np.ndarray, estimate: float, level: float) -> dict[str, Any]:
    low, high = percentile_interval(samples, level)
    return {"estimate": float(estimate), "low": low, "high": high}


def score_set(labels: np.ndarray, groups: np.ndarray, predictions: dict[str, Any],
              model_of: dict[str, str], weights: np.ndarray, level: float,
              metrics: Iterable[str] = METRICS) -> tuple[dict[str, Any], dict[str, Any]]:
    """Intervals per record and per model (seed mean), and the models' resampled metrics."""
    names = list(metrics)
    ones = np.ones((1, len(labels)))
    records, samples, estimates = {}, {}, {}
    for job, (p, threshold) in predictions.items():
        samples[job] = resample_metrics(labels, p, threshold, weights)
        estimates[job] = {k: float(v[0]) for k, v in
                          resample_metrics(labels, p, threshold, ones).items()}
        records[job] = {k: interval(samples[job][k], estimates[job][k], level) for k in names}
    by_model: dict[str, list[str]] = {}
    for job in predictions:
        by_model.setdefault(model_of[job], []).append(job)
    models, model_samples = {}, {}
    for model, jobs in by_model.items():
        model_samples[model] = {k: np.mean([samples[j][k] for j in jobs], axis=0) for k in names}
        mean = {k: float(np.mean([estimates[j][k] for j in jobs])) for k in names}
        models[model] = {k: interval(model_samples[model][k], mean[k], level) for k in names}
        models[model]["n_records"] = len(jobs)
    return {"records": records, "models": models}, model_samples


