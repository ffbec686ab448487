"""The report's saliency (``cxrbench report --saliency``): load each top model's saved model,
compute its maps on the images the report shows, and summarise where it looks.

Only asked for: loading models and scoring hundreds of occluded copies costs time (progress is
printed), so neither a plain ``cxrbench report`` nor the run's automatic report does it.

For each of the top models (the gallery's), the record drawn in the figures is looked up, and
its saved model (``model_artifact`` in the record: the folder under the run and the sha256 of
its ``model.json``) is verified and loaded by :func:`cxrbench.plugins.artifacts.load_model`. A
record without a saved model, or a model that fails verification (modified, incomplete), is
listed with the reason and the rest of the report goes on. Images are decoded from the data
root as the model's training images were (its size and channels), and each model gets:

- the images it is shown with (its gallery errors, then the hard cases), at most
  ``max_images``: occlusion and, for Keras networks, Grad-CAM overlays;
- ``sample`` random test images (seeded, the same for every model), for the summary only: the
  errors shown are not a fair sample of where a model looks.

Occluded copies are scored with a feature cache of their own, deleted afterwards, so they
never enter the run's cache. The saved model's probability on each unoccluded image is checked
against the one the run recorded (the largest difference is shown).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.report.gallery import ERRORS_PER_KIND, path_inside
from cxrbench.report.hard_cases import PER_KIND
from cxrbench.report.saliency import (
    FALLBACK_BOX,
    OCCLUSION_PATCH,
    OCCLUSION_STEPS,
    display_scale,
    occlusion_maps,
    outside_share,
    thorax_region,
)
from cxrbench.report.saliency_figures import METHOD_LABELS, overlay_data_uri, share_figure

DEFAULT_MAX_IMAGES = 2 * ERRORS_PER_KIND + 2 * PER_KIND  # all the gallery and hard cases show
DEFAULT_SAMPLE = 16  # also stated in `cxrbench report --help` (checked by a test)
SAMPLE_SEED = 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SaliencyRequest:
    """What ``render_report(..., saliency=...)`` computes: ``run_dir`` is the folder the saved
    models' paths are relative to (the results file's folder)."""

    run_dir: Path
    max_images: int = DEFAULT_MAX_IMAGES
    sample: int = DEFAULT_SAMPLE
    progress: Callable[[str], None] = field(default=_stderr)


def _shown_ids(model: str, gallery: dict[str, Any] | None, hard: dict[str, Any] | None,
               limit: int) -> list[str]:
    ids: list[str] = []
    for m in (gallery or {}).get("models") or []:
        if m["model"] == model:
            ids += [item["record_id"] for item in m["items"]]
    if hard and model in hard["models"]:
        ids += [item["record_id"] for item in hard["items"]]
    return list(dict.fromkeys(ids))[:limit]


def _decode(root: Path, record_ids: list[str], size: int, channels: int
            ) -> tuple[list[str], np.ndarray]:
    from cxrbench.data.decode import ImageDecodeError, decode_image

    kept, pixels = [], []
    for record_id in record_ids:
        try:
            pixels.append(decode_image(path_inside(root, record_id), size, channels))
            kept.append(record_id)
        except (ImageDecodeError, OSError):
            continue
    shape = (0, size, size, channels)
    return kept, np.stack(pixels) if pixels else np.zeros(shape, dtype=np.uint8)


def _predictor(plugin: Any, cache_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    from cxrbench.plugins.contract import ImageSet

    def predict(images: np.ndarray) -> np.ndarray:
        # Each copy's own pixel hash: feature caches must not mistake it for the original.
        hashes = np.asarray([hashlib.sha256(np.ascontiguousarray(im)).hexdigest()
                             for im in images])
        ids = np.asarray([f"copy-{i}" for i in range(len(images))])
        return plugin.predict_proba(ImageSet(images=images, labels=None, ids=ids,
                                             content_hashes=hashes, groups=ids,
                                             cache_dir=cache_dir))
    return predict


def _gray(images: np.ndarray) -> np.ndarray:
    return np.round(images.astype(np.float32).mean(axis=-1)).astype(np.uint8)


def _model_maps(saved: Any, images: np.ndarray, threshold: float
                ) -> tuple[dict[str, np.ndarray], np.ndarray, str | None]:
    """Maps by method, probabilities, and why Grad-CAM is missing (None when computed)."""
    from cxrbench.report.gradcam import GradCamUnavailable, gradcam_maps

    with tempfile.TemporaryDirectory(prefix="cxrbench-saliency-") as cache:
        occlusion, p = occlusion_maps(_predictor(saved.plugin, Path(cache)), images, threshold)
    maps = {"occlusion": occlusion}
    try:
        maps["gradcam"] = gradcam_maps(saved.plugin, images, threshold)
        reason = None
    except GradCamUnavailable as err:
        reason = str(err)
    return maps, p, reason


def _one_model(pick: dict[str, Any], record: dict[str, Any], request: SaliencyRequest,
               root: Path, shown: list[str], sample: list[str], test_ids: list[str]
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    from cxrbench.plugins.artifacts import load_model
    from cxrbench.plugins.persistence import ArtifactError

    entry: dict[str, Any] = {"model": pick["model"], "job_id": pick["job_id"], "status": "ok",
                             "message": None, "methods": []}
    artifact = record.get("model_artifact") or {}
    if not artifact.get("path"):
        entry.update(status="missing", message="no saved model: run with --save-models")
        return entry, {}
    start = time.perf_counter()
    try:
        saved = load_model(request.run_dir / artifact["path"],
                           expected_sha256=artifact.get("model_json_sha256"))
    except ArtifactError as err:
        entry.update(status="error", message=f"saved model refused: {err}")
        request.progress(f"saliency: {pick['job_id']}: {entry['message']}")
        return entry, {}
    threshold = saved.threshold
    kept, images = _decode(root, shown + sample, saved.input_size, saved.channels)
    request.progress(f"saliency: {pick['job_id']}: {len(kept)} image(s) at "
                     f"{saved.input_size} px, {OCCLUSION_STEPS ** 2} occluded copies each")
    if not kept:
        entry.update(status="error", message="none of its images could be read")
        return entry, {}
    try:
        maps, p, gradcam_note = _model_maps(saved, images, threshold)
    except Exception as err:  # noqa: BLE001  # a plugin failing to predict: listed, not fatal
        entry.update(status="error", message=f"{type(err).__name__}: {err}")
        request.progress(f"saliency: {pick['job_id']}: ERROR {entry['message']}")
        return entry, {}
    gray = _gray(images)
    position = {rid: i for i, rid in enumerate(test_ids)}
    recorded = np.asarray([pick["p"][position[rid]] for rid in kept], dtype=float)
    per_image: dict[str, Any] = {}
    shares: dict[str, dict[str, list[float | None]]] = {m: {"random": [], "shown": []}
                                                         for m in maps}
    areas, found = [], 0
    shown_set = set(shown)
    for i, record_id in enumerate(kept):
        region = thorax_region(gray[i])
        areas.append(region.outside_area)
        found += region.found
        item = {"p": float(p[i]), "found": region.found, "overlays": {}, "share": {}}
        for method, stack in maps.items():
            share = outside_share(stack[i], region)
            item["share"][method] = share
            shares[method]["shown" if record_id in shown_set else "random"].append(share)
            if record_id in shown_set:
                item["overlays"][method] = overlay_data_uri(gray[i], display_scale(stack[i]),
                                                            region.box)
        if record_id in shown_set:
            per_image[record_id] = item
    seconds = time.perf_counter() - start
    entry.update(methods=list(maps), gradcam_note=gradcam_note, seconds=seconds,
                 n_shown=sum(r in shown_set for r in kept), n_random=len(kept) - sum(
                     r in shown_set for r in kept), n_unreadable=len(shown) + len(sample)
                 - len(kept), max_p_diff=float(np.max(np.abs(p - recorded))),
                 boxes_found=found,
                 shares=shares, area=float(np.mean(areas)), input_size=saved.input_size)
    request.progress(f"saliency: {pick['job_id']}: done in {seconds:.1f} s"
                     + (f" (no Grad-CAM: {gradcam_note})" if gradcam_note else ""))
    return entry, per_image


def _summary_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for entry in models:
        for method in entry.get("methods") or []:
            values = entry["shares"][method]
            random = [s for s in values["random"] if s is not None]
            shown = [s for s in values["shown"] if s is not None]
            q = np.percentile(random, [25, 50, 75]) if random else [None] * 3
            rows.append({"model": entry["model"], "method": method,
                         "random": values["random"], "shown": values["shown"],
                         "n_random": len(random), "q1": q[0], "median": q[1], "q3": q[2],
                         "n_shown": len(shown),
                         "median_shown": float(np.median(shown)) if shown else None,
                         "area": entry["area"]})
    return rows


def saliency_context(results: dict[str, Any], request: SaliencyRequest,
                     picks: list[dict[str, Any]], gallery: dict[str, Any] | None,
                     hard: dict[str, Any] | None, test_ids: list[str],
                     data_root: Path | None, styles: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows of saliency (see the module docstring). ``picks``: the top
    models' gallery picks (``model``, ``job_id``, ``p`` on the test ids)."""
    base = {"region_fallback": FALLBACK_BOX, "patch": OCCLUSION_PATCH,
            "steps": OCCLUSION_STEPS, "sample": request.sample, "maps": {}, "models": [],
            "rows": [], "figure": None, "labels": METHOD_LABELS, "seconds": 0.0}
    if data_root is None or not Path(data_root).is_dir():
        return {**base, "note": "the test images are not reachable: no saliency"}
    records = {r["job_id"]: r for r in results.get("records", [])}
    rng = np.random.default_rng(SAMPLE_SEED)
    candidates = np.asarray(test_ids, dtype=str)
    sample_all = [str(s) for s in rng.permutation(candidates)] if len(candidates) else []
    start = time.perf_counter()
    for pick in picks:
        shown = _shown_ids(pick["model"], gallery, hard, request.max_images)
        sample = [s for s in sample_all if s not in set(shown)][:request.sample]
        entry, per_image = _one_model(pick, records.get(pick["job_id"], {}), request,
                                      Path(data_root), shown, sample, test_ids)
        base["models"].append(entry)
        if per_image:
            base["maps"][pick["model"]] = per_image
    base["rows"] = _summary_rows(base["models"])
    base["figure"] = share_figure(base["rows"], styles)
    base["seconds"] = time.perf_counter() - start
    base["note"] = "" if base["maps"] else \
        "no top model has a usable saved model (run with --save-models)"
    return base
