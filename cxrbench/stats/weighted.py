"""Every metric of :data:`cxrbench.scoring.metrics.METRICS`, for many weight vectors at once.

``weights`` is ``(n_resamples, n_images)``: row b says how often each test image appears in
bootstrap resample b. With integer weights each function equals the plain metric on the
resample written out image by image (tests check this against ``compute_metrics``), but costs
a few vectorised passes instead of ``n_resamples`` Python calls.

Ranking metrics sort the scores once (the order does not depend on the weights), then take
weighted cumulative sums along the sorted scores: the ROC and precision-recall curves of all
resamples at once, one point per distinct score (tied scores move together, as in sklearn).
"""

from __future__ import annotations

import numpy as np

from cxrbench.scoring.metrics import ECE_BINS, METRICS, OPERATING_POINTS, calibration_bin

_TOLERANCE = 1e-12


def _divide(num: np.ndarray, den: np.ndarray, empty: float = np.nan) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, empty)


def counting_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, weights: np.ndarray, bins: int = ECE_BINS
) -> dict[str, np.ndarray]:
    """Metrics that are sums over images: confusion counts, Brier score and ECE.

    One matrix product computes every weighted sum for every resample in a single pass.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    truth = y.astype(bool)
    pred = p >= threshold
    columns = np.zeros((len(p), 5 + bins), dtype=weights.dtype)
    columns[:, 0] = pred & truth
    columns[:, 1] = pred & ~truth
    columns[:, 2] = ~pred & truth
    columns[:, 3] = ~pred & ~truth
    columns[:, 4] = (p - y) ** 2
    columns[np.arange(len(p)), 5 + calibration_bin(p, bins)] = y - p
    sums = (weights @ columns).astype(np.float64)
    tp, fp, fn, tn, squared = sums[:, :5].T
    total = tp + fp + fn + tn
    recall = _divide(tp, tp + fn)
    specificity = _divide(tn, tn + fp)
    return {
        "accuracy": _divide(tp + tn, total),
        "balanced_accuracy": 0.5 * (recall + specificity),
        # No positive prediction: precision 0, the convention of cxrbench.scoring.metrics.
        "precision": _divide(tp, tp + fp, empty=0.0),
        "recall": recall,
        "specificity": specificity,
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
        "brier": _divide(squared, total),
        "ece": _divide(np.abs(sums[:, 5:]).sum(axis=1), total),
    }


def curve_points(
    y: np.ndarray, p: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted true- and false-positive counts at each distinct score, highest score first.

    Returns ``(tp, fp)``, each ``(n_resamples, n_distinct)``: the counts of images scored at
    or above each distinct score. The point (0, 0) above every score is left implicit.
    """
    scores = np.asarray(p, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    w = weights[:, order]
    positive = np.asarray(y)[order].astype(bool)
    tp = np.cumsum(w * positive, axis=1)
    fp = np.cumsum(w, axis=1)
    fp -= tp
    if np.any(sorted_scores[1:] == sorted_scores[:-1]):
        # Last position of each run of tied scores: the curve moves once per distinct score.
        ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
        tp, fp = tp[:, ends], fp[:, ends]
    return tp, fp


def ranking_metrics(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """ROC AUC, PR AUC (average precision) and the ROC operating points per resample."""
    tp, fp = curve_points(y, p, weights)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    defined = (n_pos > 0) & (n_neg > 0)
    zero = np.zeros((len(tp), 1), dtype=tp.dtype)
    d_tp = np.diff(tp, axis=1, prepend=zero)
    d_fp = np.diff(fp, axis=1, prepend=zero)
    # Trapezoids between consecutive distinct scores = Mann-Whitney with ties counted half.
    area = np.sum(d_fp * (2 * tp - d_tp), axis=1) / 2
    precision_sum = np.sum(_divide(d_tp * tp, tp + fp, empty=0.0), axis=1)
    out = {
        "roc_auc": _divide(area, n_pos * n_neg),
        "pr_auc": _divide(precision_sum, n_pos),
    }
    rows = np.arange(len(weights))
    for name, target, kind in OPERATING_POINTS:
        if kind == "sensitivity":
            # TP and FP only grow along the curve: the last point with FP rate <= 1 - target
            # (or the implicit (0, 0) point when even the top score breaks it).
            limit = (1.0 - target + _TOLERANCE) * n_neg
            last = np.sum(fp <= limit[:, None], axis=1) - 1
            value = _divide(np.where(last >= 0, tp[rows, np.maximum(last, 0)], 0.0), n_pos)
        else:
            limit = (target - _TOLERANCE) * n_pos
            first = np.argmax(tp >= limit[:, None], axis=1)
            value = 1.0 - _divide(fp[rows, first], n_neg)
        out[name] = np.where(defined, value, np.nan)
    for name in ("roc_auc", "pr_auc"):
        out[name] = np.where(defined, out[name], np.nan)
    return out


def resample_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric in METRICS for every row of ``weights`` (name -> array of n_resamples)."""
    weights = np.atleast_2d(np.asarray(weights))
    if weights.dtype not in (np.float32, np.float64):
        weights = weights.astype(np.float64)
    out = counting_metrics(y, p, threshold, weights)
    out.update(ranking_metrics(y, p, weights))
    missing = set(METRICS) - set(out)
    if missing:  # a metric added to METRICS needs its vectorised twin here
        raise NotImplementedError(f"no resampled version of metric(s) {sorted(missing)}")
    return {name: out[name].astype(np.float64) for name in METRICS}
