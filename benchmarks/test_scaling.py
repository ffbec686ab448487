"""How cxrbench's cost grows with the number of images: 1k, 5k, 20k and 100k synthetic images.

For each size N, a synthetic data set (``make_synthetic_dataset``, 128 px, N ``train/`` images
and N/20 ``test/`` images, seed 0) is generated once into ``$CXRBENCH_SCALING_DIR`` (default:
``<cxrbench cache>/scaling``) and reused. Every step runs in a fresh process
(``scaling_probe.py``) that reports wall and CPU seconds and peak memory (VmHWM):

- cold ingestion (file hashes and headers, decode into an empty image cache) and warm ingestion;
- the audit (every file decoded natively and its pixels hashed; duplicates found by hash) and
  the split plan;
- classical feature extraction (two-scale HOG of every training image, cold feature cache);
- fit + predict of one or more plugins per family (baseline, classical, mlp, cnn, transfer),
  trained on all N ``train/`` images, validated on half of ``test/``, predicting the other half.
  Capped so that the 100k step stays affordable on 2 cores, the same cap at every size:
  hog_xgboost 300 trees, hog_mlp 5 epochs, deep plugins one epoch of at most 60 batches
  (``steps_per_epoch``: a fraction of an epoch above 1,920 images; their cost is reported per
  image trained). The HOG features come from the feature-extraction step's cache.

Every built-in plugin is fitted (the probe and the ensemble with the converted
EfficientNet-Lite0 weights when the user's cache has them). ``CXRBENCH_SCALING_ONLY=fit:probe,
fit:ensemble`` runs only those steps on the existing caches (to finish a stopped run).

Results are appended to ``$CXRBENCH_SCALING_OUT`` (default ``.benchmarks/scaling.json``)
after every step, so a partial run keeps what it measured; ``plot_scaling.py`` draws the
log-log figure and the growth exponents. Sizes: ``CXRBENCH_SCALING_SIZES=1000,5000``.

    CXRBENCH_LONG_BENCHMARKS=1 pytest benchmarks/test_scaling.py -s   # hours at 100k, 2 cores
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from abtest import machine_note, run_probe

from cxrbench.data import default_cache_dir

SIZES = [int(s) for s in os.environ.get("CXRBENCH_SCALING_SIZES",
                                         "1000,5000,20000,100000").split(",")]
DEEP_STEPS = 60
FITS: dict[str, dict[str, object]] = {
    "majority": {},
    "pixels_logreg": {},
    "hog_svm": {},
    "hog_mlp": {"max_epochs": 5},
    "hog_xgboost": {"n_estimators": 300},
    "mlp_baseline": {"epochs": 1, "steps_per_epoch": DEEP_STEPS},
    "cnn_seed": {"epochs": 1, "steps_per_epoch": DEEP_STEPS},
    "cnn_strong": {"epochs": 1, "steps_per_epoch": DEEP_STEPS},
    "transfer_mobilenet": {"head_epochs": 0, "epochs": 1, "steps_per_epoch": DEEP_STEPS},
    "transfer_mobilenetv2": {"head_epochs": 0, "epochs": 1, "steps_per_epoch": DEEP_STEPS},
    "probe": {},  # frozen features of every image (the cost), then a logistic regression
    "ensemble": {"members": ["probe", "hog_svm"]},  # as in the full suite
}
# Only these steps (labels such as "fit:probe"), on the sizes' existing caches: to finish a
# run that stopped, or to add a plugin. Empty: every step, from an empty cache.
ONLY = {label for label in os.environ.get("CXRBENCH_SCALING_ONLY", "").split(",") if label}


def scaling_dir() -> Path:
    return Path(os.environ.get("CXRBENCH_SCALING_DIR") or default_cache_dir() / "scaling")


def synthetic_set(n: int) -> Path:
    """The N-image synthetic set, generated on first use (about 10 ms per image)."""
    from cxrbench.data import make_synthetic_dataset
    from cxrbench.data.synthetic import MARKER

    root = scaling_dir() / f"synthetic-{n}"
    if not (root / MARKER).is_file():
        make_synthetic_dataset(root, n_train=(n // 2, n - n // 2),
                               n_test=(max(50, n // 40),) * 2, size=128, seed=0)
    return root


def _save(entry: dict[str, object]) -> None:
    out = Path(os.environ.get("CXRBENCH_SCALING_OUT", ".benchmarks/scaling.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {"runs": []}
    data["runs"].append(entry)
    out.write_text(json.dumps(data, indent=1))


@pytest.mark.benchmark(group="scaling")
@pytest.mark.parametrize("n", SIZES)
def test_scaling(benchmark, long_benchmark, n: int) -> None:  # type: ignore[no-untyped-def]
    root = synthetic_set(n)
    cache = scaling_dir() / f"cache-{n}"
    if not ONLY:
        shutil.rmtree(cache, ignore_errors=True)
    # the converted EfficientNet-Lite0 weights (probe, ensemble), from the user's cache
    converted = sorted((default_cache_dir() / "weights").glob("efficientnet_lite*.weights.h5"))
    for path in converted:
        (cache / "weights").mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, cache / "weights" / path.name)
    # as the cxrbench command sets it (README 3.3): idle OpenMP threads sleep
    env = {"CXRBENCH_CACHE_DIR": str(cache),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    failed: list[str] = []

    def step(name: str, *args: str, label: str | None = None) -> dict[str, object]:
        try:
            result = run_probe("scaling_probe.py", [name, str(root), str(cache), *args],
                               env=env)
        except (RuntimeError, subprocess.TimeoutExpired) as err:  # e.g. out of memory: kept
            result = {"step": name, "status": "error", "error": str(err)[-2000:]}
            failed.append(label or name)
        entry = {"n": n, "label": label or name, "machine": machine_note(), **result}
        _save(entry)
        print(json.dumps(entry), flush=True)
        return result

    def wanted(label: str) -> bool:
        return not ONLY or label in ONLY

    def everything() -> None:
        if wanted("ingest_cold"):
            cold = step("ingest", label="ingest_cold")
            assert cold.get("decoded") == cold.get("images")
        if wanted("ingest_warm"):
            warm = step("ingest", label="ingest_warm")
            assert warm.get("decoded") == 0
        for name in ("audit", "split", "features"):
            if wanted(name):
                step(name)
        for model, params in FITS.items():
            if not wanted(f"fit:{model}"):
                continue
            if model.startswith("transfer") and not os.environ.get("CXRBENCH_WEIGHTS_DIR"):
                params = {**params, "weights": None}  # random init: the same cost per image
            if model in ("probe", "ensemble") and not converted:
                if model == "ensemble":  # its probe member needs the converted weights
                    print("skipping fit:ensemble: no converted EfficientNet-Lite0 weights in "
                          f"{default_cache_dir() / 'weights'} (cxrbench weights convert)")
                    continue
                params = {**params, "weights": None}
            args = [f"--param={k}={json.dumps(v)}" for k, v in params.items()]
            step("fit", model, *args, label=f"fit:{model}")

    benchmark.pedantic(everything, rounds=1, iterations=1)
    benchmark.extra_info["n"] = n
    assert not failed, f"steps that failed at {n} images: {failed}"
