"""Decision-threshold rules, applied to validation predictions only (never test)."""

from __future__ import annotations

import re

import numpy as np
from sklearn.metrics import roc_curve

DEFAULT_RULE = "youden"


def parse_rule(rule: str) -> tuple[str, float | None]:
    """``"0.5"`` / ``"fixed:0.5"``, ``"youden"``, ``"sensitivity:0.95"`` -> (kind, value)."""
    rule = rule.strip().lower()
    if rule == "youden":
        return "youden", None
    match = re.fullmatch(r"(?:fixed:)?(0?\.\d+|1(?:\.0*)?|0)", rule)
    if match:
        return "fixed", float(match.group(1))
    match = re.fullmatch(r"sensitivity:(0?\.\d+|1(?:\.0*)?)", rule)
    if match:
        return "sensitivity", float(match.group(1))
    raise ValueError(
        f"unknown threshold rule {rule!r}; use '0.5' (fixed), 'youden' or 'sensitivity:0.95'"
    )


def choose_threshold(rule: str, y_val: np.ndarray, p_val: np.ndarray) -> float:
    """The decision threshold the rule picks on validation labels and probabilities."""
    kind, value = parse_rule(rule)
    if kind == "fixed":
        assert value is not None
        return value
    y_val = np.asarray(y_val).astype(int)
    p_val = np.asarray(p_val, dtype=np.float64)
    if len(np.unique(y_val)) < 2:
        raise ValueError(f"threshold rule {rule!r} needs both classes in the validation split")
    fpr, tpr, thresholds = roc_curve(y_val, p_val, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if kind == "youden":
        best = int(np.argmax(tpr - fpr))
        return float(thresholds[best])
    assert value is not None
    # Highest threshold that still reaches the target sensitivity (fewest false positives).
    reaching = np.flatnonzero(tpr >= value - 1e-12)
    return float(thresholds[reaching[0]])
