"""The data embedded in the report for its scripts: every record's validation and test
probabilities (full precision, so the operating-point explorer counts exactly what Python
counts), the images' ids, labels and patients, the leaderboard CSV and enlarged images.

It is one ``<script type="application/json">`` block: data, never code. ``<``, ``>`` and ``&``
are written as JSON escapes, so no user-supplied string can close the block.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from cxrbench.scoring.thresholds import choose_threshold

SENSITIVITY_TARGETS = (0.90, 0.95)


def _probabilities(values: list | None) -> list[float | None] | None:
    if values is None:
        return None
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def sensitivity_marks(y_val: list[int], p_val: list[float | None]) -> dict[str, float | None]:
    """The highest validation thresholds that reach each clinical sensitivity target (the
    ``sensitivity:X`` rule, so the marks agree with what a run with that rule would pick)."""
    y = np.asarray(y_val, dtype=int)
    p = np.asarray([np.nan if v is None else v for v in p_val], dtype=np.float64)
    keep = np.isfinite(p)
    out: dict[str, float | None] = {}
    for target in SENSITIVITY_TARGETS:
        try:
            out[f"{target:.2f}"] = choose_threshold(f"sensitivity:{target}", y[keep], p[keep])
        except ValueError:  # one class only
            out[f"{target:.2f}"] = None
    return out


def report_payload(results: dict[str, Any], order: list[str], representatives: dict[str, Any],
                   leaderboard_csv: str, images: dict[str, str]) -> dict[str, Any]:
    """Everything the report's scripts read, in leaderboard order (failures have no data)."""
    evaluation = results.get("evaluation") or {}
    splits = {split: {key: (evaluation.get(split) or {}).get(key) or []
                      for key in ("ids", "labels", "groups")} for split in ("val", "test")}
    rank = {m: i for i, m in enumerate(order)}
    representative_jobs = {r["job_id"] for r in representatives.values()}
    records = []
    for record in results.get("records", []):
        predictions = record.get("predictions") or {}
        if record["status"] != "ok" or predictions.get("test") is None:
            continue
        val = _probabilities(predictions.get("val"))
        test = _probabilities(predictions.get("test"))
        marks = (sensitivity_marks(splits["val"]["labels"], val)
                 if val is not None and len(val) == len(splits["val"]["labels"]) else {})
        records.append({"job": record["job_id"], "model": record["model"],
                        "seed": record.get("seed"), "threshold": record.get("threshold"),
                        "rule": record.get("threshold_rule"),
                        "representative": record["job_id"] in representative_jobs,
                        "val": val, "test": test, "marks": marks})
    records.sort(key=lambda r: (rank.get(r["model"], 1e9), r["seed"] or 0))
    return {"splits": splits, "records": records, "leaderboardCsv": leaderboard_csv,
            "synthetic": bool(((results.get("provenance") or {}).get("data") or {})
                              .get("synthetic")),
            "targets": list(SENSITIVITY_TARGETS), "images": images}


def embed_json(payload: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
