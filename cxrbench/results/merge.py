"""Merge results files of one data set and split plan into one (``cxrbench merge``).

For a benchmark whose jobs ran in several places or at several times: classical models on a
laptop, deep ones on a GPU box, a seed rerun at a clean commit. The files must agree on what
makes scores comparable (data hash, split plan, threshold rule, the evaluated images);
anything else may differ. Rules are compared by meaning ("0.5" and "fixed:0.5" are one rule).
A later file's successful record replaces an earlier one with the same ``job_id``. Every kept
record gets an ``origin``: the file it came from and the session that produced it (the first
run or a ``--resume``), with that session's git commit, CPU, host and command line, so a merged
file never hides which code on which machine made which number. Summary and statistics of the
merged file are computed from its records.
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


# What a session of a run records about where it ran; a ``--resume`` session records the same
# keys (files written before the CPU and command were recorded per session lack them: None).
SESSION_KEYS = ("cpu_model", "hostname", "command")


def run_sessions(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The sessions of one results file: the run that started it, then each ``--resume``.

    Each is ``{"session", "started", "commit", "dirty", "cpu_model", "hostname", "command",
    "jobs"}``; ``jobs`` of the first session are the records no resume session claims.
    """
    provenance = results.get("provenance") or {}
    run = results.get("run") or {}
    git = provenance.get("git") or {}
    resumed = run.get("resumed") or []
    claimed = {job for session in resumed for job in session.get("jobs") or []}
    first = {"session": "run", "started": run.get("started"), "commit": git.get("commit"),
             "dirty": git.get("dirty"), "cpu_model": provenance.get("cpu_model"),
             "hostname": provenance.get("hostname"), "command": run.get("command"),
             "jobs": [r["job_id"] for r in results.get("records", [])
                      if r["job_id"] not in claimed]}
    sessions = [first]
    for i, session in enumerate(resumed, start=1):
        rgit = session.get("git") or {}
        sessions.append({"session": f"resume {i}", "started": session.get("started"),
                         "commit": rgit.get("commit"), "dirty": rgit.get("dirty"),
                         **{key: session.get(key) for key in SESSION_KEYS},
                         "jobs": list(session.get("jobs") or [])})
    return sessions


def record_origin(results: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Where a record ran: an earlier merge's ``origin`` if it has one, else the session of
    ``results`` (the first run or a ``--resume``) that produced it: commit, dirty flag, CPU,
    host and command line (None where the file did not record them)."""
    origin = record.get("origin") or (record.get("fit_info") or {}).get("source_run") or {}
    if "commit" in origin or "git_commit" in origin:
        return {"commit": origin.get("commit", origin.get("git_commit")),
                "dirty": origin.get("dirty", origin.get("git_dirty")),
                **{key: origin.get(key) for key in (*SESSION_KEYS, "session")}}
    sessions = run_sessions(results)
    session = next((s for s in reversed(sessions) if record["job_id"] in s["jobs"]),
                   sessions[0])
    return {key: session[key] for key in ("commit", "dirty", *SESSION_KEYS, "session")}


def record_git(results: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The git commit a record ran at (see :func:`record_origin`)."""
    origin = record_origin(results, record)
    return {"commit": origin["commit"], "dirty": origin["dirty"]}


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
    for name, results in parts:
        for record in results["records"]:
            previous = kept.get(record["job_id"])
            if previous is not None and previous["status"] == "ok" and record["status"] != "ok":
                continue  # a later failure does not erase an earlier success
            record = copy.deepcopy(record)
            record["origin"] = {"file": name, **record_origin(results, record)}
            if record.get("threshold_rule") is not None:
                record["threshold_rule"] = canonical_rule(record["threshold_rule"])
            kept[record["job_id"]] = record
    sources = _sources(kept.values())

    merged = copy.deepcopy(parts[-1][1])
    records = list(kept.values())
    external = merge_external(parts, {job: r["origin"]["file"] for job, r in kept.items()})
    merged.pop("external", None)
    if external:
        merged["external"] = external
    checks = [results.get("source_check") for _, results in parts if results.get("source_check")]
    merged.pop("source_check", None)
    if checks:
        merged["source_check"] = copy.deepcopy(checks[-1])
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
                 "commit(s). run.sources lists the files and sessions; each record's origin its "
                 "commit, CPU and command."),
        "sources": sources,
    }
    return with_statistics(merged)


def _sources(records: Any) -> list[dict[str, Any]]:
    """One entry per (file, commit, CPU, session) that still contributes records after
    replacement, in order of first appearance: which code on which machine made which jobs."""
    groups: dict[tuple, dict[str, Any]] = {}
    for record in records:
        o = record["origin"]
        key = (o["file"], o.get("session"), o.get("commit"), o.get("dirty"), o.get("cpu_model"),
               o.get("hostname"))
        entry = groups.setdefault(key, {
            "file": o["file"], "session": o.get("session"), "git_commit": o.get("commit"),
            "dirty": o.get("dirty"), "cpu_model": o.get("cpu_model"),
            "hostname": o.get("hostname"), "command": o.get("command"), "jobs": []})
        entry["jobs"].append(record["job_id"])
    return list(groups.values())


def merge_external(parts: list[tuple[str, dict[str, Any]]],
                   origin: dict[str, str]) -> dict[str, Any]:
    """External sets of the files, joined by name: a set must hold the same images in every
    file that scored it; each record keeps the external scores of the file its own record
    came from (a replaced record's old scores belong to another fitted model)."""
    out: dict[str, Any] = {}
    for name, results in parts:
        for set_name, entry in (results.get("external") or {}).items():
            previous = out.get(set_name)
            if entry.get("status") != "ok":
                if previous is None or previous.get("status") != "ok":
                    out[set_name] = copy.deepcopy(entry)
                continue
            if previous is not None and previous.get("status") == "ok" and (
                    previous.get("data_hash") != entry.get("data_hash")
                    or previous.get("ids") != entry.get("ids")):
                raise MergeError(f"external set {set_name!r} holds other images in {name} than "
                                 "in an earlier file; evaluate one of them under another "
                                 "--name before merging")
            scores = dict(previous.get("records") or {}) if previous and previous.get(
                "status") == "ok" else {}
            scores.update({job: copy.deepcopy(score) for job, score in
                           (entry.get("records") or {}).items() if origin.get(job) == name})
            out[set_name] = {**copy.deepcopy(entry), "records": scores}
    for entry in out.values():  # scores of records no longer in the merged file go
        if entry.get("status") == "ok":
            entry["records"] = {job: s for job, s in entry["records"].items() if job in origin}
    return out


def merge_files(paths: list[str | Path]) -> dict[str, Any]:
    """Read, check and merge results files (see :func:`merge_results`)."""
    parts = []
    for path in paths:
        try:
            parts.append((str(path), read_results(path)))
        except ResultsError as err:
            raise MergeError(str(err)) from err
    return merge_results(parts)
