"""The leaderboard of a results file: one row per model, as a pandas DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.results.io import read_results
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS
from cxrbench.stats import with_statistics


def leaderboard(results: dict[str, Any], split: str = "test") -> pd.DataFrame:
    """One row per model, best test ROC AUC first.

    ``results`` must carry ``summary`` and ``statistics`` (``cxrbench.stats.with_statistics``).
    Columns: ``model``, ``family``, ``n_seeds``, ``n_ok``; per metric the mean over seeds,
    ``<metric>_std`` (over seeds) and, on the test split, ``<metric>_low`` / ``<metric>_high``
    (95 % patient-bootstrap interval of the seed mean); the timings; ``n_params``; ``best``,
    ``delong_p``, ``delong_p_holm``, ``mcnemar_p``, ``mcnemar_p_holm`` and ``not_worse`` (not
    significantly worse than the best on ROC AUC) from ``statistics``. For each external set
    NAME that was scored: ``ext_NAME_roc_auc`` (with ``_low`` / ``_high``), ``ext_NAME_recall``
    and ``ext_NAME_specificity`` (seed means, at the validation thresholds).
    """
    if "summary" not in results or "statistics" not in results:
        raise ValueError("the results carry no summary and statistics: pass them through "
                         "cxrbench.stats.with_statistics(results) first")
    summary = results["summary"]
    statistics = results["statistics"] or {}
    rows = []
    for model, entry in summary.items():
        ok = [r for r in results["records"] if r["model"] == model and r["status"] == "ok"]
        any_record = next((r for r in results["records"] if r["model"] == model), {})
        row: dict[str, Any] = {"model": model, "family": any_record.get("family"),
                               "n_seeds": entry["n_seeds"], "n_ok": entry["n_ok"]}
        intervals = (statistics.get("models", {}).get(model, {}).get("test", {})
                     if split == "test" else {})
        for name in METRICS:
            stats = entry[split].get(name) or {}
            interval = intervals.get(name) or {}
            mean = stats.get("mean")
            row[name] = mean if mean is not None else interval.get("estimate")
            row[f"{name}_std"] = stats.get("std")
            if split == "test":
                row[f"{name}_low"] = interval.get("low")
                row[f"{name}_high"] = interval.get("high")
        for name in TIMING_DIRECTIONS:
            row[name] = entry["timing"][name]["mean"]
        params = [r["n_params"] for r in ok if r.get("n_params") is not None]
        row["n_params"] = int(np.mean(params)) if params else None
        comparison = statistics.get("comparisons", {}).get(model, {})
        row["best"] = statistics.get("best_model") == model
        for test in ("delong", "mcnemar"):
            row[f"{test}_p"] = comparison.get(test, {}).get("p")
            row[f"{test}_p_holm"] = comparison.get(test, {}).get("p_holm")
        row["not_worse"] = bool(row["best"] or comparison.get("not_worse", False))
        rows.append(row)
    _add_external_columns(rows, results)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("roc_auc", ascending=False, na_position="last").reset_index(drop=True)


def external_column(name: str, metric: str = "roc_auc") -> str:
    """The leaderboard column of an external set's metric: ``ext_<name>_<metric>``."""
    return f"ext_{name}_{metric}"


EXTERNAL_METRICS = ("roc_auc", "recall", "specificity")


def _add_external_columns(rows: list[dict[str, Any]], results: dict[str, Any]) -> None:
    """Per ok external set: ROC AUC (with its interval), sensitivity and specificity of the
    seed mean, from ``statistics.generalisation`` (None for a model not scored there)."""
    sets = ((results.get("statistics") or {}).get("generalisation") or {}).get("sets") or {}
    for name, entry in sorted((results.get("external") or {}).items()):
        if entry.get("status") != "ok":
            continue
        models = (sets.get(name) or {}).get("models") or {}
        for row in rows:
            scores = models.get(row["model"]) or {}
            for metric in EXTERNAL_METRICS:
                value = scores.get(metric) or {}
                row[external_column(name, metric)] = value.get("estimate")
                if metric == "roc_auc":
                    row[external_column(name, metric) + "_low"] = value.get("low")
                    row[external_column(name, metric) + "_high"] = value.get("high")


def load(path: str | Path) -> pd.DataFrame:
    """The leaderboard of a results file (test split), its statistics computed from its
    records."""
    return leaderboard(with_statistics(read_results(path)))
