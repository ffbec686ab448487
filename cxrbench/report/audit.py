"""The data audit as the report shows it (``results["data_audit"]``).

Two ways in: the harness stores ``audit_summary(audit_dataset(dataset))`` in the results it
writes, or ``cxrbench report --audit`` audits the data root when rendering
(:func:`audit_for_results`), refusing data whose hash differs from the run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXAMPLES_KEPT = 20  # listed examples per kind; every count stays exact


class AuditMismatch(ValueError):
    """The data found at the root is not the data the run was made on."""


def audit_summary(audit: dict[str, Any], examples: int = EXAMPLES_KEPT) -> dict[str, Any]:
    """An ``audit_dataset`` report trimmed for a results file: counts exact, lists cut to
    ``examples`` entries (with their full lengths under ``n_*``)."""
    out = {k: v for k, v in audit.items() if k not in {"unreadable", "duplicate_groups",
                                                       "cross_split_duplicate_groups",
                                                       "cross_label_duplicate_groups",
                                                       "patients_in_several_splits"}}
    for key in ("unreadable", "duplicate_groups", "cross_split_duplicate_groups",
                "cross_label_duplicate_groups"):
        items = audit.get(key) or []
        out[key] = items[:examples]
        out[f"n_{key}"] = len(items)
    several = audit.get("patients_in_several_splits") or {}
    patients = several.get("patients") or {}
    out["patients_in_several_splits"] = {
        "count": several.get("count", len(patients)), "note": several.get("note"),
        "examples": dict(list(patients.items())[:examples])}
    return out


def audit_for_results(results: dict[str, Any], data_root: str | Path,
                      progress: bool = False) -> dict[str, Any]:
    """Audit the data at ``data_root`` for the report of ``results`` (raises AuditMismatch
    when it is not the data the run used, ``cxrbench.data.DataError`` when unreadable)."""
    from cxrbench.data import audit_dataset, load_dataset

    dataset = load_dataset(data_root)
    expected = ((results.get("provenance") or {}).get("data") or {}).get("data_hash")
    if expected and dataset.data_hash != expected:
        raise AuditMismatch(f"the data at {data_root} has hash {dataset.data_hash[:12]}, the "
                            f"run was made on {expected[:12]}: not auditing other data")
    return audit_summary(audit_dataset(dataset, progress=progress))
