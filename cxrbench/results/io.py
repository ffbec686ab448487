"""The results file: a versioned JSON schema, atomic writes, validation on load.

Layout (``schema_version`` 1): ``tool``, ``run``, ``provenance``, ``split``, ``evaluation``
(ids, labels and patient groups of the val and test images every record was scored on),
``records`` (one per plugin x params x seed, written as each finishes), ``summary`` (per model:
mean, std, min and max over seeds), ``statistics`` (bootstrap intervals, DeLong and McNemar
comparisons with the best model, calibration: see ``cxrbench.stats``). The README documents
every field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.files import atomic_write_text
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS

SCHEMA_VERSION = 1
REQUIRED_TOP_LEVEL = ("schema_version", "run", "provenance", "split", "records")
REQUIRED_RECORD = ("job_id", "model", "seed", "status")
RECORD_STATUSES = ("ok", "error", "timeout")


class ResultsError(ValueError):
    """A results file is missing, truncated, hand-edited into an invalid state, or too new."""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: undefined metrics are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(_nan_to_none(results), indent=1, default=_json_default, allow_nan=False)


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    from cxrbench.stats import compute_statistics  # scipy: imported only when writing

    results["summary"] = summarize(results.get("records", []))
    results["statistics"] = compute_statistics(results)
    return atomic_write_text(Path(path), dumps(results))


def read_results(path: str | Path) -> dict[str, Any]:
    """Parse and validate a results file; every problem is named, never a bare KeyError."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"{path} is not valid JSON (truncated or hand-edited?): {err}. "
            "Restore it from a copy, or start the run again with --overwrite."
        ) from err
    validate_results(data, source=str(path))
    return data


def validate_results(data: Any, *, source: str = "results") -> None:
    if not isinstance(data, dict):
        raise ResultsError(f"{source}: top level must be a JSON object")
    missing = [key for key in REQUIRED_TOP_LEVEL if key not in data]
    if missing:
        raise ResultsError(f"{source}: missing required field(s) {missing}")
    version = data["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: schema_version {version!r} is not supported by this cxrbench "
            f"(reads up to {SCHEMA_VERSION}); upgrade cxrbench"
        )
    if not isinstance(data["records"], list):
        raise ResultsError(f"{source}: 'records' must be a list")
    for i, record in enumerate(data["records"]):
        if not isinstance(record, dict):
            raise ResultsError(f"{source}: record {i} is not an object")
        missing = [key for key in REQUIRED_RECORD if key not in record]
        if missing:
            raise ResultsError(f"{source}: record {i} is missing field(s) {missing}")
        if record["status"] not in RECORD_STATUSES:
            raise ResultsError(
                f"{source}: record {i} ({record['job_id']}) has status {record['status']!r}; "
                f"expected one of {RECORD_STATUSES}"
            )
        if record["status"] == "ok" and "test" not in (record.get("metrics") or {}):
            raise ResultsError(f"{source}: record {i} ({record['job_id']}) has no test metrics")


def _stats(values: list[float]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    arr = np.asarray(finite, dtype=float)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": len(arr),
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: mean, std (ddof=1), min and max over its successful seeds."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_model.setdefault(record["model"], []).append(record)
    summary: dict[str, Any] = {}
    for model, recs in by_model.items():
        ok = [r for r in recs if r["status"] == "ok"]
        entry: dict[str, Any] = {"n_seeds": len(recs), "n_ok": len(ok)}
        for split in ("val", "test"):
            entry[split] = {
                name: _stats([r["metrics"][split].get(name) for r in ok]) for name in METRICS
            }
        entry["timing"] = {
            name: _stats([r.get("timing", {}).get(name) for r in ok]) for name in TIMING_DIRECTIONS
        }
        summary[model] = entry
    return summary


def leaderboard(results: dict[str, Any], split: str = "test") -> pd.DataFrame:
    """One row per model, best test ROC AUC first.

    Columns: ``model``, ``family``, ``n_seeds``, ``n_ok``; per metric the mean over seeds,
    ``<metric>_std`` (over seeds) and, on the test split, ``<metric>_low`` / ``<metric>_high``
    (95 % patient-bootstrap interval of the seed mean); the timings; ``n_params``; ``best``,
    ``delong_p``, ``delong_p_holm``, ``mcnemar_p``, ``mcnemar_p_holm`` and ``not_worse`` (not
    significantly worse than the best on ROC AUC) from ``statistics``.
    """
    summary = results.get("summary") or summarize(results["records"])
    statistics = results.get("statistics")
    if statistics is None and split == "test":
        from cxrbench.stats import compute_statistics

        statistics = compute_statistics(results)
    statistics = statistics or {}
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
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("roc_auc", ascending=False, na_position="last").reset_index(drop=True)


def load(path: str | Path) -> pd.DataFrame:
    """The leaderboard of a results file as a pandas DataFrame (test split)."""
    return leaderboard(read_results(path))
