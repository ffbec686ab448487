"""One step of the scaling benchmark in a fresh process; prints one JSON line.

    python benchmarks/scaling_probe.py STEP DATA_ROOT CACHE_DIR [MODEL [--param K=JSON ...]]

Steps: ``ingest`` (``load_dataset``: file hashes and headers, then ``ImageCache.load`` of every
image at 128 px; cold or warm depending on CACHE_DIR), ``audit`` (``audit_dataset``), ``split``
(``make_split_plan``), ``features`` (the two-scale HOG of hog_svm/hog_mlp at 16 px cells, on
the training images, into CACHE_DIR's feature cache) and ``fit`` (MODEL fitted on every
``train/`` image at its card's input size, as a run gives it, validated on the first half of
``test/``, predicting the second half).
Reported: wall and CPU seconds of the step (CPU of every thread and reaped worker process),
and peak resident memory (VmHWM) of this process and of its largest child, in MB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from abtest import cpu_seconds  # noqa: E402

SIZE = 128


def _peaks() -> dict[str, float]:
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_child_rss_mb": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def _image_sets(root: Path, cache_dir: Path, size: int = SIZE,
                channels: int = 1) -> dict[str, object]:
    import numpy as np

    from cxrbench.data import ImageCache, load_dataset
    from cxrbench.plugins.contract import ImageSet

    dataset = load_dataset(root, cache_dir=cache_dir)
    rec = dataset.records.sort_values("record_id")
    test = rec[rec["source_split"] == "test"]
    half = np.arange(len(test)) % 2 == 0
    parts = {"train": rec[rec["source_split"] == "train"], "val": test[half], "test": test[~half]}
    sets = {}
    for name, part in parts.items():
        cached = ImageCache(cache_dir).load(part, size, channels)
        rows = part.set_index("record_id").loc[cached.record_ids]
        sets[name] = ImageSet(cached.images, rows["label"].to_numpy(np.int8),
                              np.asarray(cached.record_ids), rows["content_hash"].to_numpy(str),
                              rows["patient_id"].to_numpy(str), cache_dir=cache_dir)
    return sets


def main() -> None:
    step, root, cache_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    import pandas  # noqa: F401  # imports before the clock

    import cxrbench.data.cache  # noqa: F401
    import cxrbench.data.readers  # noqa: F401
    from cxrbench.data import ImageCache, load_dataset

    out: dict[str, object] = {"step": step}
    if step == "ingest":
        c0, t0 = cpu_seconds(), time.perf_counter()
        dataset = load_dataset(root, cache_dir=cache_dir)
        t1, c1 = time.perf_counter(), cpu_seconds()
        cached = ImageCache(cache_dir).load(dataset.records, SIZE, 1)
        out.update(images=len(dataset.records), decoded=cached.n_decoded,
                   scan_s=round(t1 - t0, 3), scan_cpu_s=round(c1 - c0, 3),
                   cache_s=round(time.perf_counter() - t1, 3),
                   cache_cpu_s=round(cpu_seconds() - c1, 3))
    elif step in ("audit", "split"):
        from cxrbench.data import audit_dataset
        from cxrbench.splits import make_split_plan

        dataset = load_dataset(root, cache_dir=cache_dir)
        c0, t0 = cpu_seconds(), time.perf_counter()
        if step == "audit":
            report = audit_dataset(dataset)
            out["duplicate_groups"] = len(report["duplicate_groups"])
        else:
            plan = make_split_plan(dataset.records)
            out["counts"] = [len(plan.train_ids), len(plan.val_ids), len(plan.test_ids)]
        out["images"] = len(dataset.records)
    elif step == "features":
        from cxrbench.plugins.features import ExtractionStats
        from cxrbench.plugins.hog import hog_pyramid

        train = _image_sets(root, cache_dir)["train"]
        stats = ExtractionStats()
        c0, t0 = cpu_seconds(), time.perf_counter()
        feats = hog_pyramid(train, 16, SIZE, stats)
        out.update(images=len(train), n_features=int(feats.shape[1]), **stats.as_dict())
    elif step == "fit":
        from sklearn.metrics import roc_auc_score

        from cxrbench.plugins.registry import create_model, get_card

        model = sys.argv[4]
        params = {}
        for item in sys.argv[5:]:
            key, _, value = item.removeprefix("--param=").partition("=")
            params[key] = json.loads(value)
        card = get_card(model)  # each plugin gets the input a run gives it: its card's
        size = int(params.get("input_size", card.input_size))
        channels = int(params.get("channels", card.channels))
        sets = _image_sets(root, cache_dir, size, channels)
        plugin = create_model(model, seed=0, **params)
        c0, t0 = cpu_seconds(), time.perf_counter()
        plugin.fit(sets["train"], sets["val"])
        fit_s = time.perf_counter() - t0
        p_val = plugin.predict_proba(sets["val"].without_labels())
        t1 = time.perf_counter()
        plugin.predict_proba(sets["test"].without_labels())
        info = plugin.fit_info_
        out.update(model=model, params=params, images=len(sets["train"]), input_size=size,
                   channels=channels,
                   fit_s=round(fit_s, 3), predict_test_s=round(time.perf_counter() - t1, 3),
                   n_test=len(sets["test"]),
                   val_auc=round(float(roc_auc_score(sets["val"].labels, p_val)), 5),
                   method=info.get("method"), images_per_epoch=info.get("images_per_epoch"),
                   epochs_run=info.get("epochs_run"), precision=(info.get("precision") or {})
                   .get("used"))
    else:
        raise SystemExit(f"unknown step {step!r}")
    out.update(wall_s=round(time.perf_counter() - t0, 3), cpu_s=round(cpu_seconds() - c0, 3),
               load_1min=round(os.getloadavg()[0], 2), **_peaks())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
