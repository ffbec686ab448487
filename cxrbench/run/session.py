"""The results of one run, before any job: a new file's sections, or a previous file read,
checked against this run (same data, split plan and threshold rule) and continued (--resume).

Nothing here writes: the harness writes what these functions return, once the run has been
accepted (``cxrbench.run.output``).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from cxrbench import __version__
from cxrbench.data import Dataset
from cxrbench.provenance import collect_provenance, cpu_model, git_info, utc_now
from cxrbench.results.io import ResultsError, read_results
from cxrbench.results.schema import SCHEMA_VERSION
from cxrbench.run.config import RunConfig
from cxrbench.run.output import SPLIT_FILE
from cxrbench.run.plan import RunError
from cxrbench.scoring.thresholds import canonical_rule
from cxrbench.splits import SplitPlan


def existing_results(config: RunConfig, path: Path) -> dict[str, Any] | None:
    """The results file to resume (read and validated now, before the data), or None.

    Called with the folder locked, so nothing can appear or change behind this check.
    """
    if not path.exists():
        return None
    if not (config.resume or config.overwrite):
        raise RunError(f"{path} already exists: pass --resume to continue it, "
                       "--overwrite to replace it, or choose another --out")
    if not config.resume:
        return None
    try:
        return read_results(path)
    except ResultsError as err:
        raise RunError(f"cannot resume: {err} (The file was left as it is; to start the run "
                       "again pass --overwrite, or choose another --out.)") from err


def _evaluation_section(dataset: Dataset, plan: SplitPlan, failed: set[str]) -> dict[str, Any]:
    records = dataset.records.set_index("record_id")
    section = {}
    for split in ("val", "test"):
        ids = [i for i in plan.ids(split) if i not in failed]
        section[split] = {
            "ids": ids,
            "labels": records.loc[ids, "label"].astype(int).tolist(),
            "groups": records.loc[ids, "patient_id"].astype(str).tolist(),
            "subgroups": records.loc[ids, "subgroup"].astype(str).tolist(),
        }
    return section


def data_provenance(dataset: Dataset, unreadable: Any) -> dict[str, Any]:
    """What a results file records about a data set it scored (the run's, or an external
    set's): where, which layout, its hash, and the images that could not be read."""
    return {
        "path": str(dataset.root),
        "kind": dataset.kind,
        "data_hash": dataset.data_hash,
        "synthetic": dataset.synthetic,
        "n_records": len(dataset.records),
        "unreadable": sorted(unreadable),
    }


def new_results(config: RunConfig, dataset: Dataset, plan: SplitPlan,
                   failed: set[str]) -> dict[str, Any]:
    provenance = collect_provenance()
    provenance["data"] = data_provenance(dataset, failed)
    provenance["split_sha256"] = plan.sha256
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "cxrbench", "version": __version__},
        "run": {
            "models": [spec.name for spec in config.models],
            "seeds": list(config.seeds),
            "threshold_rule": str(config.threshold_rule),
            "suite": config.suite,
            "executor": config.executor,
            "command": config.command,
            "status": "running",
            "started": utc_now(),
            "finished": None,
        },
        "provenance": provenance,
        "split": {
            "sha256": plan.sha256,
            "seed": plan.seed,
            "val_fraction": plan.val_fraction,
            "strategy": plan.strategy,
            "counts": plan.counts(dataset.records),
            "file": SPLIT_FILE,
        },
        "evaluation": _evaluation_section(dataset, plan, failed),
        "records": [],
    }


def check_resumable(previous: dict[str, Any], path: Path, config: RunConfig,
                     dataset: Dataset, plan: SplitPlan) -> None:
    """Refuse to resume results made on other data, another split plan or another rule."""
    if previous["split"].get("sha256") != plan.sha256:
        raise RunError(
            f"cannot resume {path}: it was made on another split plan "
            f"({str(previous['split'].get('sha256', '?'))[:12]} != {plan.sha256[:12]}); "
            "use a new --out folder"
        )
    if (previous["provenance"].get("data") or {}).get("data_hash") != dataset.data_hash:
        raise RunError(f"cannot resume {path}: the data changed since it was written")
    rule = previous["run"].get("threshold_rule")
    if rule is not None and canonical_rule(rule) != str(config.threshold_rule):
        raise RunError(f"cannot resume {path}: it was run with threshold rule "
                       f"{canonical_rule(rule)}, not {config.threshold_rule}; pass "
                       f"--threshold-rule {canonical_rule(rule)} or use a new --out folder")


def resume_results(previous: dict[str, Any], config: RunConfig) -> tuple[dict[str, Any], dict]:
    """Continue ``previous``: failed jobs are tried again, finished ones kept as they are.

    The session records who continued the run, where and at which commit (it may have moved
    since the file was started), and which jobs it ran.
    """
    results = {k: v for k, v in previous.items() if k not in ("summary", "statistics")}
    results["records"] = [r for r in previous["records"] if r["status"] == "ok"]
    results["run"]["status"] = "running"
    results["run"]["threshold_rule"] = str(config.threshold_rule)  # older files: "0.5"
    session: dict[str, Any] = {"started": utc_now(), "command": config.command,
                               "hostname": socket.gethostname(), "cpu_model": cpu_model(),
                               "git": git_info(), "jobs": []}
    results["run"].setdefault("resumed", []).append(session)
    return results, session
