"""Everything the report templates show, computed from a results dict (no rendering here)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrbench.results.leaderboard import leaderboard
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS, higher_is_better

# Leaderboard columns after the model name: (key, label, digits, shows an interval).
LEADERBOARD_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc",
                       "pr_auc", "brier", "ece")
TIMING_COLUMNS = {
    "fit_s": ("Fit time (s)", 2),
    "predict_ms_per_image": ("Predict (ms / image)", 3),
    "peak_rss_mb": ("Peak memory (MB)", 0),
}
HEADLINE_METRICS = ("roc_auc", "accuracy", "recall", "specificity", "f1", "pr_auc", "brier")
SEED_METRICS = ("roc_auc", "accuracy", "recall", "specificity", "f1", "pr_auc", "brier")
OPERATING_METRICS = tuple(n for n, m in METRICS.items() if m.group == "operating_point")
METRIC_LABELS = {name: m.label for name, m in METRICS.items()} | {
    "recall": "Sensitivity (recall)"}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def leaderboard_columns() -> list[dict[str, Any]]:
    """Column specs: key, label, number of digits, direction (for sorting), interval."""
    columns = [{"key": name, "label": METRIC_LABELS[name], "digits": 3,
                "hib": higher_is_better(name), "interval": True}
               for name in LEADERBOARD_METRICS]
    columns += [{"key": key, "label": label, "digits": digits,
                 "hib": TIMING_DIRECTIONS[key], "interval": False}
                for key, (label, digits) in TIMING_COLUMNS.items()]
    columns.append({"key": "n_params", "label": "Parameters", "digits": 0, "hib": False,
                    "interval": False})
    columns.append({"key": "delong_p_holm", "label": "AUC vs best: p (Holm)", "digits": 3,
                    "hib": True, "interval": False})
    return columns


def _ok_records(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["job_id"]: r for r in results["records"] if r["status"] == "ok"}


def representatives(results: dict[str, Any], models: list[str]) -> dict[str, dict[str, Any]]:
    """The record drawn for each model in figures: its median-AUC seed (see cxrbench.stats)."""
    records = _ok_records(results)
    stats_models = (results.get("statistics") or {}).get("models", {})
    out = {}
    for model in models:
        job = stats_models.get(model, {}).get("representative")
        record = records.get(job) if job else None
        if record is None:
            record = next((r for r in records.values() if r["model"] == model), None)
        if record is not None:
            out[model] = record
    return out


def _test_arrays(results: dict[str, Any], record: dict[str, Any]) -> tuple | None:
    test = (results.get("evaluation") or {}).get("test") or {}
    labels = test.get("labels") or []
    p = (record.get("predictions") or {}).get("test")
    if not labels or p is None or len(p) != len(labels):
        return None
    threshold = record.get("threshold")
    return (np.asarray(labels, dtype=int), np.asarray(p, dtype=float),
            0.5 if threshold is None else float(threshold))


def comparison_rows(statistics: dict[str, Any], order: list[str]) -> list[dict[str, Any]]:
    comparisons = statistics.get("comparisons") or {}
    rows = []
    for model in order:
        c = comparisons.get(model)
        if c is None:
            continue
        diff = c["bootstrap_difference"]
        rows.append({
            "model": model, "delong": c["delong"], "mcnemar": c["mcnemar"],
            "auc_diff": diff.get("roc_auc", {}), "acc_diff": diff.get("accuracy", {}),
            "not_worse": c["not_worse"],
            "n_pairs": len(c["mcnemar"].get("pairs", [])),
        })
    return rows


def seed_rows(results: dict[str, Any], order: list[str]) -> list[dict[str, Any]]:
    """Mean, std and min-max over seeds, for models with more than one successful seed."""
    summary = results.get("summary") or {}
    rows = []
    for model in order:
        entry = summary.get(model)
        if not entry or entry.get("n_ok", 0) < 2:
            continue
        rows.append({"model": model, "n_ok": entry["n_ok"],
                     "metrics": {name: entry["test"].get(name) or {} for name in SEED_METRICS}})
    return rows


def record_rows(results: dict[str, Any], order: list[str]) -> list[dict[str, Any]]:
    """Per-record (per-seed) test intervals, in leaderboard order."""
    stats_records = (results.get("statistics") or {}).get("records", {})
    rank = {m: i for i, m in enumerate(order)}
    rows = []
    for job, record in _ok_records(results).items():
        stats = stats_records.get(job, {}).get("test", {})
        rows.append({"job_id": job, "model": record["model"], "seed": record.get("seed"),
                     "threshold": record.get("threshold"),
                     "fit_s": (record.get("timing") or {}).get("fit_s"),
                     "metrics": {n: stats.get(n, {}) for n in ("roc_auc", "accuracy", "recall",
                                                              "specificity", "brier")}})
    return sorted(rows, key=lambda r: (rank.get(r["model"], 1e9), r["seed"] or 0))


def weights_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for record in results["records"]:
        info = record.get("fit_info") or {}
        if "weights_sha256" in info or "weights_source" in info:
            rows.append({"job_id": record["job_id"], "weights": info.get("weights"),
                         "source": info.get("weights_source"), "file": info.get("weights_file"),
                         "sha256": info.get("weights_sha256")})
    return rows


def headline(rows: list[dict[str, Any]], statistics: dict[str, Any]) -> dict[str, Any] | None:
    ok_rows = [r for r in rows if r.get("n_ok")]
    best = statistics.get("best_model")
    row = next((r for r in ok_rows if r["model"] == best), ok_rows[0] if ok_rows else None)
    if row is None:
        return None
    metrics = [{"key": k, "label": METRIC_LABELS[k], "value": row.get(k),
                "low": row.get(f"{k}_low"), "high": row.get(f"{k}_high"),
                "hib": higher_is_better(k)} for k in HEADLINE_METRICS]
    tied = [r["model"] for r in ok_rows if r["model"] != row["model"] and r.get("not_worse")]
    return {"row": row, "metrics": metrics, "tied": tied}


def evaluation_summary(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for split in ("val", "test"):
        section = (results.get("evaluation") or {}).get(split) or {}
        labels = section.get("labels") or []
        out[split] = {"images": len(labels), "pneumonia": int(sum(labels)),
                      "patients": len(set(section.get("groups") or []))}
    return out


def run_progress(results: dict[str, Any]) -> dict[str, Any]:
    run = results.get("run") or {}
    expected = len(run.get("models") or []) * len(run.get("seeds") or [])
    return {"status": run.get("status", "unknown"), "done": len(results["records"]),
            "expected": expected or None}


def figure_inputs(results: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Data for the figures: curves, confusions, thresholds, reliability bins, histories."""
    reps = representatives(results, order)
    stats_records = (results.get("statistics") or {}).get("records", {})
    curves, confusions, thresholds, bins, histories, best_epochs = {}, {}, {}, {}, {}, {}
    for model, record in reps.items():
        arrays = _test_arrays(results, record)
        thresholds[model] = record.get("threshold")
        if arrays is not None:
            curves[model] = arrays
        confusion = (record.get("confusion") or {}).get("test")
        if confusion:
            confusions[model] = confusion
        if stats_records.get(record["job_id"], {}).get("reliability"):
            bins[model] = stats_records[record["job_id"]]["reliability"]
        info = record.get("fit_info") or {}
        if info.get("history"):
            histories[model] = info["history"]
            best_epochs[model] = info.get("best_epoch")
    return {"representatives": reps, "curves": curves, "confusions": confusions,
            "thresholds": thresholds, "bins": bins, "histories": histories,
            "best_epochs": best_epochs}


