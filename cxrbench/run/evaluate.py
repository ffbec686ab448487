"""``cxrbench evaluate``: score a finished run's saved models on a labelled external set.

Steps: read the run's results -> find the saved model of every successful record (the run
recorded each folder and the sha256 of its ``model.json``) -> take the run folder's lock -> load
the external set, decode it once per input shape, score every model at its validation
threshold (:mod:`cxrbench.run.external`) -> the source check (:mod:`cxrbench.run.source_check`)
-> read the results again, put the entry in ``external[NAME]`` (replacing an older one of the
same name, nothing else touched), recompute the statistics, write atomically -> rewrite the
saved models' model cards (:mod:`cxrbench.run.cards`) -> re-render the report when the run has
one. An unreadable or one-class set becomes an error entry with its message. An interrupted
evaluate writes nothing: the file stays as it was.
``cxrbench run --external NAME=PATH`` calls :func:`evaluate_run` after its jobs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cxrbench.data import DataError, ImageCache, default_cache_dir, load_dataset
from cxrbench.plugins.artifacts import read_model_info
from cxrbench.plugins.persistence import ArtifactError
from cxrbench.results.io import ResultsError, read_results, write_results
from cxrbench.results.schema import SCHEMA_VERSION
from cxrbench.run.cards import refresh_model_cards
from cxrbench.run.config import RESERVED_SET_NAMES, check_external_name
from cxrbench.run.external import (
    ExternalSetError,
    SavedJob,
    error_entry,
    load_external,
    score_external_set,
)
from cxrbench.run.layout import REPORT_FILE, RESULTS_FILE
from cxrbench.run.lock import OutputBusyError, OutputLock
from cxrbench.run.source_check import METHOD, check_shape, sample_for_check, source_auc
from cxrbench.splits import SplitPlan
from cxrbench.stats import with_statistics


class EvaluateError(ValueError):
    """Evaluation cannot start: no results, no saved model, a bad name, a busy folder."""


@dataclass(frozen=True)
class EvaluateOutcome:
    """What an evaluation did: the entry's status and how many models scored."""

    results_path: Path
    name: str
    status: Literal["ok", "error"]
    n_ok: int
    n_failed: int
    message: str | None = None
    report_path: Path | None = None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_name(data_path: str | Path) -> str:
    """An external set's default name: its folder's (or manifest's) name, made safe; with its
    parent's name before it when that alone is a split's name (``other/test`` -> ``other_test``)."""
    path = Path(data_path).expanduser().absolute()
    stem = path.stem if path.is_file() else path.name
    if stem.lower() in RESERVED_SET_NAMES or (path.is_file() and stem.lower() == "manifest"):
        stem = f"{path.parent.name}_{stem}"
    safe = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in stem).strip("_.-")
    return safe[:64] or "external"


def results_path_of(run_dir: str | Path) -> Path:
    """The results file of a run folder (or the file itself, when given)."""
    path = Path(run_dir)
    return path if path.suffix == ".json" else path / RESULTS_FILE


def saved_jobs(results: dict[str, Any], run_dir: Path) -> tuple[list[SavedJob],
                                                                 dict[str, tuple[int, int]]]:
    """The saved model of every ok record, and the input shape each was trained on."""
    jobs, shapes = [], {}
    for record in results["records"]:
        artifact = record.get("model_artifact") or {}
        if record.get("status") != "ok" or not artifact.get("path"):
            continue
        threshold = record.get("threshold")
        jobs.append(SavedJob(job_id=record["job_id"], model=record["model"],
                             seed=int(record["seed"]),
                             threshold=0.5 if threshold is None else float(threshold),
                             folder=run_dir / artifact["path"],
                             model_json_sha256=artifact.get("model_json_sha256")))
        shapes[record["job_id"]] = (int(record["image_size"]), int(record["channels"]))
    return jobs, shapes


@contextlib.contextmanager
def folder_lock(folder: Path, take: bool, command: list[str] | None = None) -> Iterator[None]:
    """Hold the run folder's lock (``cxrbench.run.lock``, the one a run holds) for the block;
    refuse at once when another process (a run, another evaluate) holds it. ``take=False``:
    the caller holds it already."""
    if not take:
        yield
        return
    try:
        lock = OutputLock(folder, command).acquire()
    except OutputBusyError as err:
        raise EvaluateError(str(err)) from None
    try:
        yield
    finally:
        lock.release()


def _decoded_sample(records: Any, cache: ImageCache,
                    shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images (at ``shape``, from the cache) and patient ids of a check-sized sample."""
    index = sample_for_check(records["label"].to_numpy(), records["patient_id"].to_numpy(str))
    chosen = records.iloc[index]
    cached = cache.load(chosen, *shape)
    groups = chosen.set_index("record_id").loc[cached.record_ids, "patient_id"]
    return cached.images, groups.to_numpy(dtype=str)


def _training_data(results: dict[str, Any], jobs: list[SavedJob], cache: ImageCache) -> Any:
    """The run's data set, found where its models say they were trained (a manifest's CSV
    path) or where the results say it is; checked against the run's data hash."""
    data = (results.get("provenance") or {}).get("data") or {}
    candidates = []
    outside = False  # the run's --allow-outside-root, as its models recorded it
    for job in jobs[:1]:
        with contextlib.suppress(ArtifactError):
            info = read_model_info(job.folder, expected_sha256=job.model_json_sha256)
            training = info.get("training") or {}
            candidates.append(training.get("data_path"))
            outside = bool(training.get("allow_outside_root", False))
    candidates.append(data.get("path"))
    problems = []
    for path in dict.fromkeys(c for c in candidates if c):
        try:
            dataset = load_dataset(path, cache_dir=cache.root, allow_outside_root=outside)
        except DataError as err:
            problems.append(str(err))
            continue
        if dataset.data_hash == data.get("data_hash"):
            return dataset
        problems.append(f"the data at {path} changed since the run")
    raise DataError("; ".join(problems) or "the results do not say where the data is")


