"""Sentences computed from the run: the "how to read this" paragraph, the headline's ties and
the comparison verdicts, so that the report's significance signals never contradict each other.
"""

from __future__ import annotations

import math
import statistics as pystats
from typing import Any

# Metrics on which a model tied with the best on AUC may still be ahead of it.
TIE_BREAKERS = (("accuracy", "accuracy", True), ("specificity", "specificity", True),
                ("recall", "sensitivity", True), ("f1", "F1", True), ("brier", "Brier", False))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def verdict(comparison: dict[str, Any]) -> dict[str, str]:
    """One verdict per comparison that agrees with both the adjusted p and the interval."""
    diff = comparison.get("auc_diff") or {}
    low, high = diff.get("low"), diff.get("high")
    excludes_zero = _finite(low) and _finite(high) and (high < 0 or low > 0)
    if not comparison.get("not_worse"):
        return {"key": "worse", "text": "worse on AUC (Holm-adjusted p < 0.05)"}
    if excludes_zero:
        return {"key": "unadjusted", "text": "no difference after Holm adjustment; the "
                "unadjusted 95 % interval alone excludes 0"}
    return {"key": "tied", "text": "no significant difference"}


def headline_ties(rows: list[dict[str, Any]], best: dict[str, Any]) -> list[dict[str, Any]]:
    """Models tied with the best on AUC, with the metrics on which each is ahead of it."""
    ties = []
    for row in rows:
        if row["model"] == best["model"] or not row.get("not_worse") or not row.get("n_ok"):
            continue
        ahead = []
        for key, label, higher in TIE_BREAKERS:
            mine, theirs = row.get(key), best.get(key)
            if _finite(mine) and _finite(theirs) and (mine > theirs if higher else mine < theirs):
                ahead.append({"label": label, "value": mine, "best": theirs})
        delta = (row["roc_auc"] - best["roc_auc"]
                 if _finite(row.get("roc_auc")) and _finite(best.get("roc_auc")) else None)
        ties.append({"model": row["model"], "delta_auc": delta, "ahead": ahead,
                     "p_holm": row.get("delong_p_holm")})
    return ties


def _val_metric(results: dict[str, Any], model: str, key: str) -> float | None:
    values = [r["metrics"]["val"].get(key) for r in results.get("records", [])
              if r["model"] == model and r["status"] == "ok"
              and _finite((r.get("metrics") or {}).get("val", {}).get(key))]
    return float(pystats.fmean(values)) if values else None


def threshold_shift(val: float | None, test: float | None, low: float | None,
                    high: float | None) -> dict[str, Any]:
    """One metric at the validation threshold on validation and test: it "shifts" (``outside``)
    when the validation value lies outside the 95 % interval ``[low, high]`` of the test value.
    The rule of the report's reading paragraph and of every model card."""
    return {"val": val, "test": test,
            "outside": (_finite(val) and _finite(low) and _finite(high)
                        and not low <= val <= high)}


def threshold_transfer(results: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the validation threshold carry over to test? Per model, validation vs test
    sensitivity and specificity at the chosen threshold; a model "shifts" when its validation
    value lies outside the 95 % interval of its test value."""
    models = []
    for row in rows:
        if not row.get("n_ok"):
            continue
        entry = {"model": row["model"]}
        for key in ("specificity", "recall"):
            entry[key] = threshold_shift(_val_metric(results, row["model"], key), row.get(key),
                                         row.get(f"{key}_low"), row.get(f"{key}_high"))
        models.append(entry)
    spec_drop = [m for m in models if m["specificity"]["outside"]
                 and m["specificity"]["val"] > m["specificity"]["test"]]

    def median(group: list[dict[str, Any]], key: str, split: str) -> float | None:
        values = [m[key][split] for m in group if _finite(m[key][split])]
        return float(pystats.median(values)) if values else None

    return {"models": models, "n": len(models), "spec_drop": [m["model"] for m in spec_drop],
            "val_spec": median(spec_drop, "specificity", "val"),
            "test_spec": median(spec_drop, "specificity", "test"),
            "val_sens": median(spec_drop, "recall", "val"),
            "test_sens": median(spec_drop, "recall", "test")}


def split_prevalence(results: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for split in ("val", "test"):
        labels = ((results.get("evaluation") or {}).get(split) or {}).get("labels") or []
        out[split] = sum(labels) / len(labels) if labels else None
    return out