def gallery_picks(results: dict[str, Any], order: list[str], reps: dict[str, Any],
                  top: int) -> list[dict[str, Any]]:
    picks = []
    for model in order:
        record = reps.get(model)
        arrays = _test_arrays(results, record) if record else None
        if arrays is None:
            continue
        y, p, threshold = arrays
        preprocessing = (record.get("fit_info") or {}).get("preprocessing") or {}
        picks.append({"model": model, "job_id": record["job_id"], "y": y, "p": p,
                      "threshold": threshold, "n_errors": int(np.sum((p >= threshold) != y)),
                      "thorax_crop": bool(preprocessing.get("thorax_crop"))})
        if len(picks) == top:
            break
    return picks


def leaderboard_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    board = leaderboard(results)
    if board.empty:
        return []
    rows = board.to_dict("records")
    for row in rows:  # pandas turns missing values into NaN; templates want None
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
    return rows


def curve_rows(results: dict[str, Any], inputs: dict[str, Any], rows: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """The table behind the ROC and PR figures: per model, its drawn record, the areas with
    their intervals and the operating point at its threshold."""
    from cxrbench.report.curves import operating_point

    by_model = {r["model"]: r for r in rows}
    out = []
    for model, (y, p, threshold) in inputs["curves"].items():
        fpr, sens, precision = operating_point(y, p, threshold)
        row = by_model.get(model, {})
        out.append({"model": model, "job_id": inputs["representatives"][model]["job_id"],
                    "roc_auc": row.get("roc_auc"), "roc_auc_low": row.get("roc_auc_low"),
                    "roc_auc_high": row.get("roc_auc_high"), "pr_auc": row.get("pr_auc"),
                    "pr_auc_low": row.get("pr_auc_low"), "pr_auc_high": row.get("pr_auc_high"),
                    "threshold": threshold, "fpr": fpr, "sensitivity": sens,
                    "precision": precision})
    return out
