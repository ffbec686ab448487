"""Merge results files of one data set and split plan into one (``cxrbench merge``).

For a benchmark whose jobs ran in several places or at several times: classical models on a
laptop, deep ones on a GPU box, a seed rerun at a clean commit. The files must agree on what
makes scores comparable (data hash, split plan, threshold rule, the evaluated images);
anything else may differ. Rules are compared by meaning ("0.5" and "fixed:0.5" are one rule).
A later file's successful record replaces an earlier one with the same ``job_id``. Every kept
record gets an ``origin``: the file it came from and the git commit it ran at, so a merged file
never hides which code made which number. Summary and statistics of the merged file are
computed from its records.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from cxrbench.provenance import utc_now
from cxrbench.results.io import ResultsError, read_results
from cxrbench.scoring.thresholds import canonical_rule
from cxrbench.stats import with_statistics


class MergeError(ValueError):
    """The files cannot be merged: they were scored on different data or splits."""


def record_git(results: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The git commit a record ran at: its ``--resume`` session's, an earlier merge's, or the
    run's own."""
    for session in results["run"].get("resumed") or []:
        if record["job_id"] in (session.get("jobs") or []):
            return dict(session.get("git") or {})
    origin = record.get("origin") or (record.get("fit_info") or {}).get("source_run") or {}
    if "commit" in origin or "git_commit" in origin:
        return {"commit": origin.get("commit", origin.get("git_commit")),
                "dirty": origin.get("dirty", origin.get("git_dirty"))}
    git = results["provenance"].get("git") or {}
    return {"commit": git.get("commit"), "dirty": git.get("dirty")}


def _rule(results: dict[str, Any]) -> str | None:
    """The run's threshold rule, canonical (validated files hold a parseable rule or none)."""
    rule = results["run"].get("threshold_rule")
    return canonical_rule(rule) if rule is not None else None


def _key(results: dict[str, Any]) -> dict[str, Any]:
    evaluation = results.get("evaluation") or {}
    return {
        "data hash": (results["provenance"].get("data") or {}).get("data_hash"),
        "split plan": results["split"].get("sha256"),
        "threshold rule": _rule(results),
        "evaluated images": [(evaluation.get(s) or {}).get("ids") for s in ("val", "test")],
    }


def merge_results(parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One results dict from ``(name, results)`` pairs, in order (later records win)."""
    if len(parts) < 2:
        raise MergeError("give at least two results files to merge")
    first_name, first = parts[0]
    reference = _key(first)
    for name, results in parts[1:]:
        for what, value in _key(results).items():
            if value != reference[what]:
                raise MergeError(f"{name} and {first_name} differ in their {what}: their "
                                 "scores are not comparable, so they cannot be merged")

    kept: dict[str, dict[str, Any]] = {}
    sources = []
    for name, results in parts:
        git = results["provenance"].get("git") or {}
        sources.append({"file": name, "git_commit": git.get("commit"), "dirty": git.get("dirty"),
                        "started": results["run"].get("started"),
                        "cpu_model": results["provenance"].get("cpu_model"),
                        "command": results["run"].get("command")})
        for record in results["records"]:
            previous = kept.get(record["job_id"])
            if previous is not None and previous["status"] == "ok" and record["status"] != "ok":
                continue  # a later failure does not erase an earlier success
            record = copy.deepcopy(record)
            record["origin"] = {"file": name, **record_git(results, record)}
            if record.get("threshold_rule") is not None:
                record["threshold_rule"] = canonical_rule(record["threshold_rule"])
            kept[record["job_id"]] = record
    for source in sources:  # the jobs each file still contributes after replacement
        source["jobs"] = [j for j, r in kept.items() if r["origin"]["file"] == source["file"]]

    merged = copy.deepcopy(parts[-1][1])
    records = list(kept.values())
    commits = {(r["origin"].get("commit"), r["origin"].get("dirty")) for r in records}
    merged["records"] = records
    merged["provenance"]["git"] = {
        "commit": None, "dirty": any(dirty for _, dirty in commits),
        "error": f"merged from {len(parts)} files; each record's origin names its commit",
    }
    runs = [results["run"] for _, results in parts]
    merged["run"] = {
        "models": sorted({r["model"] for r in records}),
        "seeds": sorted({r["seed"] for r in records}),
        "threshold_rule": _rule(parts[0][1]),
        "suite": "merged",
        "executor": "merged",
        "status": "complete" if all(r.get("status") == "complete" for r in runs) else "interrupted",
        "started": min((r.get("started") or "") for r in runs) or None,
        "finished": max((r.get("finished") or "") for r in runs) or None,
        "merged": utc_now(),
        "note": (f"Merged by `cxrbench merge` from {len(parts)} results files with the same data "
                 f"hash and split plan; {len(records)} records from {len(commits)} "
                 "commit(s). run.sources lists the files; each record's origin its commit."),
        "sources": [s for s in sources if s["jobs"]],
    }
    return with_statistics(merged)


def merge_files(paths: list[str | Path]) -> dict[str, Any]:
    """Read, check and merge results files (see :func:`merge_results`)."""
    parts = []
    for path in paths:
        try:
            parts.append((str(path), read_results(path)))
        except ResultsError as err:
            raise MergeError(str(err)) from err
    return merge_results(parts)
