"""Saving a job's fitted model (``cxrbench run --save-models``): ``OUT/models/<job_id>/``.

The job's process holds the fitted plugin, so the job saves it, right after scoring, through
:func:`cxrbench.plugins.artifacts.save_model`. The record gets a ``model_artifact`` entry: the
folder (relative to the results file), the sha256 of its ``model.json`` (checked again when
``cxrbench evaluate`` loads it), its size on disk; or the error, when saving failed (the
job's scores are kept: the fit succeeded).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from cxrbench.plugins.artifacts import MODELS_DIR, model_json_sha256, save_model
from cxrbench.plugins.contract import Plugin

__all__ = ["MODELS_DIR", "model_folder", "save_job_model"]


def model_folder(out_dir: str | Path, job_id: str) -> Path:
    """Where a job's model is saved: ``OUT/models/<job_id>`` (the job id as the folder name)."""
    return Path(out_dir) / MODELS_DIR / job_id


def save_job_model(plugin: Plugin, job: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Save ``plugin`` to ``job.save_model_to``; returns the record's ``model_artifact``."""
    directory = Path(job.save_model_to)
    relative = f"{MODELS_DIR}/{directory.name}"
    metadata = {
        "job_id": job.job_id,
        "params_overridden": dict(job.params),
        "training": {
            "data_path": job.data_path,
            "data_hash": job.data_hash,
            "split_sha256": job.split_sha256,
            **job.model_metadata,
        },
        "metrics": record.get("metrics", {}),
        "timing": {k: v for k, v in (record.get("timing") or {}).items()
                   if k in ("fit_s", "predict_ms_per_image", "peak_rss_mb")},
    }
    try:
        save_model(plugin, directory, input_size=job.image_size, channels=job.channels,
                   threshold=record.get("threshold"), threshold_rule=job.threshold_rule,
                   metadata=metadata)
    except Exception as err:  # the scores stand; the model is reported missing, with why
        print(f"warning: {job.job_id}: the fitted model could not be saved: "
              f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return {"path": None, "error": {"type": type(err).__name__, "message": str(err),
                                        "traceback": traceback.format_exc(limit=10)}}
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    return {"path": relative, "model_json_sha256": model_json_sha256(directory),
            "bytes": int(size), "error": None}
