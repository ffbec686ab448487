"""``cxrbench evaluate`` on 1,000 external images, per saved model, from a cold cache.

Side by side, per model: ``evaluate_run`` (decode through the image cache in a process pool,
verify and load the model, predict, statistics, source check, write the results) against the
obvious alternative, a plain loop (decode each file with Pillow in this process, load the
model, ``predict_proba`` on the stacked array; no cache, no statistics, no source check).

Needs ``CXRBENCH_DATA`` (the 1,000 images are made from it) and ``CXRBENCH_EVAL_RUN``, the
output folder of a ``cxrbench run --save-models`` on that data; skips with the reason
otherwise. The images: 500 per class from the train split (a sample drawn afresh for every
test), re-encoded as 512 x 512 PNG in flat class folders (another size and format than the
224 px JPEGs the models were trained on; the timing, not the scores, is what this measures).
As after a real run, the run's own images are in the cache (warmed once per session: the
source check reads a sample of them) and the external images are not: every one is decoded
and its features computed within the timing. The machine's load average is recorded in
``extra_info`` with every timing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import stratified_sample

EVAL_RUN_ENV = "CXRBENCH_EVAL_RUN"
N_IMAGES = 1000
SIZE = 512


def _saved_jobs() -> list[str]:
    run = os.environ.get(EVAL_RUN_ENV)
    try:
        results = json.loads((Path(run) / "results.json").read_text()) if run else {}
    except OSError:
        return []
    return [r["job_id"] for r in results.get("records", [])
            if (r.get("model_artifact") or {}).get("path")]


JOBS = _saved_jobs() or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"{EVAL_RUN_ENV} not set (or has no saved model): point it at the folder of a "
           "`cxrbench run --save-models`"))]


@pytest.fixture(scope="session")
def warm_run_cache(real_dataset, bench_cache_dir) -> Path:
    """The cache after the run: every image of the data at each saved model's shape."""
    from cxrbench.data import ImageCache

    results = json.loads((Path(os.environ[EVAL_RUN_ENV]) / "results.json").read_text())
    shapes = {(r["image_size"], r["channels"]) for r in results["records"]
              if (r.get("model_artifact") or {}).get("path")}
    for size, channels in sorted(shapes):
        ImageCache(bench_cache_dir).load(real_dataset.records, size, channels)
    return bench_cache_dir


_SAMPLES = iter(range(1, 1000))  # a new sample (new files, cold in every cache) per test


@pytest.fixture
def external_1000(real_dataset, tmp_path) -> Path:
    from PIL import Image

    train = real_dataset.records[real_dataset.records["source_split"] == "train"]
    sample = stratified_sample(train, N_IMAGES, seed=next(_SAMPLES))
    root = tmp_path / "external1000"
    for path, label in zip(sample["path"], sample["label"], strict=True):
        folder = root / ("PNEUMONIA" if label else "NORMAL")
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            im.convert("L").resize((SIZE, SIZE), Image.Resampling.BICUBIC).save(
                folder / (Path(path).stem + ".png"))
    return root


def _one_model_run(job_id: str, dst: Path) -> Path:
    """A copy of the saved run where only ``job_id`` has a saved model."""
    src = Path(os.environ[EVAL_RUN_ENV])
    dst.mkdir(parents=True)
    results = json.loads((src / "results.json").read_text())
    for record in results["records"]:
        if record["job_id"] != job_id:
            record.pop("model_artifact", None)
    (dst / "results.json").write_text(json.dumps(results))
    shutil.copy(src / "split_plan.json", dst / "split_plan.json")
    shutil.copytree(src / "models" / job_id, dst / "models" / job_id)
    return dst


def _load() -> float:
    return os.getloadavg()[0]


@pytest.mark.parametrize("job_id", JOBS)
def test_evaluate_1000_images(benchmark, job_id, external_1000, warm_run_cache, tmp_path):
    from cxrbench.run.evaluate import evaluate_run

    run = _one_model_run(job_id, tmp_path / "run")
    cache = warm_run_cache  # the run's images warm; the new external files are not
    load_before = _load()
    outcome = benchmark.pedantic(evaluate_run, args=(run, external_1000),
                                 kwargs={"name": "speed", "cache_dir": cache, "report": False},
                                 rounds=1, iterations=1)
    entry = json.loads((run / "results.json").read_text())["external"]["speed"]
    scored = entry["records"][job_id]
    assert outcome.n_ok == 1 and len(entry["ids"]) == N_IMAGES
    benchmark.extra_info.update(
        images=N_IMAGES, load_average_before=load_before, load_average_after=_load(),
        decode_s=entry["decode_s"], model_load_s=scored["timing"]["load_s"],
        predict_s=scored["timing"]["predict_s"],
        source_check_auc=(entry.get("source_check") or {}).get("roc_auc"))


@pytest.mark.parametrize("job_id", JOBS)
def test_plain_loop_1000_images(benchmark, job_id, external_1000, tmp_path):
    from cxrbench.data.decode import decode_image
    from cxrbench.plugins.artifacts import load_model
    from cxrbench.plugins.contract import ImageSet

    folder = Path(os.environ[EVAL_RUN_ENV]) / "models" / job_id
    files = sorted(external_1000.rglob("*.png"))

    def plain() -> np.ndarray:
        saved = load_model(folder)
        images = np.stack([decode_image(f, saved.input_size, saved.channels) for f in files])
        ids = np.asarray([str(f) for f in files])
        return saved.plugin.predict_proba(ImageSet(images, None, ids, ids, ids,
                                                   cache_dir=tmp_path / "cold-features"))

    load_before = _load()
    start = time.perf_counter()
    p = benchmark.pedantic(plain, rounds=1, iterations=1)
    assert len(p) == N_IMAGES
    benchmark.extra_info.update(images=N_IMAGES, load_average_before=load_before,
                                load_average_after=_load(),
                                wall_s=time.perf_counter() - start)
