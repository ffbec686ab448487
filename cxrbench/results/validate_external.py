"""Validation of the version-2 parts of a results file: ``external``, ``source_check`` and the
records' ``model_artifact`` (``cxrbench.results.validate`` calls these; same conventions)."""

from __future__ import annotations

import math
import re
from typing import Any

from cxrbench.scoring.metrics import METRICS

ENTRY_STATUSES = ("ok", "error")
# The names `cxrbench evaluate` accepts (cxrbench.run.config.check_external_name): names reach
# HTML, Markdown and CSV headers, so a hand-edited file with any other name is refused.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_model_artifact(add: Any, where: str, artifact: Any) -> None:
    """``model_artifact``: an object with a relative ``path`` (or null and an error)."""
    if artifact is None:
        return
    if not isinstance(artifact, dict):
        add(where, f"model_artifact must be an object, got {artifact!r:.60}")
        return
    path = artifact.get("path")
    if path is None:
        if not isinstance(artifact.get("error"), dict):
            add(where, "model_artifact without a path must say why (error)")
        return
    if not isinstance(path, str) or path.startswith("/") or ".." in path.split("/"):
        add(where, f"model_artifact.path must be a folder inside the run folder, got {path!r}")
    digest = artifact.get("model_json_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        add(where, "model_artifact.model_json_sha256 must be a sha256 hex digest")


def check_external(add: Any, external: Any) -> None:
    """Every ``external[NAME]`` entry: status, aligned images, and its records' scores."""
    if external is None:
        return
    if not isinstance(external, dict):
        add("external", f"must be an object (name -> set), got {external!r:.60}")
        return
    for name, entry in external.items():
        where = f"external.{name}"
        if not NAME.match(name):
            add("external", f"set name {name!r:.70} must be 1-64 letters, digits, '_', '.' "
                "or '-'")
            continue
        if not isinstance(entry, dict):
            add(where, f"must be an object, got {entry!r:.60}")
            continue
        status = entry.get("status")
        if status not in ENTRY_STATUSES:
            add(where, f"has status {status!r}; expected one of {ENTRY_STATUSES}")
            continue
        if status == "error":
            if not isinstance(entry.get("error"), dict):
                add(where, "an error entry must hold its error (type, message)")
            continue
        n = _check_images(add, where, entry)
        records = entry.get("records")
        if not isinstance(records, dict):
            add(where, "records must be an object (job_id -> scores)")
            continue
        for job, record in records.items():
            _check_record(add, f"{where}.records[{job}]", record, n)


def _check_images(add: Any, where: str, entry: dict[str, Any]) -> int | None:
    ids, labels = entry.get("ids"), entry.get("labels")
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        add(f"{where}.ids", "must be a list of image ids")
        return None
    if not (isinstance(labels, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                             and v in (0, 1) for v in labels)):
        add(f"{where}.labels", "must be a list of 0 (NORMAL) and 1 (PNEUMONIA)")
    elif len(labels) != len(ids):
        add(f"{where}.labels", f"{len(labels)} labels for {len(ids)} ids")
    for key in ("groups", "subgroups"):
        values = entry.get(key)
        if values is not None and not (isinstance(values, list) and len(values) == len(ids)):
            add(f"{where}.{key}", f"must be a list of one value per image ({len(ids)})")
    if not isinstance(entry.get("data_hash"), str):
        add(where, "an ok entry needs the set's data_hash")
    return len(ids)


def _check_record(add: Any, where: str, record: Any, n: int | None) -> None:
    if not isinstance(record, dict):
        add(where, f"must be an object, got {record!r:.60}")
        return
    status = record.get("status")
    if status not in ENTRY_STATUSES:
        add(where, f"has status {status!r}; expected one of {ENTRY_STATUSES}")
        return
    if status == "error":
        return
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        add(where, "an ok record needs its metrics")
    else:
        for name, value in metrics.items():
            if value is None:
                continue
            if name in METRICS and not (_number(value) and (math.isnan(value)
                                                            or 0 <= value <= 1)):
                add(where, f"metrics.{name} is {value!r}; scores lie in [0, 1] (null when "
                    "undefined)")
    threshold = record.get("threshold")
    if not (_number(threshold) and 0 <= threshold <= 1):
        add(where, f"threshold {threshold!r} must be a number in [0, 1]")
    p = record.get("predictions")
    if not isinstance(p, list):
        add(where, "predictions must be a list of probabilities")
        return
    if n is not None and len(p) != n:
        add(where, f"predictions holds {len(p)} probabilities for the {n} images of the set")
    bad = sum(1 for v in p if not (_number(v) and 0 <= v <= 1))
    if bad:
        add(where, f"predictions has {bad} value(s) that are not probabilities in [0, 1]")


def check_source_check(add: Any, section: Any) -> None:
    if section is not None and not isinstance(section, dict):
        add("source_check", f"must be an object (val/test -> check), got {section!r:.60}")
