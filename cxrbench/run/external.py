"""Scoring saved models on a labelled external set: one ``external[NAME]`` entry.

Every image of the set is a test image, whatever its layout says (a Kaggle layout's train/
folder included). Images are decoded once per (size, channels) through the image cache, by
the same decoder the models were trained with; images that cannot be decoded are listed and
left out for every model alike. Each model is loaded from its folder (every file verified, see
:func:`cxrbench.plugins.artifacts.load_model`) and scored at the threshold its run chose on
validation: no refit, no new threshold. A model that fails (modified file, other decoder
version, a crash) is an error entry of its own; the others are still scored.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench import __version__
from cxrbench.data import DECODER_VERSION, DataError, Dataset, ImageCache, load_dataset
from cxrbench.plugins.artifacts import load_model
from cxrbench.plugins.contract import ImageSet
from cxrbench.provenance import utc_now
from cxrbench.run.jobs import PREDICTION_DECIMALS, validate_probabilities
from cxrbench.run.session import data_provenance
from cxrbench.scoring.metrics import compute_metrics, confusion_counts


class ExternalSetError(ValueError):
    """The external set cannot be scored at all (unreadable, one class, no readable image)."""


@dataclass(frozen=True)
class SavedJob:
    """A record of the run whose model was saved: where, and the hash the run recorded."""

    job_id: str
    model: str
    seed: int
    threshold: float
    folder: Path
    model_json_sha256: str | None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_external(path: str | Path, cache_dir: Path, *,
                  allow_outside_root: bool = False) -> Dataset:
    """The external set as a data set; ExternalSetError when it cannot be read.
    ``allow_outside_root`` lets a manifest list files outside its folder."""
    try:
        return load_dataset(path, cache_dir=cache_dir, allow_outside_root=allow_outside_root)
    except DataError as err:
        raise ExternalSetError(str(err)) from err


def decode_all(dataset: Dataset, shapes: set[tuple[int, int]], cache: ImageCache,
               progress: bool) -> tuple[dict[tuple[int, int], np.ndarray], list[str],
                                        dict[str, str], dict[tuple[int, int], float]]:
    """Images of every record at each shape, aligned on the ids readable at every shape.

    Returns ``(images by shape, ids, unreadable {id: reason}, decode seconds by shape)``.
    """
    records = dataset.records
    loaded, failed, seconds = {}, {}, {}
    for size, channels in sorted(shapes):
        start = time.perf_counter()
        cached = cache.load(records, size, channels, progress=progress)
        seconds[(size, channels)] = time.perf_counter() - start
        loaded[(size, channels)] = cached
        for item in cached.failed:
            failed[item["record_id"]] = item["reason"]
    ids = [i for i in records["record_id"].astype(str) if i not in failed]
    images = {}
    for shape, cached in loaded.items():
        position = {rid: k for k, rid in enumerate(cached.record_ids.astype(str))}
        rows = np.array([position[i] for i in ids], dtype=int)
        same = len(rows) == len(cached.record_ids) and np.array_equal(rows, np.arange(len(rows)))
        images[shape] = cached.images if same else np.asarray(cached.images)[rows]
    return images, ids, failed, seconds


def score_model(job: SavedJob, images: ImageSet, labels: np.ndarray) -> dict[str, Any]:
    """One model's entry: metrics at its validation threshold, confusion, predictions, timing."""
    entry: dict[str, Any] = {"model": job.model, "seed": job.seed, "threshold": job.threshold,
                             "status": "error", "error": None}
    try:
        start = time.perf_counter()
        saved = load_model(job.folder, expected_sha256=job.model_json_sha256)
        load_s = time.perf_counter() - start
        info_job = saved.info.get("job_id")
        if info_job not in (None, job.job_id):
            raise ValueError(f"{job.folder} holds the model of {info_job}, not {job.job_id}")
        start = time.perf_counter()
        p = saved.plugin.predict_proba(images)
        predict_s = time.perf_counter() - start
        p = validate_probabilities(job.model, p, len(images), "the external set")
        entry.update(
            status="ok",
            decoder_version=saved.info["decoder_version"],
            metrics=compute_metrics(labels, p, job.threshold),
            confusion=confusion_counts(labels, p, job.threshold),
            predictions=np.round(p, PREDICTION_DECIMALS).tolist(),
            timing={"load_s": load_s, "predict_s": predict_s,
                    "predict_ms_per_image": 1000 * predict_s / max(len(p), 1)},
        )
    except Exception as err:  # one model's failure is its entry; the others are scored
        entry["error"] = {"type": type(err).__name__, "message": str(err) or repr(err)}
    return entry


