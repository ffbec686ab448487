"""Helpers shared by several test files (fixtures are in conftest.py, the report's helpers in
report_helpers.py). A plain module: pytest puts tests/ on ``sys.path``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VOLATILE = ("started", "finished", "timing", "worker")  # differ between identical runs


def records_by_job(results: dict[str, Any] | Path, *,
                   drop_cache_facts: bool = False) -> dict[str, dict[str, Any]]:
    """Each record of a results file (or its parsed dict) by job id, without what differs
    between identical runs: dates, timings and the worker. With ``drop_cache_facts``, also the
    feature-cache statistics and the timings in ``fit_info`` (cache hits depend on what ran
    before, e.g. on another worker)."""
    if isinstance(results, Path):
        results = json.loads(results.read_text())
    out = {}
    for record in results["records"]:
        kept = {k: v for k, v in record.items() if k not in VOLATILE}
        if drop_cache_facts:
            kept["fit_info"] = {k: v for k, v in (record.get("fit_info") or {}).items()
                                if k != "features" and not k.endswith("_s")}
        out[record["job_id"]] = kept
    return out
