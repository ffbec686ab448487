"""Classification metrics, each declaring once whether higher is better.

The harness, never a plugin, calls these. Every metric is a function of the labels, the
predicted probabilities and the decision threshold, so all of them share one signature
(ranking, calibration and operating-point metrics ignore the threshold).

Groups: ``threshold`` (at the decision threshold chosen on validation), ``ranking`` (areas
under curves), ``calibration`` (Brier score; expected calibration error over ``ECE_BINS``
equal-width bins: bin k holds k/10 <= p < (k+1)/10, the last bin includes 1) and
``operating_point`` (read off the ROC curve of the scored split itself, for reporting only:
the decision threshold never comes from them). ``cxrbench.stats`` has vectorised versions of
the same definitions for the bootstrap; tests check both agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    label: str
    compute: Callable[[np.ndarray, np.ndarray, float], float]
    group: str = "threshold"  # threshold | ranking | calibration | operating_point


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


ECE_BINS = 10
# (name, target, kind): sensitivity at a specificity target, or specificity at a sensitivity one.
OPERATING_POINTS: tuple[tuple[str, float, str], ...] = (
    ("sens_at_spec90", 0.90, "sensitivity"),
    ("sens_at_spec95", 0.95, "sensitivity"),
    ("spec_at_sens90", 0.90, "specificity"),
    ("spec_at_sens95", 0.95, "specificity"),
)
_TOLERANCE = 1e-12  # a specificity of exactly 0.9 counts as reaching 0.9


def _brier(y, p, t):  # type: ignore[no-untyped-def]
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def calibration_bin(p: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Index of the equal-width bin of each probability (the last bin includes 1.0)."""
    return np.minimum((np.asarray(p, dtype=np.float64) * bins).astype(np.int64), bins - 1)


def _ece(y, p, t):  # type: ignore[no-untyped-def]
    if not len(y):
        return float("nan")
    index = calibration_bin(p)
    gap = np.bincount(index, weights=y - p, minlength=ECE_BINS)
    return float(np.abs(gap).sum() / len(y))


def roc_operating_point(fpr: np.ndarray, tpr: np.ndarray, target: float, kind: str) -> float:
    """Best sensitivity at specificity >= target, or best specificity at sensitivity >= target.

    Read off the empirical ROC curve (its corner points, no interpolation between them).
    """
    if kind == "sensitivity":
        reach = fpr <= 1.0 - target + _TOLERANCE
        return float(tpr[reach].max()) if reach.any() else float("nan")
    reach = tpr >= target - _TOLERANCE
    return float((1.0 - fpr[reach]).max()) if reach.any() else float("nan")


def _operating_point(target: float, kind: str) -> Callable[[np.ndarray, np.ndarray, float], float]:
    def compute(y: np.ndarray, p: np.ndarray, t: float) -> float:
        if len(np.unique(y)) < 2:
            return float("nan")
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        return roc_operating_point(fpr, tpr, target, kind)

    return compute


_OP_LABELS = {"sensitivity": "Sens @ {:.0%} spec", "specificity": "Spec @ {:.0%} sens"}

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, "Accuracy", _accuracy),
        Metric("balanced_accuracy", True, "Balanced accuracy", _balanced_accuracy),
        Metric("precision", True, "Precision", _precision),
        Metric("recall", True, "Recall (sensitivity)", _recall),
        Metric("specificity", True, "Specificity", _specificity),
        Metric("f1", True, "F1", _f1),
        Metric("roc_auc", True, "ROC AUC", _roc_auc, group="ranking"),
        Metric("pr_auc", True, "PR AUC", _pr_auc, group="ranking"),
        Metric("brier", False, "Brier score", _brier, group="calibration"),
        Metric("ece", False, "ECE (10 bins)", _ece, group="calibration"),
        *(
            Metric(name, True, _OP_LABELS[kind].format(target), _operating_point(target, kind),
                   group="operating_point")
            for name, target, kind in OPERATING_POINTS
        ),
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
