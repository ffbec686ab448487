"""ROC and precision-recall points for tied scores, and the figures built from them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrbench.report.curves import operating_point, pr_points, roc_points


def test_a_constant_score_is_the_chance_diagonal_and_the_prevalence_line():
    y = np.array([0, 1, 1, 0, 1, 1, 1, 0])
    p = np.full(len(y), 0.7)
    fpr, tpr = roc_points(y, p)
    assert list(fpr) == [0, 1] and list(tpr) == [0, 1]  # a straight diagonal, not an L
    recall, precision = pr_points(y, p)
    assert recall[0] == 0 and recall[-1] == 1
    assert np.allclose(precision, y.mean())  # flat at the prevalence


def test_roc_points_integrate_to_the_tie_aware_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300) * 0.5 + 0.3 * y, 1)  # few distinct values: many ties
    fpr, tpr = roc_points(y, p)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, p))
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_pr_points_interpolate_a_tied_step_along_tp_over_tp_plus_fp():
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1])  # one tied step: 2 positives, 2 negatives
    recall, precision = pr_points(y, p, steps=4)
    # after the top image: recall 1/3, precision 1; the tied step ends at 3 of 5 called right
    assert (recall[1], precision[1]) == (pytest.approx(1 / 3), 1.0)
    mid = np.argmin(np.abs(recall - 2 / 3))
    assert precision[mid] == pytest.approx(2 / 3)  # 2 tp, 1 fp halfway through the step
    assert precision[-1] == pytest.approx(0.5)
    assert np.all(np.diff(recall) >= 0)
    # untied scores: the curve's corners are sklearn's precision-recall points
    q = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    r, pr = pr_points(y, q)
    assert np.sum(np.diff(r) * pr[1:]) == pytest.approx(average_precision_score(y, q))


def test_operating_point_counts_p_at_or_above_the_threshold():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.2, 0.6, 0.6, 0.9])
    assert operating_point(y, p, 0.6) == (0.5, 1.0, pytest.approx(2 / 3))
    assert operating_point(y, p, 0.95)[2] is None  # no positive call: precision undefined
