"""One benchmark job: a picklable description, and the function that runs it.

A ``Job`` holds names, parameters, a seed and references (data path and hash, split-plan file,
cache folder), never arrays or models, so any executor (a local process, a Dask worker) can run
it and get the same record. ``run_job`` does the scoring: the plugin only fits and predicts.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from cxrbench.plugins.contract import ImageSet
from cxrbench.plugins.registry import UnknownModelError, create_model, get_card
from cxrbench.plugins.sources import PluginImport, ensure_model, load_plugins, plugin_origin
from cxrbench.provenance import utc_now
from cxrbench.scoring.metrics import compute_metrics, confusion_counts
from cxrbench.scoring.thresholds import ThresholdRule

if TYPE_CHECKING:
    from cxrbench.splits import SplitPlan

PREDICTION_DECIMALS = 6


@dataclass(frozen=True)
class Job:
    model: str
    seed: int
    data_path: str
    data_hash: str
    split_plan_path: str
    split_sha256: str
    cache_dir: str
    threshold_rule: str  # canonical (str(ThresholdRule)): "youden", "fixed:0.5", ...
    image_size: int  # the input the plugin gets: its card's, or its params' override
    channels: int
    params: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    plugin_source: str = ""  # "module:Class", so a worker can import a user's plugin module
    allow_outside_root: bool = False  # the run's manifest option, to load the same data set
    # The class itself (cloudpickle) when "module:Class" cannot import it: defined in __main__
    # (a notebook), in a function, or made at run time (cxrbench.plugins.sources).
    plugin_payload: bytes | None = None
    plugins: tuple[PluginImport, ...] = ()  # local plugin files/modules, imported first
    plugin_origin: dict[str, Any] | None = None  # class, file, sha256: noted in the record
    save_model_to: str | None = None  # a model folder to save the fitted model to (--save-models)
    model_metadata: dict[str, Any] = field(default_factory=dict)  # run facts for its model.json

    @property
    def job_id(self) -> str:
        return job_id(self.model, self.params, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_id(model: str, params: dict[str, Any], seed: int) -> str:
    """``model[seed=0]``, or ``model[<params digest>,seed=0]`` when parameters are overridden."""
    if not params:
        return f"{model}[seed={seed}]"
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{model}[{digest},seed={seed}]"


class PeakMemory:
    """Samples this process's resident memory in a thread: the peak during the block, in MB.

    Works for native allocations (TensorFlow, XGBoost) that tracemalloc cannot see.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


class SplitPlanMismatchError(RuntimeError):
    """The split plan a job read is not the one its run planned (replaced or edited)."""


def load_verified_plan(job: Job) -> SplitPlan:
    """The job's split plan, verified against the sha256 the run gave it."""
    from cxrbench.splits import SplitPlan

    plan = SplitPlan.load(job.split_plan_path)
    if plan.sha256 != job.split_sha256:
        raise SplitPlanMismatchError(
            f"the split plan {job.split_plan_path} has sha256 {plan.sha256[:12]}, not the "
            f"{job.split_sha256[:12]} this run planned: it was replaced while the run was "
            "going, so this job was not run. Keep one run per output folder, then rerun with "
            "--resume")
    return plan


class InvalidPredictionError(ValueError):
    """A plugin returned something that is not one probability in [0, 1] per image."""


def validate_probabilities(model: str, proba: np.ndarray, n: int, split: str) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64).reshape(-1)
    if proba.shape != (n,):
        raise InvalidPredictionError(
            f"{model} returned {proba.shape[0]} probabilities for {n} {split} images"
        )
    bad = ~np.isfinite(proba)
    if bad.any():
        raise InvalidPredictionError(
            f"{model} returned {int(bad.sum())} non-finite (NaN/inf) probabilities on {split}"
        )
    if proba.min() < 0 or proba.max() > 1:
        raise InvalidPredictionError(
            f"{model} returned probabilities outside [0, 1] on {split} "
            f"(min {proba.min():.4g}, max {proba.max():.4g})"
        )
    return proba


def load_job_plugin(job: Job) -> None:
    """Make the job's plugin available in this process (a job process, a Dask worker): its
    local plugin files first, checked against their sha256, then its class, by reference or by
    value; a class imported by reference must come from the file the run planned with."""
    load_plugins(job.plugins)
    ensure_model(job.model, job.plugin_source, job.plugin_payload)
    origin = job.plugin_origin or {}
    planned = origin.get("sha256")
    if planned and origin.get("sha256_of") == "file" and job.plugin_payload is None:
        here = plugin_origin(job.model)
        if here["sha256"] and here["sha256"] != planned:
            raise RuntimeError(
                f"{job.model}: its source file here, {here['file']}, is not the one the run "
                f"planned with (sha256 {here['sha256'][:12]} != {planned[:12]}): it changed "
                "since the run started, or this machine has other plugin code; the same code "
                "must run every job, so rerun once they agree")


