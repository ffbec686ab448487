"""Validation of a parsed results file against its schema (``cxrbench.results.schema``).

Every problem is collected, with a message naming where it is and what is wrong, so that a
damaged or hand-edited file is refused with the whole list (``ResultsError.problems``) rather
than failing later with a KeyError or a TypeError in ``report``, ``merge`` or ``compare``.
"""

from __future__ import annotations

import math
from typing import Any

from cxrbench.results.schema import (
    RECORD_STATUSES,
    RUN_STATUSES,
    SCHEMA_VERSION,
    SPLITS,
    ResultsError,
)
from cxrbench.results.validate_external import (
    check_external,
    check_model_artifact,
    check_source_check,
)
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS
from cxrbench.scoring.thresholds import ThresholdRule

REQUIRED_TOP_LEVEL = ("schema_version", "run", "provenance", "split", "records")
SHOWN_PROBLEMS = 25  # the message lists this many; ResultsError.problems holds them all


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nonnegative_int(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _unit_score(value: Any) -> bool:
    """A number in [0, 1], or NaN (an undefined score, as null is)."""
    return _is_number(value) and (math.isnan(value) or 0 <= value <= 1)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def object(self, where: str, value: Any, *, optional: bool = True) -> dict[str, Any] | None:
        """``value`` if it is an object; None (and a problem unless optional and absent)."""
        if isinstance(value, dict):
            return value
        if value is not None or not optional:
            self.add(where, f"must be an object, got {_show(value)}")
        return None


def _readable_versions() -> str:
    return "version 1" if SCHEMA_VERSION == 1 else f"versions 1 to {SCHEMA_VERSION}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def find_problems(data: Any) -> list[str]:
    """Every way ``data`` departs from the schema; empty when it is a valid results file."""
    check = _Checker()
    if not isinstance(data, dict):
        return ["the top level must be a JSON object"]
    missing = [key for key in REQUIRED_TOP_LEVEL if key not in data]
    if missing:
        check.add("", f"missing required field(s) {missing}")
    version = data.get("schema_version")
    if "schema_version" in data:
        if _is_int(version) and version > SCHEMA_VERSION:
            return [f"schema_version {version} is not supported by this cxrbench (it reads "
                    f"{_readable_versions()}); upgrade cxrbench"]
        if not (_is_int(version) and version >= 1):
            check.add("schema_version", f"{_show(version)} is not supported (this cxrbench "
                      f"reads {_readable_versions()})")
    for key in ("run", "provenance", "split"):
        if key in data:
            check.object(key, data[key], optional=False)
    check.object("tool", data.get("tool"))
    _check_run(check, data.get("run"))
    _check_provenance(check, data.get("provenance"))
    lengths = _check_evaluation(check, data.get("evaluation"))
    check_external(check.add, data.get("external"))
    check_source_check(check.add, data.get("source_check"))
    records = data.get("records")
    if "records" in data and not isinstance(records, list):
        check.add("records", f"must be a list, got {_show(records)}")
    elif isinstance(records, list):
        seen: dict[str, int] = {}
        for i, record in enumerate(records):
            _check_record(check, i, record, lengths)
            job = record.get("job_id") if isinstance(record, dict) else None
            if isinstance(job, str):
                if job in seen:
                    check.add(f"record {i} ({job})", f"same job_id as record {seen[job]}; "
                              "each job appears once")
                seen.setdefault(job, i)
    return check.problems


def validate_results(data: Any, *, source: str = "results") -> None:
    """Raise ``ResultsError`` listing every problem of ``data``; return when it is valid."""
    problems = find_problems(data)
    if not problems:
        return
    shown = "\n".join(f"  - {p}" for p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    if more > 0:
        shown += f"\n  - ... and {more} more"
    advice = ("" if problems[0].startswith("schema_version")  # a newer cxrbench is the fix
              else "(restore the file from a copy, or write it again)")
    if len(problems) == 1:
        message = f"{source}: {problems[0]} {advice}".rstrip()
    else:
        message = f"{source} has {len(problems)} problems:\n{shown}\n{advice}".rstrip()
    raise ResultsError(message, problems)


def _check_run(check: _Checker, run: Any) -> None:
    if not isinstance(run, dict):
        return
    status = run.get("status")
    if status is not None and status not in RUN_STATUSES:
        check.add("run.status", f"{_show(status)} is not one of {RUN_STATUSES}")
    rule = run.get("threshold_rule")
    if rule is not None:
        try:
            ThresholdRule.parse(rule)
        except ValueError as err:
            check.add("run.threshold_rule", str(err))
    command = run.get("command")
    if command is not None and not (isinstance(command, list)
                                    and all(isinstance(a, str) for a in command)):
        check.add("run.command", f"must be a list of strings or null, got {_show(command)}")
    resumed = run.get("resumed")
    if resumed is not None and not isinstance(resumed, list):
        check.add("run.resumed", f"must be a list, got {_show(resumed)}")
    for i, session in enumerate(resumed if isinstance(resumed, list) else []):
        session = check.object(f"run.resumed[{i}]", session, optional=False)
        jobs = (session or {}).get("jobs")
        if session is not None and jobs is not None and not (
                isinstance(jobs, list) and all(isinstance(j, str) for j in jobs)):
            check.add(f"run.resumed[{i}].jobs", f"must be a list of job ids, got {_show(jobs)}")
        check.object(f"run.resumed[{i}].git", (session or {}).get("git"))
    for i, source in enumerate(run.get("sources") or []):
        check.object(f"run.sources[{i}]", source, optional=False)


def _check_provenance(check: _Checker, provenance: Any) -> None:
    if not isinstance(provenance, dict):
        return
    for key in ("data", "git", "packages"):
        check.object(f"provenance.{key}", provenance.get(key))


def _check_evaluation(check: _Checker, evaluation: Any) -> dict[str, int]:
    """Checks ``evaluation``; returns the number of evaluated images per split."""
    lengths: dict[str, int] = {}
    if check.object("evaluation", evaluation) is None:
        return lengths
    for split in SPLITS:
        where = f"evaluation.{split}"
        section = check.object(where, evaluation.get(split))
        if section is None:
            continue
        ids, labels, groups = section.get("ids"), section.get("labels"), section.get("groups")
        if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            check.add(f"{where}.ids", f"must be a list of image ids, got {_show(ids)}")
            continue
        lengths[split] = len(ids)
        if not (isinstance(labels, list) and all(_is_int(v) and v in (0, 1) for v in labels)):
            check.add(f"{where}.labels", "must be a list of 0 (NORMAL) and 1 (PNEUMONIA)")
        elif len(labels) != len(ids):
            check.add(f"{where}.labels", f"{len(labels)} labels for {len(ids)} ids")
        if groups is not None and not (isinstance(groups, list) and len(groups) == len(ids)):
            check.add(f"{where}.groups", f"must be a list of one patient id per image "
                      f"({len(ids)}), got {_show(groups)}")
        subgroups = section.get("subgroups")
        if subgroups is not None and not (isinstance(subgroups, list)
                                          and len(subgroups) == len(ids)):
            check.add(f"{where}.subgroups", f"must be a list of one subgroup per image "
                      f"({len(ids)}), got {_show(subgroups)}")
    return lengths


def _check_record(check: _Checker, i: int, record: Any, lengths: dict[str, int]) -> None:
    if not isinstance(record, dict):
        check.add(f"record {i}", f"must be an object, got {_show(record)}")
        return
    job = record.get("job_id")
    where = f"record {i} ({job})" if isinstance(job, str) and job else f"record {i}"
    missing = [k for k in ("job_id", "model", "seed", "status") if k not in record]
    if missing:
        check.add(where, f"missing field(s) {missing}")
    if "job_id" in record and not (isinstance(job, str) and job):
        check.add(where, f"job_id must be a non-empty string, got {_show(job)}")
    model = record.get("model")
    if "model" in record and not (isinstance(model, str) and model):
        check.add(where, f"model must be a non-empty string (a plugin name), got {_show(model)}")
    if "seed" in record and not _nonnegative_int(record["seed"]):
        check.add(where, f"seed must be a non-negative integer, got {_show(record['seed'])}")
    status = record.get("status")
    if "status" in record and status not in RECORD_STATUSES:
        check.add(where, f"has status {_show(status)}; expected one of {RECORD_STATUSES}")
    for key in ("params", "fit_info", "error", "origin", "worker"):
        check.object(f"{where}: {key}", record.get(key))
    check_model_artifact(check.add, where, record.get("model_artifact"))
    if record.get("threshold_rule") is not None:
        try:
            ThresholdRule.parse(record["threshold_rule"])
        except ValueError as err:
            check.add(f"{where}: threshold_rule", str(err))
    if status == "ok":
        _check_ok_record(check, where, record, lengths)


def _check_ok_record(check: _Checker, where: str, record: dict[str, Any],
                     lengths: dict[str, int]) -> None:
    metrics = check.object(f"{where}: metrics", record.get("metrics"), optional=False)
    for split in SPLITS if metrics is not None else ():
        values = metrics.get(split)
        if values is None:
            check.add(where, f"an ok record needs metrics.{split}")
            continue
        if check.object(f"{where}: metrics.{split}", values) is None:
            continue
        if not values:
            check.add(where, f"metrics.{split} is empty; an ok record holds its scores")
        for name, value in values.items():
            if value is None:
                continue
            if name in METRICS and not _unit_score(value):
                check.add(where, f"metrics.{split}.{name} is {_show(value)}; scores lie in "
                          "[0, 1] (null when undefined)")
            elif name not in METRICS and not (_is_number(value) and not math.isinf(value)):
                check.add(where, f"metrics.{split}.{name} must be a number or null, "
                          f"got {_show(value)}")
    threshold = record.get("threshold")
    if threshold is not None and not (_is_number(threshold) and 0 <= threshold <= 1):
        check.add(where, f"threshold {_show(threshold)} must be a number in [0, 1] or null")
    timing = check.object(f"{where}: timing", record.get("timing")) or {}
    for name, value in timing.items():
        if value is not None and not (_is_number(value) and 0 <= value < math.inf):
            kind = "timings" if name in TIMING_DIRECTIONS else "timing values"
            check.add(where, f"timing.{name} is {_show(value)}; {kind} are non-negative numbers")
    confusion = check.object(f"{where}: confusion", record.get("confusion")) or {}
    for split, counts in confusion.items():
        if not (isinstance(counts, dict) and all(_nonnegative_int(v) for v in counts.values())):
            check.add(where, f"confusion.{split} must hold non-negative integer counts, "
                      f"got {_show(counts)}")
    n_params = record.get("n_params")
    if n_params is not None and not _nonnegative_int(n_params):
        check.add(where, f"n_params must be a non-negative integer or null, "
                  f"got {_show(n_params)}")
    skipped = check.object(f"{where}: skipped_images", record.get("skipped_images"))
    if skipped is not None and not _nonnegative_int(skipped.get("count")):
        check.add(where, f"skipped_images.count must be a non-negative integer, "
                  f"got {_show(skipped.get('count'))}")
    predictions = check.object(f"{where}: predictions", record.get("predictions")) or {}
    for split, p in predictions.items():
        if not isinstance(p, list):
            check.add(where, f"predictions.{split} must be a list of probabilities")
            continue
        if split in lengths and len(p) != lengths[split]:
            check.add(where, f"predictions.{split} holds {len(p)} probabilities for the "
                      f"{lengths[split]} images of evaluation.{split}")
        bad = sum(1 for v in p if not (_is_number(v) and 0 <= v <= 1))
        if bad:
            check.add(where, f"predictions.{split} has {bad} value(s) that are not "
                      "probabilities in [0, 1]")
