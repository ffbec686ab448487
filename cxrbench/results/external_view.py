"""An external set seen as one more split of a results file (for ``compare`` and ``merge``).

``with_external_split(results, NAME)`` copies the file's records with the external set's
scores filed under the split ``external:NAME`` (metrics, predictions) and its images under
``evaluation["external:NAME"]``, so code written for ``val`` and ``test`` (the regression
check, its paired bootstrap) runs on it unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

PREFIX = "external:"


def external_name(split: str) -> str | None:
    """``"external:covid"`` -> ``"covid"``; None for the run's own splits."""
    return split[len(PREFIX):] if split.startswith(PREFIX) else None


def scored_sets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ok external entries of a results file, by name."""
    return {name: entry for name, entry in (results.get("external") or {}).items()
            if entry.get("status") == "ok"}


def with_external_split(results: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of ``results`` with external set ``name`` as the split ``external:NAME``.

    Raises KeyError when the file has no ok entry of that name.
    """
    entry = scored_sets(results).get(name)
    if entry is None:
        raise KeyError(name)
    split = PREFIX + name
    out = {**results, "records": [], "evaluation": {**(results.get("evaluation") or {})}}
    out["evaluation"][split] = {key: entry.get(key) for key in ("ids", "labels", "groups")}
    scores = entry.get("records") or {}
    for record in results["records"]:
        record = copy.copy(record)
        scored = scores.get(record["job_id"]) or {}
        if record.get("status") == "ok" and scored.get("status") == "ok":
            record["metrics"] = {**record.get("metrics", {}), split: scored["metrics"]}
            record["predictions"] = {**(record.get("predictions") or {}),
                                     split: scored["predictions"]}
        out["records"].append(record)
    return out
