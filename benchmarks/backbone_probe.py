"""Frozen ImageNet backbones as feature extractors: linear-probe validation AUC and extraction time.

For each backbone (EfficientNet-Lite0 and MobileNetV2-0.35 with ImageNet weights, and
EfficientNet-Lite0 from a random initialisation) and each input size, every image of the data
set goes through the backbone once (global average pooling of its last feature map, batches of
64; timed, with the machine's load before and after), then a logistic regression on the
standardised training features is scored on validation. Its inverse regularisation ``C`` is
chosen by 5-fold patient-grouped cross-validation on the training images (ROC AUC).

The split is cxrbench's own (``make_split_plan``, seed 0, default validation fraction). The
official test images are passed through the backbone only so that the time covers all images,
as a run's would; their features are dropped at once, and neither their labels nor any score
on them is read. Run (one CPU-heavy pass, a few minutes on 2 cores)::

    nice -n 10 .venv/bin/python benchmarks/backbone_probe.py --data "$CXRBENCH_DATA" \
        --sizes 128,224 --out probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BACKBONES = (  # (label, backbone, alpha, weights)
    ("EfficientNetLite0 imagenet", "EfficientNetLite0", None, "imagenet"),
    ("MobileNetV2-0.35 imagenet", "MobileNetV2", 0.35, "imagenet"),
    ("EfficientNetLite0 random", "EfficientNetLite0", None, None),
)


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def extractor(backbone: str, alpha: float | None, weights: str | None, size: int):
    """The frozen backbone with global average pooling, built as transfer plugins build it."""
    import keras

    from cxrbench.plugins.transfer import application
    from cxrbench.plugins.weights import resolve_weights

    constructor, preprocess = application(backbone)
    resolved = resolve_weights(weights, backbone=backbone, alpha=alpha)
    kwargs = {"include_top": False, "input_shape": (size, size, 3), "weights": None}
    if alpha is not None:
        kwargs["alpha"] = alpha
    keras.utils.set_random_seed(0)
    base = constructor(**kwargs)
    if resolved.path is not None:
        base.load_weights(str(resolved.path))
    pooled = keras.Model(base.input, keras.layers.GlobalAveragePooling2D()(base.output))
    return pooled, preprocess, resolved.info()


def extract(model, preprocess, images: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(images), batch):
        x = np.asarray(images[start:start + batch], dtype=np.float32)
        out.append(np.asarray(model.predict_on_batch(preprocess(x)), dtype=np.float32))
    return np.concatenate(out)


def probe(x_train, y_train, g_train, x_val, y_val) -> dict[str, float]:
    """Logistic regression, C by grouped 5-fold CV on train (ROC AUC), scored on val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))

    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    cv = {c: float(np.mean(cross_val_score(model(c), x_train, y_train, groups=g_train,
                                           cv=folds, scoring="roc_auc")))
          for c in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)}
    best = max(cv, key=cv.get)
    fitted = model(best).fit(x_train, y_train)
    val_auc = roc_auc_score(y_val, fitted.predict_proba(x_val)[:, 1])
    return {"C": best, "train_cv_auc": round(cv[best], 4), "val_auc": round(float(val_auc), 4),
            "cv_by_C": {str(k): round(v, 4) for k, v in cv.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("CXRBENCH_DATA"))
    parser.add_argument("--sizes", default="128,224")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.data:
        parser.error("give --data or set CXRBENCH_DATA")

    import keras

    from cxrbench.data import ImageCache, load_dataset
    from cxrbench.splits import make_split_plan

    dataset = load_dataset(args.data)
    plan = make_split_plan(dataset.records, seed=0)
    records = dataset.records.set_index("record_id", drop=False)
    order = list(plan.ids("train")) + list(plan.ids("val")) + list(plan.ids("test"))
    n_train, n_val = len(plan.ids("train")), len(plan.ids("val"))
    rows = records.loc[order]
    y = rows["label"].to_numpy()[: n_train + n_val]  # test labels are never read
    groups = rows["patient_id"].to_numpy()[:n_train]
    cache = ImageCache()
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "keras": keras.__version__,
                    "backend": keras.backend.backend()},
        "split": {"seed": 0, "sha256": plan.sha256, "train": n_train, "val": n_val,
                  "images_extracted": len(order)},
        "runs": [],
    }
    for size in [int(s) for s in args.sizes.split(",")]:
        cached = cache.load(rows, size, 3)
        if len(cached.failed):
            print(f"{len(cached.failed)} images failed to decode", file=sys.stderr)
            return 2
        for label, backbone, alpha, weights in BACKBONES:
            model, preprocess, info = extractor(backbone, alpha, weights, size)
            extract(model, preprocess, cached.images[:64])  # trace the graph outside the clock
            load_before = load_avg()
            start = time.perf_counter()
            feats = extract(model, preprocess, cached.images)
            seconds = time.perf_counter() - start
            load_after = load_avg()
            feats = feats[: n_train + n_val]  # the test images' features are dropped unread
            scores = probe(feats[:n_train], y[:n_train], groups, feats[n_train:], y[n_train:])
            run = {"backbone": label, "size": size, "features": int(feats.shape[1]),
                   "extract_seconds": round(seconds, 1),
                   "images_per_second": round(len(order) / seconds, 1),
                   "load_before": load_before, "load_after": load_after,
                   "weights_sha256": info["weights_sha256"], **scores}
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
