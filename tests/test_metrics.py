import numpy as np
import pytest

from cxrbench.scoring.metrics import METRICS, compute_metrics, higher_is_better
from cxrbench.scoring.thresholds import choose_threshold, parse_rule


def test_metrics_at_threshold_match_hand_counts():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4])
    m = compute_metrics(y, p, 0.5)
    # tp=3 (0.9, 0.8, 0.7), fn=1 (0.3), fp=1 (0.6), tn=3
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx(3 / 4)
    # positive 0.3 outranks only negatives 0.2 and 0.1: 14 of 16 pairs ordered
    assert m["roc_auc"] == pytest.approx(14 / 16)


def test_auc_undefined_on_one_class_is_nan():
    m = compute_metrics(np.ones(4, int), np.linspace(0, 1, 4), 0.5)
    assert np.isnan(m["roc_auc"]) and np.isnan(m["pr_auc"])


def test_directions_declared_once():
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"brier", "ece"}
    assert all(higher_is_better(name) for name in METRICS if name not in lower)
    assert not higher_is_better("brier") and not higher_is_better("ece")
    assert not higher_is_better("fit_s")
    with pytest.raises(KeyError):
        higher_is_better("bogus")


def test_threshold_rules():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9])
    assert choose_threshold("0.5", y, p) == 0.5
    assert choose_threshold("fixed:0.3", y, p) == 0.3
    # Youden: 0.7 gives tpr .75/fpr 0, 0.6 gives tpr 1/fpr .25: both J = .75; first max wins
    t = choose_threshold("youden", y, p)
    assert t in (0.6, 0.7)
    t95 = choose_threshold("sensitivity:0.95", y, p)
    assert np.mean(p[y == 1] >= t95) >= 0.95
    assert t95 == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unknown threshold rule"):
        parse_rule("median")
