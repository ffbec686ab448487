"""Per-record detail: where each record ran (commit, CPU, host), its hyperparameters, its
training history and the command line that reproduces it."""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path
from typing import Any

from cxrbench.results.merge import SESSION_KEYS, record_origin

# fit_info entries that are shown elsewhere or too long for a key-value list.
_NOT_CHOSEN = {"history", "grid", "chosen", "weights_sha256", "weights_file", "features",
               "feature_blocks"}
HISTORY_KEYS = ("phase", "epoch", "loss", "val_loss", "val_auc", "lr", "seconds")
JOB_ID_NOTE = ("A job id is <code>model[seed=N]</code>, or <code>model[xxxxxxxx,seed=N]</code> "
               "when hyperparameters were overridden: <code>xxxxxxxx</code> is the first 8 hex "
               "digits of the sha256 of the overrides as sorted JSON, so two runs with the same "
               "overrides share ids and a resumed run skips what it finished.")


def resolved_path(path: str | None) -> str | None:
    """A data path without ``..`` (symlinks resolved where the path exists here)."""
    if not path:
        return path
    candidate = Path(path).expanduser()
    try:
        return str(candidate.resolve(strict=True))
    except OSError:
        return os.path.normpath(str(candidate))


def record_provenance(results: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Commit, dirty flag, CPU, host, command and source file of one record.

    A record merged before sessions recorded their CPU has an ``origin`` without one: the CPU
    of the source file it came from is used only when that file's first session ran at the
    record's commit (else the record came from a ``--resume`` whose CPU was not recorded).
    """
    origin = record.get("origin")
    if not origin:
        return {"file": None, **record_origin(results, record)}
    info = {"file": origin.get("file"), "commit": origin.get("commit"),
            "dirty": origin.get("dirty"), "session": origin.get("session"),
            **{key: origin.get(key) for key in SESSION_KEYS}}
    if "cpu_model" not in origin:
        source = next((s for s in (results.get("run") or {}).get("sources") or []
                       if s.get("file") == origin.get("file")
                       and record["job_id"] in (s.get("jobs") or [])), None)
        if source and source.get("git_commit") == origin.get("commit"):
            info["cpu_model"] = source.get("cpu_model")
            info["hostname"] = info["hostname"] or source.get("hostname")
    return info


def provenance_groups(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Records grouped by where they ran (file, session, commit, CPU, host), first seen first."""
    groups: dict[tuple, dict[str, Any]] = {}
    for record in results.get("records", []):
        info = record_provenance(results, record)
        key = tuple(info.get(k) for k in ("file", "session", "commit", "dirty", "cpu_model",
                                          "hostname"))
        groups.setdefault(key, {**info, "jobs": []})["jobs"].append(record["job_id"])
    return list(groups.values())


def cpu_models(results: dict[str, Any]) -> dict[str, list[str]]:
    """CPU model -> ok records timed on it ("not recorded" when unknown)."""
    out: dict[str, list[str]] = {}
    for record in results.get("records", []):
        if record["status"] == "ok":
            cpu = record_provenance(results, record).get("cpu_model") or "not recorded"
            out.setdefault(cpu, []).append(record["job_id"])
    return out


def reproduce_command(results: dict[str, Any], record: dict[str, Any]) -> str:
    """A ``cxrbench run`` command line that redoes this one record on the same split plan."""
    run = results.get("run") or {}
    split = results.get("split") or {}
    data = resolved_path(((results.get("provenance") or {}).get("data") or {}).get("path"))
    argv = ["cxrbench", "run", "--data", data or "DATA",
            "--models", record["model"], "--seeds", str(record.get("seed", 0)),
            "--threshold-rule", str(record.get("threshold_rule") or run.get("threshold_rule")
                                    or "youden")]
    if split.get("val_fraction") is not None:
        argv += ["--val-fraction", str(split["val_fraction"])]
    if split.get("seed") is not None:
        argv += ["--split-seed", str(split["seed"])]
    for key, value in sorted((record.get("params") or {}).items()):
        argv += ["--param", f"{record['model']}.{key}={json.dumps(value)}"]
    argv += ["--out", f"out/{record['model']}-seed{record.get('seed', 0)}"]
    return shlex.join(argv)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "–"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def record_details(results: dict[str, Any], order: list[str]) -> list[dict[str, Any]]:
    """Everything the per-record section shows, in leaderboard order, failures last."""
    rank = {m: i for i, m in enumerate(order)}
    run_command = (results.get("run") or {}).get("command")
    out = []
    for record in results.get("records", []):
        info = record.get("fit_info") or {}
        chosen = dict(info.get("chosen") or {})
        chosen.update({k: v for k, v in info.items() if k not in _NOT_CHOSEN and _scalar(v)})
        history = [{k: _format(e.get(k)) if e.get(k) is not None else "" for k in HISTORY_KEYS}
                   for e in info.get("history") or []]
        keys = [k for k in HISTORY_KEYS if any(h[k] for h in history)]
        provenance = record_provenance(results, record)
        command = provenance.get("command") or run_command
        out.append({
            "job_id": record["job_id"], "model": record["model"], "seed": record.get("seed"),
            "status": record["status"], "threshold": record.get("threshold"),
            "given": {k: _format(v) for k, v in (record.get("params") or {}).items()},
            "chosen": {k: _format(v) for k, v in chosen.items()},
            "selection": info.get("selection"),
            "grid_size": len(info.get("grid") or []),
            "history": history, "history_keys": keys, "best_epoch": info.get("best_epoch"),
            "provenance": provenance,
            "reproduce": reproduce_command(results, record),
            "run_command": shlex.join(command) if isinstance(command, list) else command,
            "image_size": record.get("image_size"), "channels": record.get("channels"),
            "timing": record.get("timing") or {},
        })
    return sorted(out, key=lambda r: (r["status"] != "ok", rank.get(r["model"], 1e9),
                                      r["seed"] or 0))
