"""One training probe in a fresh process: a plugin fitted on the real split, timed, one JSON line.

    python benchmarks/train_probe.py MODEL [--param KEY=JSON ...] [--predict]

Loads ``$CXRBENCH_DATA`` with the harness's default split plan (seed 0) through the image
cache (``$CXRBENCH_CACHE_DIR``), fits ``MODEL`` with the given parameters (e.g.
``--param epochs=2 --param precision='"bfloat16"'``) and prints wall and CPU seconds of the
fit, the per-epoch history (seconds, validation ROC AUC) and the execution settings the plugin
recorded. Thread settings are the environment's (``TF_NUM_INTRAOP_THREADS``, ...), set by the
caller before this process starts. ``--predict`` also times prediction and reports the
validation ROC AUC of the final model; test images are never scored here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from abtest import cpu_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--predict", action="store_true")
    parser.add_argument("--train-limit", type=int, default=0,
                        help="fit on N training images drawn at random, seed 0 (0: all)")
    args = parser.parse_args()
    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from cxrbench.data import ImageCache, default_cache_dir, load_dataset
    from cxrbench.plugins.registry import create_model, get_card
    from cxrbench.run.jobs import Job, load_job_data
    from cxrbench.splits import make_split_plan

    data = os.environ["CXRBENCH_DATA"]
    cache_dir = default_cache_dir()
    dataset = load_dataset(data, cache_dir=cache_dir)
    plan = make_split_plan(dataset.records)
    card = get_card(args.model)
    size, channels = int(params.get("input_size", card.input_size)), card.channels
    with tempfile.TemporaryDirectory() as tmp:
        plan_path = plan.save(Path(tmp) / "split_plan.json")
        records = dataset.records.set_index("record_id", drop=False)
        for split in ("train", "val"):
            ImageCache(cache_dir).load(records.loc[list(plan.ids(split))], size, channels)
        job = Job(model=args.model, seed=int(params.pop("seed", 0)), data_path=data,
                  data_hash=dataset.data_hash, split_plan_path=str(plan_path),
                  split_sha256=plan.sha256, cache_dir=str(cache_dir), threshold_rule="youden",
                  image_size=size, channels=channels)
        sets, _ = load_job_data(job)
    train, val = sets["train"], sets["val"]
    if args.train_limit and args.train_limit < len(train):
        pick = np.random.default_rng(0).choice(len(train), args.train_limit, replace=False)
        train = train.subset(np.sort(pick))
    plugin = create_model(args.model, seed=job.seed, **params)
    if get_card(args.model).framework == "keras":
        import keras  # noqa: F401  # the backend starts before the clock, as in a job process

    c0, t0 = cpu_seconds(), time.perf_counter()
    plugin.fit(train, val)
    fit_s, fit_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    info = plugin.fit_info_
    out = {
        "model": args.model, "params": params, "n_train": len(train),
        "fit_s": round(fit_s, 2), "fit_cpu_s": round(fit_cpu, 2),
        "epoch_s": [h["seconds"] for h in info.get("history", [])],
        "phases": [h.get("phase", "") for h in info.get("history", [])],
        "val_auc_per_epoch": [round(h["val_auc"], 5) for h in info.get("history", [])],
        "precision": info.get("precision"), "execution": info.get("execution"),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    if args.predict:
        t0 = time.perf_counter()
        p_val = plugin.predict_proba(val.without_labels())
        out["predict_val_s"] = round(time.perf_counter() - t0, 2)
        out["val_auc"] = round(float(roc_auc_score(val.labels, p_val)), 5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
