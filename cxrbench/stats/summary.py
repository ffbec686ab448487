"""The derived sections of a results file, computed from its records: ``summary``,
``statistics`` and ``small_data`` (``cxrbench.stats.small_data``).

``with_statistics(results)`` is the one place they are computed. It is called once per change
that needs them: when a run ends or is interrupted (the harness), and when ``report``,
``merge`` or ``compare`` read a file (they recompute rather than trust stored sections, which
a hand edit may have left stale). Writing a record computes nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS
from cxrbench.stats.compute import compute_statistics
from cxrbench.stats.generalisation import generalisation_statistics
from cxrbench.stats.small_data import small_data


def _spread(values: list[Any]) -> dict[str, float | int | None]:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
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
    """Per model: ``n_seeds``, ``n_ok``, and for each val/test metric and each timing the
    mean, std (ddof=1), min, max and count over its successful seeds (NaN/null left out)."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_model.setdefault(record["model"], []).append(record)
    summary: dict[str, Any] = {}
    for model, recs in by_model.items():
        ok = [r for r in recs if r["status"] == "ok"]
        entry: dict[str, Any] = {"n_seeds": len(recs), "n_ok": len(ok)}
        for split in ("val", "test"):
            entry[split] = {
                name: _spread([r["metrics"][split].get(name) for r in ok]) for name in METRICS
            }
        entry["timing"] = {
            name: _spread([(r.get("timing") or {}).get(name) for r in ok])
            for name in TIMING_DIRECTIONS
        }
        summary[model] = entry
    return summary


def with_statistics(results: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A shallow copy of ``results`` with ``summary``, ``statistics`` and ``small_data``
    computed afresh from its records (``options`` go to :func:`compute_statistics`:
    n_resamples, seed, level).

    ``statistics.generalisation`` (every set, subgroups, drops, rankings) is computed when the
    results hold external sets; the report computes it for a run without them.
    """
    statistics = compute_statistics(results, **options)
    if results.get("external"):  # the external sets' intervals, drops and rankings
        statistics["generalisation"] = generalisation_statistics(results, **options)
    return {**results, "summary": summarize(results.get("records") or []),
            "statistics": statistics, "small_data": small_data(results, statistics)}
