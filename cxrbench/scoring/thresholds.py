"""Decision-threshold rules, applied to validation predictions only (never test).

A rule is parsed once into a ``ThresholdRule`` whose ``str()`` is its one canonical spelling:
``"fixed:0.5"``, ``"youden"`` or ``"sensitivity:0.95"``. ``"0.5"`` (a bare number) is read as
``"fixed:0.5"``, so results files written with either spelling name the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

RuleKind = Literal["fixed", "youden", "sensitivity"]
RULE_HELP = "'0.5' or 'fixed:0.5' (a fixed threshold), 'youden' or 'sensitivity:0.95'"


@dataclass(frozen=True)
class ThresholdRule:
    """How the decision threshold is chosen on validation data.

    ``fixed``: the threshold itself (in [0, 1]); ``youden``: maximum of sensitivity +
    specificity - 1; ``sensitivity``: the highest threshold whose validation sensitivity
    reaches the target (in (0, 1]), i.e. the fewest false positives at that sensitivity.
    """

    kind: RuleKind
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "youden":
            if self.value is not None:
                raise ValueError("the youden rule takes no value")
            return
        if self.kind not in ("fixed", "sensitivity"):
            raise ValueError(f"unknown threshold rule kind {self.kind!r}; use {RULE_HELP}")
        value = self.value
        if value is None or not math.isfinite(value):
            raise ValueError(f"the {self.kind} rule needs a finite value, got {value!r}")
        low_ok = value >= 0 if self.kind == "fixed" else value > 0
        if not (low_ok and value <= 1):
            bounds = "[0, 1]" if self.kind == "fixed" else "(0, 1]"
            raise ValueError(f"the {self.kind} rule's value must lie in {bounds}, got {value:g}")
        object.__setattr__(self, "value", float(value))

    @classmethod
    def parse(cls, text: str | ThresholdRule) -> ThresholdRule:
        """``"0.5"`` / ``"fixed:0.5"``, ``"youden"``, ``"sensitivity:0.95"`` -> a rule."""
        if isinstance(text, ThresholdRule):
            return text
        if not isinstance(text, str):
            raise ValueError(f"a threshold rule is a string ({RULE_HELP}), got {text!r}")
        spelled = text.strip().lower()
        if spelled == "youden":
            return cls("youden")
        kind, sep, number = spelled.rpartition(":")
        kind = kind if sep else "fixed"
        try:
            value = float(number)
        except ValueError:
            value = None
        if kind not in ("fixed", "sensitivity") or value is None:
            raise ValueError(f"unknown threshold rule {text!r}; use {RULE_HELP}")
        try:
            return cls(kind, value)  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(f"threshold rule {text!r}: {err}") from None

    def __str__(self) -> str:
        if self.value is None:
            return self.kind
        return f"{self.kind}:{np.format_float_positional(self.value, trim='-')}"

    def choose(self, y_val: np.ndarray, p_val: np.ndarray) -> float:
        """The decision threshold this rule picks on validation labels and probabilities."""
        if self.kind == "fixed":
            assert self.value is not None
            return self.value
        from sklearn.metrics import roc_curve  # scikit-learn only when a threshold is chosen

        y_val = np.asarray(y_val).astype(int)
        p_val = np.asarray(p_val, dtype=np.float64)
        if len(np.unique(y_val)) < 2:
            raise ValueError(f"threshold rule {self} needs both classes in the validation split")
        fpr, tpr, thresholds = roc_curve(y_val, p_val, drop_intermediate=False)
        finite = np.isfinite(thresholds)
        fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
        if self.kind == "youden":
            return float(thresholds[int(np.argmax(tpr - fpr))])
        assert self.value is not None
        # Highest threshold that still reaches the target sensitivity (fewest false positives).
        reaching = np.flatnonzero(tpr >= self.value - 1e-12)
        return float(thresholds[reaching[0]])


DEFAULT_THRESHOLD_RULE = ThresholdRule("youden")


def canonical_rule(text: str | ThresholdRule) -> str:
    """The canonical spelling of a rule (``"0.5"`` -> ``"fixed:0.5"``); raises ValueError."""
    return str(ThresholdRule.parse(text))


def choose_threshold(rule: str | ThresholdRule, y_val: np.ndarray, p_val: np.ndarray) -> float:
    """The decision threshold ``rule`` picks on validation labels and probabilities."""
    return ThresholdRule.parse(rule).choose(y_val, p_val)
