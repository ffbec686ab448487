import numpy as np
import pytest

from cxrbench.scoring.metrics import METRICS, compute_metrics, higher_is_better
from cxrbench.scoring.thresholds import ThresholdRule, canonical_rule, choose_threshold


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
        ThresholdRule.parse("median")


@pytest.mark.parametrize(("spelled", "canonical"), [
    ("0.5", "fixed:0.5"), ("fixed:0.5", "fixed:0.5"), (".5", "fixed:0.5"),
    ("fixed:0.50", "fixed:0.5"), ("1", "fixed:1"), ("0", "fixed:0"), (" Youden ", "youden"),
    ("sensitivity:0.95", "sensitivity:0.95"), ("sensitivity:.950", "sensitivity:0.95"),
])
def test_a_rule_has_one_canonical_spelling(spelled, canonical):
    rule = ThresholdRule.parse(spelled)
    assert str(rule) == canonical_rule(spelled) == canonical
    assert ThresholdRule.parse(str(rule)) == rule  # the canonical string round-trips


@pytest.mark.parametrize(("text", "message"), [
    ("fixed:1.5", r"must lie in \[0, 1\]"), ("sensitivity:0", r"must lie in \(0, 1\]"),
    ("fixed:nan", "finite"), ("sensitivity:", "unknown threshold rule"),
    ("youden:0.5", "unknown threshold rule"), ("-0.1", r"must lie in \[0, 1\]"),
])
def test_bad_rules_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        ThresholdRule.parse(text)
