"""Classification metrics, each declaring once whether higher is better.

The harness, never a plugin, calls these. Every metric is a function of the labels, the
predicted probabilities and the decision threshold, so all of them share one signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    label: str
    compute: Callable[[np.ndarray, np.ndarray, float], float]
    needs_both_classes: bool = False


def _confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    pred = p >= threshold
    truth = y.astype(bool)
    tp = int(np.sum(pred & truth))
    tn = int(np.sum(~pred & ~truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    return tp, tn, fp, fn


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def _accuracy(y, p, t):  # type: ignore[no-untyped-def]
    tp, tn, fp, fn = _confusion(y, p, t)
    return _ratio(tp + tn, tp + tn + fp + fn)


def _recall(y, p, t):  # type: ignore[no-untyped-def]
    tp, tn, fp, fn = _confusion(y, p, t)
    return _ratio(tp, tp + fn)


def _specificity(y, p, t):  # type: ignore[no-untyped-def]
    tp, tn, fp, fn = _confusion(y, p, t)
    return _ratio(tn, tn + fp)


def _precision(y, p, t):  # type: ignore[no-untyped-def]
    tp, tn, fp, fn = _confusion(y, p, t)
    # A model that never predicts pneumonia has no precision; 0 is the usual convention.
    return _ratio(tp, tp + fp) if tp + fp else 0.0


def _f1(y, p, t):  # type: ignore[no-untyped-def]
    tp, tn, fp, fn = _confusion(y, p, t)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _balanced_accuracy(y, p, t):  # type: ignore[no-untyped-def]
    return 0.5 * (_recall(y, p, t) + _specificity(y, p, t))


def _roc_auc(y, p, t):  # type: ignore[no-untyped-def]
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _pr_auc(y, p, t):  # type: ignore[no-untyped-def]
    return float(average_precision_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, "Accuracy", _accuracy),
        Metric("balanced_accuracy", True, "Balanced accuracy", _balanced_accuracy),
        Metric("precision", True, "Precision", _precision),
        Metric("recall", True, "Recall (sensitivity)", _recall),
        Metric("specificity", True, "Specificity", _specificity),
        Metric("f1", True, "F1", _f1),
        Metric("roc_auc", True, "ROC AUC", _roc_auc, needs_both_classes=True),
        Metric("pr_auc", True, "PR AUC", _pr_auc, needs_both_classes=True),
    )
}

# Non-score quantities stored in results, with their direction (for compare and the report).
TIMING_DIRECTIONS: dict[str, bool] = {
    "fit_s": False,
    "predict_s": False,
    "predict_ms_per_image": False,
    "peak_rss_mb": False,
}


def higher_is_better(name: str) -> bool:
    """Direction of a metric or timing; the single source of truth for every consumer."""
    if name in METRICS:
        return METRICS[name].higher_is_better
    if name in TIMING_DIRECTIONS:
        return TIMING_DIRECTIONS[name]
    raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS) + sorted(TIMING_DIRECTIONS)}")


def confusion_counts(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    tp, tn, fp, fn = _confusion(np.asarray(y), np.asarray(p), threshold)
    return {"tp": tp, "tn": tn, "fp": fp, "fn": fn}


def compute_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """All metrics at one threshold. NaN where a metric is undefined (e.g. AUC on one class)."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    return {name: m.compute(y, p, threshold) for name, m in METRICS.items()}
