"""ROC and precision-recall curve points that are right for tied scores.

A run of tied scores is one step of the threshold: every image in it changes class at once.
On the ROC curve that step is a straight segment (the expected curve under random
tie-breaking; its area is the Mann-Whitney AUC with ties counted half), never a staircase: a
constant score (the ``majority`` baseline) is the chance diagonal, not an L along the axes.
On the precision-recall curve straight lines are wrong: between two thresholds precision moves
along tp / (tp + fp) as the tied images are let in (Davis & Goadrich, ICML 2006), so each tied
step is drawn through interpolated points; a constant score is the flat prevalence line.
"""

from __future__ import annotations

import numpy as np

PR_STEPS = 16  # interpolated points per tied step of the precision-recall curve


def cumulative_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at or above each distinct score, highest first, from (0, 0)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    scores, truth = p[order], y[order]
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = np.cumsum(truth)[ends]
    fp = (ends + 1) - tp
    return np.r_[0, tp].astype(float), np.r_[0, fp].astype(float)


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), from (0, 0) to (1, 1), joined by lines."""
    tp, fp = cumulative_counts(y, p)
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def pr_points(y: np.ndarray, p: np.ndarray, steps: int = PR_STEPS
              ) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) with tied steps interpolated; starts at recall 0 with the limit
    of the first step's precision (undefined at exactly 0)."""
    tp, fp = cumulative_counts(y, p)
    n_pos = max(tp[-1], 1)
    recall, precision = [], []
    for i in range(1, len(tp)):
        d_tp, d_fp = tp[i] - tp[i - 1], fp[i] - fp[i - 1]
        fractions = np.linspace(0, 1, steps + 1)[1:] if d_tp and d_fp else np.array([1.0])
        if i == 1:  # the limit as the first images are let in
            recall.append(0.0)
            precision.append(d_tp / (d_tp + d_fp))
        t = tp[i - 1] + fractions * d_tp
        f = fp[i - 1] + fractions * d_fp
        recall.extend(t / n_pos)
        precision.extend(t / (t + f))
    return np.asarray(recall), np.asarray(precision)


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float
                    ) -> tuple[float, float, float | None]:
    """(false positive rate, sensitivity, precision) at ``p >= threshold``."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p, dtype=np.float64) >= threshold
    sens = float(np.mean(pred[y])) if y.any() else float("nan")
    fpr = float(np.mean(pred[~y])) if (~y).any() else float("nan")
    precision = float(np.mean(y[pred])) if pred.any() else None
    return fpr, sens, precision