def base_record(job: Job) -> dict[str, Any]:
    try:
        card = get_card(job.model)
    except UnknownModelError:  # its plugin could not be loaded here: an error record
        card = None
    record = {
        "job_id": job.job_id,
        "model": job.model,
        "family": card.family if card else None,
        "framework": card.framework if card else None,
        "params": job.params,
        "seed": job.seed,
        "status": "error",
        "error": None,
        "image_size": job.image_size,
        "channels": job.channels,
        "threshold_rule": job.threshold_rule,
        "started": utc_now(),
    }
    if job.plugin_origin is not None:
        record["plugin"] = job.plugin_origin
    if card is None:
        del record["family"], record["framework"]
    return record


def error_record(job: Job, kind: str, message: str, tb: str | None = None) -> dict[str, Any]:
    """A failed job as a result row; ``kind`` is an exception name, 'timeout' or 'crash'."""
    record = base_record(job)
    record["status"] = "timeout" if kind == "timeout" else "error"
    record["error"] = {"type": kind, "message": message, "traceback": tb}
    record["finished"] = utc_now()
    return record


def load_job_data(job: Job) -> tuple[dict[str, ImageSet], dict[str, Any]]:
    """Train, val and test ImageSets for a job, read through the shared image cache; the split
    plan and the data are verified against the hashes the run gave the job."""
    from cxrbench.data import ImageCache, load_dataset

    plan = load_verified_plan(job)
    dataset = load_dataset(job.data_path, cache_dir=job.cache_dir or None,
                           allow_outside_root=job.allow_outside_root)
    if dataset.data_hash != job.data_hash:
        raise RuntimeError(
            f"data at {job.data_path} changed since the run started "
            f"(hash {dataset.data_hash[:12]} != {job.data_hash[:12]})"
        )
    records = dataset.records.set_index("record_id", drop=False)
    cache = ImageCache(Path(job.cache_dir))
    sets: dict[str, ImageSet] = {}
    skipped: list[str] = []
    for split in ("train", "val", "test"):
        subset = records.loc[list(plan.ids(split))]
        cached = cache.load(subset, job.image_size, job.channels)
        skipped.extend(f["record_id"] for f in cached.failed)
        rows = subset.loc[cached.record_ids]
        sets[split] = ImageSet(
            images=cached.images,
            labels=rows["label"].to_numpy(dtype=np.int8),
            ids=rows["record_id"].to_numpy(dtype=str),
            content_hashes=rows["content_hash"].to_numpy(dtype=str),
            groups=rows["patient_id"].to_numpy(dtype=str),
            cache_dir=Path(job.cache_dir),
        )
    return sets, {"count": len(skipped), "record_ids": skipped}


def run_job(job: Job) -> dict[str, Any]:
    """Fit, predict, threshold on val, score val and test. Exceptions become error records."""
    job_start = time.perf_counter()
    try:
        load_job_plugin(job)
    except Exception as err:  # e.g. a plugin file that moved or changed: this job's error
        return error_record(job, type(err).__name__, str(err) or repr(err),
                            traceback.format_exc(limit=20))
    record = base_record(job)
    try:
        sets, skipped = load_job_data(job)
        plugin = create_model(job.model, seed=job.seed, **job.params)
        with PeakMemory() as memory:
            start = time.perf_counter()
            plugin.fit(sets["train"], sets["val"])
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            p_val = plugin.predict_proba(sets["val"].without_labels())
            predict_val_s = time.perf_counter() - start
            start = time.perf_counter()
            p_test = plugin.predict_proba(sets["test"].without_labels())
            predict_s = time.perf_counter() - start
        p_val = validate_probabilities(job.model, p_val, len(sets["val"]), "val")
        p_test = validate_probabilities(job.model, p_test, len(sets["test"]), "test")
        y_val, y_test = sets["val"].labels, sets["test"].labels
        threshold = ThresholdRule.parse(job.threshold_rule).choose(y_val, p_val)
        fit_info = getattr(plugin, "fit_info_", {}) or {}
        record.update(
            status="ok",
            threshold=threshold,
            metrics={
                "val": compute_metrics(y_val, p_val, threshold),
                "test": compute_metrics(y_test, p_test, threshold),
            },
            confusion={
                "val": confusion_counts(y_val, p_val, threshold),
                "test": confusion_counts(y_test, p_test, threshold),
            },
            timing={
                "fit_s": fit_s,
                "predict_s": predict_s,
                "predict_ms_per_image": 1000 * predict_s / max(len(p_test), 1),
                "peak_rss_mb": memory.peak_mb,
                "predict_val_s": predict_val_s,
            },
            fit_info=fit_info,
            n_params=fit_info.get("n_params"),
            predictions={
                "val": np.round(p_val, PREDICTION_DECIMALS).tolist(),
                "test": np.round(p_test, PREDICTION_DECIMALS).tolist(),
            },
            skipped_images=skipped,
        )
        if job.save_model_to:
            from cxrbench.run.saving import save_job_model

            record["model_artifact"] = save_job_model(plugin, job, record)
    except Exception as err:  # a failing plugin is a result row, and the run goes on
        record["error"] = {
            "type": type(err).__name__,
            "message": str(err) or repr(err),
            "traceback": traceback.format_exc(limit=20),
        }
    if record["status"] == "ok":  # the whole job in its process: data, plugin, scoring
        record["timing"]["job_s"] = time.perf_counter() - job_start
    record["finished"] = utc_now()
    return record