def _source_checks(results: dict[str, Any], run_dir: Path, jobs: list[SavedJob],
                   shape: tuple[int, int], external: Any, cache: ImageCache,
                   ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Source checks of val and test (when not yet done) and of the external set, on images
    of ``shape`` (both sides are in the cache already: see cxrbench.run.source_check)."""
    try:
        dataset = _training_data(results, jobs, cache)
        plan = SplitPlan.load(run_dir / (results["split"].get("file") or "split_plan.json"))
    except (DataError, OSError, ValueError, KeyError) as err:
        reason = {"status": "error", "error": f"training images unavailable: {err}"}
        return {"val": reason, "test": reason}, reason
    records = dataset.records.set_index("record_id", drop=False)
    train_images, train_groups = _decoded_sample(records.loc[list(plan.ids("train"))], cache,
                                                 shape)
    internal = dict(results.get("source_check") or {})
    for split in ("val", "test"):  # once per run and shape: the run's images do not change
        done = internal.get(split) or {}
        if done.get("status") != "ok" or done.get("method") != METHOD or (
                done.get("image_size"), done.get("channels")) != shape:
            images, groups = _decoded_sample(records.loc[list(plan.ids(split))], cache, shape)
            internal[split] = _checked(train_images, train_groups, images, groups)
    outside = None
    if external is not None:
        images, groups = _decoded_sample(external.records, cache, shape)
        outside = _checked(train_images, train_groups, images, groups)
    return internal, outside


def _checked(*args: Any) -> dict[str, Any]:
    try:
        return source_auc(*args)
    except ValueError as err:
        return {"status": "error", "error": str(err)}


def evaluate_run(run_dir: str | Path, data_path: str | Path, *, name: str | None = None,
                 cache_dir: str | Path | None = None, command: list[str] | None = None,
                 progress: bool = False, take_lock: bool = True,
                 report: bool = True, allow_outside_root: bool = False,
                 cards: bool = True) -> EvaluateOutcome:
    """Score every saved model of the run in ``run_dir`` on the set at ``data_path``.

    Raises EvaluateError when it cannot start (no results file, no saved model, bad name, busy
    folder, missing data path); a set that cannot be scored is an error entry in the results.
    ``allow_outside_root`` lets the set's manifest list files outside its folder. ``cards``:
    rewrite the saved models' model cards with the new set (a run does it once, after all
    its sets).
    """
    results_path = results_path_of(run_dir)
    run_dir = results_path.parent
    name = check_external_name(name or default_name(data_path), "--name")
    if not Path(data_path).expanduser().exists():
        raise EvaluateError(f"external data set {data_path} does not exist; pass --data PATH "
                            "(a folder with NORMAL/ and PNEUMONIA/, a Kaggle layout or a CSV "
                            "manifest)")
    try:
        results = read_results(results_path)
    except ResultsError as err:
        raise EvaluateError(str(err)) from err
    jobs, shapes = saved_jobs(results, run_dir)
    if not jobs:
        raise EvaluateError(f"{results_path} has no saved model: run it again with "
                            "--save-models (models are saved to OUT/models/<job_id>/)")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    with folder_lock(run_dir, take_lock, command):
        _log(f"evaluate {name}: {len(jobs)} saved model(s) on {data_path}")
        external = None
        try:
            external = load_external(data_path, cache_dir,
                                     allow_outside_root=allow_outside_root)
            entry = score_external_set(external, jobs, shapes, cache_dir, progress=progress,
                                       on_model=_report_model)
        except ExternalSetError as err:
            entry = error_entry(data_path, err)
            _log(f"evaluate {name}: ERROR {err}")
        entry["command"] = command
        internal, outside = _source_checks(
            results, run_dir, jobs, check_shape(sorted(set(shapes.values()))),
            external if entry["status"] == "ok" else None, ImageCache(cache_dir))
        if outside is not None:
            entry["source_check"] = outside
        results = read_results(results_path)  # as it is now: nothing else is lost
        results.setdefault("external", {})[name] = entry
        results["source_check"] = internal
        results["schema_version"] = SCHEMA_VERSION
        results = with_statistics(results)
        write_results(results_path, results)
        if cards:
            refresh_model_cards(results, run_dir)
        report_path = None
        if report and (run_dir / REPORT_FILE).exists():
            from cxrbench.report import render_report

            report_path = render_report(results, run_dir / REPORT_FILE)
    scored = entry.get("records") or {}
    n_ok = sum(r["status"] == "ok" for r in scored.values())
    message = (entry.get("error") or {}).get("message")
    return EvaluateOutcome(results_path=results_path, name=name, status=entry["status"],
                           n_ok=n_ok, n_failed=len(scored) - n_ok, message=message,
                           report_path=report_path)


def _report_model(job_id: str, entry: dict[str, Any]) -> None:
    if entry["status"] != "ok":
        error = entry.get("error") or {}
        _log(f"  {job_id}: ERROR {error.get('type')}: {error.get('message')}")
        return
    metrics, timing = entry["metrics"], entry["timing"]
    auc = metrics.get("roc_auc")
    _log(f"  {job_id}: ROC AUC {'nan' if auc is None else f'{auc:.3f}'}, sensitivity "
         f"{metrics['recall']:.3f}, specificity {metrics['specificity']:.3f} at threshold "
         f"{entry['threshold']:.3f} (load {timing['load_s']:.1f}s, predict "
         f"{timing['predict_s']:.1f}s)")