def score_external_set(dataset: Dataset, jobs: list[SavedJob], shapes: dict[str, tuple[int, int]],
                       cache_dir: Path, *, progress: bool = False,
                       on_model: Callable[[str, dict[str, Any]], None] | None = None,
                       ) -> dict[str, Any]:
    """The ``external[NAME]`` entry for ``dataset`` scored by every saved job (see the module).

    ``shapes`` maps each job id to the (size, channels) its model was trained on. Raises
    ExternalSetError when the set has one class or no readable image.
    """
    cache = ImageCache(cache_dir)
    images, ids, failed, decode_s = decode_all(dataset, set(shapes.values()), cache, progress)
    for record_id, reason in sorted(failed.items()):
        _log(f"warning: skipping unreadable image {record_id}: {reason}")
    rows = dataset.records.set_index("record_id").loc[ids]
    labels = rows["label"].to_numpy(dtype=np.int8)
    present = set(labels.tolist())
    if present != {0, 1}:
        names = {0: "NORMAL", 1: "PNEUMONIA"}
        have = ", ".join(names[c] for c in sorted(present)) or "no readable image"
        raise ExternalSetError(
            f"external set {dataset.root} has {have}; ROC AUC, sensitivity and specificity "
            "need both NORMAL and PNEUMONIA images")
    entry = data_section(dataset, ids, rows, failed)
    entry["decode_s"] = {f"{s}x{c}": round(t, 3) for (s, c), t in decode_s.items()}
    entry["records"] = {}
    for job in jobs:
        shape = shapes[job.job_id]
        image_set = ImageSet(images=images[shape], labels=None, ids=np.asarray(ids, dtype=str),
                             content_hashes=rows["content_hash"].to_numpy(dtype=str),
                             groups=rows["patient_id"].to_numpy(dtype=str), cache_dir=cache_dir)
        scored = score_model(job, image_set, labels)
        if scored["status"] == "ok":
            scored["timing"]["decode_s"] = decode_s[shape]
        entry["records"][job.job_id] = scored
        if on_model is not None:
            on_model(job.job_id, scored)
    return entry


def data_section(dataset: Dataset, ids: list[str], rows: Any,
                 failed: dict[str, str]) -> dict[str, Any]:
    """What an entry records about the set: provenance, counts, and the evaluated images."""
    labels = rows["label"].astype(int).tolist()
    return {
        "status": "ok",
        "error": None,
        **data_provenance(dataset, failed),
        "counts": {"NORMAL": labels.count(0), "PNEUMONIA": labels.count(1),
                   "patients": int(rows["patient_id"].nunique())},
        "ids": list(ids),
        "labels": labels,
        "groups": rows["patient_id"].astype(str).tolist(),
        "subgroups": rows["subgroup"].astype(str).tolist(),
        "decoder_version": DECODER_VERSION,
        "cxrbench_version": __version__,
        "evaluated": utc_now(),
    }


def error_entry(path: str | Path, err: BaseException) -> dict[str, Any]:
    """An external set that could not be scored: its path and the message, nothing else."""
    return {"status": "error", "path": str(path), "evaluated": utc_now(),
            "cxrbench_version": __version__,
            "error": {"type": type(err).__name__, "message": str(err) or repr(err)},
            "records": {}}
