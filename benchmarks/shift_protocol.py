"""Development protocol for choosing recipes without the test split: standard validation,
a shift-aware (held-out acquisition series) validation, and the external development set.

Nothing here reads the official test split: only the ``train`` and ``val`` ids of cxrbench's
split plan (``make_split_plan``, split seed 0) are loaded.

Protocols (``--protocol``):

- ``standard``: fit on the plan's train split (validation = the plan's val split, for early
  stopping), score validation ROC AUC.
- ``series``: the normal films of ``train/`` come in two acquisition series, ``IM-`` and
  ``NORMAL2-IM-``. The held-out series (``--holdout NORMAL2`` or ``IM``) is removed from
  training and validation altogether. The plan's validation pneumonia patients are halved
  (grouped, seeded). The model is fitted on the rest of train (validation for early stopping:
  ``val_in`` = the kept series' validation normals + pneumonia half A); then it is scored on
  ``val_in`` and on ``val_shift`` = every normal film of the held-out series (train and val)
  + pneumonia half B: normals from an acquisition series the model never saw, against
  pneumonia patients it never saw. Each threshold rule is applied on ``val_in`` and its
  sensitivity and specificity read on ``val_shift``: how a rule transfers under a shift of
  the normal class.

Either way the fitted model also scores the external development set (``--external``; ROC AUC
with a 95 % stratified bootstrap interval; sensitivity and specificity at each rule's
validation threshold). One JSON line per model and protocol goes to ``--out`` (appended), with
the fit time and the machine's load average before and after.

    .venv/bin/python benchmarks/shift_protocol.py --models hog_svm,pixels_logreg \\
        --protocol both --out dev.jsonl [--param hog_svm.intensity='"clahe"']
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RULES = ("youden", "fixed:0.5", "sensitivity:0.95", "sensitivity:0.97", "sensitivity:0.98")


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def series_of(record_id: str) -> str:
    name = Path(record_id).name
    if name.startswith("NORMAL2-"):
        return "NORMAL2"
    if name.startswith("IM-"):
        return "IM"
    return "pneumonia"


def half_patients(rows: Any, seed: int) -> tuple[list[str], list[str]]:
    """The record ids of ``rows`` split into two halves by patient (seeded)."""
    patients = np.array(sorted(set(rows["patient_id"])))
    rng = np.random.default_rng([seed, 7])
    rng.shuffle(patients)
    a = set(patients[: len(patients) // 2])
    ids = rows["record_id"].tolist()
    pids = rows["patient_id"].tolist()
    return [i for i, p in zip(ids, pids, strict=True) if p in a], \
        [i for i, p in zip(ids, pids, strict=True) if p not in a]


def dev_splits(records: Any, plan: Any, protocol: str, holdout: str, seed: int
               ) -> dict[str, list[str]]:
    train, val = list(plan.ids("train")), list(plan.ids("val"))
    if protocol == "standard":
        return {"train": train, "val": val}
    by_id = records.set_index("record_id", drop=False)
    held = [i for i in train + val if series_of(i) == holdout]
    val_rows = by_id.loc[val]
    pneu = val_rows[val_rows["label"] == 1]
    half_a, half_b = half_patients(pneu, seed)
    val_normals_kept = [i for i in val if by_id.at[i, "label"] == 0 and series_of(i) != holdout]
    return {
        "train": [i for i in train if series_of(i) != holdout],
        "val_in": val_normals_kept + half_a,
        "val_shift": held + half_b,
    }


def image_set(records: Any, ids: list[str], size: int, channels: int, cache: Any,
              cache_dir: Path) -> Any:
    from cxrbench.plugins.contract import ImageSet

    rows = records.set_index("record_id", drop=False).loc[ids]
    cached = cache.load(rows, size, channels)
    if cached.failed:
        raise RuntimeError(f"{len(cached.failed)} images could not be decoded")
    rows = rows.loc[cached.record_ids]
    return ImageSet(images=cached.images, labels=rows["label"].to_numpy(dtype=np.int8),
                    ids=rows["record_id"].to_numpy(dtype=str),
                    content_hashes=rows["content_hash"].to_numpy(dtype=str),
                    groups=rows["patient_id"].to_numpy(dtype=str), cache_dir=cache_dir)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(y, p)), 4)


def auc_interval(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0
                 ) -> list[float]:
    """95 % stratified bootstrap interval of the ROC AUC (images resampled within class)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    values = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values.append(roc_auc_score(y[idx], p[idx]))
    return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]


def sens_spec(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = p >= threshold
    return {"sens": round(float(pred[y == 1].mean()), 4),
            "spec": round(float((~pred[y == 0]).mean()), 4)}


def spec_at_sens(y: np.ndarray, p: np.ndarray, target: float = 0.95) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return round(float(1 - fpr[np.flatnonzero(tpr >= target)[0]]), 4)


def run_one(name: str, params: dict[str, Any], seed: int, protocol: str, holdout: str,
            dataset: Any, plan: Any, external: Any, cache: Any, cache_dir: Path
            ) -> dict[str, Any]:
    from cxrbench.plugins.ensemble import member_shape
    from cxrbench.plugins.registry import create_model, get_card
    from cxrbench.scoring.thresholds import ThresholdRule

    plugin = create_model(name, seed=seed, **params)
    size, channels = member_shape(name, plugin.get_params())
    channels = int(params.get("channels", get_card(name).channels))
    ids = dev_splits(dataset.records, plan, protocol, holdout, seed=0)
    sets = {k: image_set(dataset.records, v, size, channels, cache, cache_dir)
            for k, v in ids.items()}
    fit_val = sets["val"] if protocol == "standard" else sets["val_in"]
    load_before = load_avg()
    start = time.perf_counter()
    plugin.fit(sets["train"], fit_val)
    fit_s = time.perf_counter() - start
    out: dict[str, Any] = {"model": name, "params": params, "seed": seed, "protocol": protocol,
                           "holdout": holdout if protocol == "series" else None,
                           "image_size": size, "channels": channels,
                           "n": {k: len(v) for k, v in sets.items()}}
    scored = {k: plugin.predict_proba(v.without_labels()) for k, v in sets.items()
              if k != "train"}
    y = {k: np.asarray(sets[k].labels, dtype=int) for k in scored}
    for k in scored:
        out[f"auc_{k}"] = auc(y[k], scored[k])
        out[f"spec_at_sens95_{k}"] = spec_at_sens(y[k], scored[k])
    ext = None
    if external is not None:
        ext_set = image_set(external.records, list(external.records["record_id"]), size,
                            channels, cache, cache_dir)
        p_ext = plugin.predict_proba(ext_set.without_labels())
        y_ext = np.asarray(ext_set.labels, dtype=int)
        out["auc_external"] = auc(y_ext, p_ext)
        out["auc_external_ci"] = auc_interval(y_ext, p_ext)
        ext = (y_ext, p_ext)
    key = "val" if protocol == "standard" else "val_in"
    rules = {}
    for rule in RULES:
        t = ThresholdRule.parse(rule).choose(y[key], scored[key])
        entry: dict[str, Any] = {"threshold": round(float(t), 6)}
        for k in scored:
            entry[k] = sens_spec(y[k], scored[k], t)
        if ext is not None:
            entry["external"] = sens_spec(*ext, t)
        rules[rule] = entry
    out["rules"] = rules
    info = getattr(plugin, "fit_info_", {}) or {}
    out["fit_s"] = round(fit_s, 1)
    out["load"] = [load_before, load_avg()]
    out["fit_info"] = {k: info[k] for k in ("preprocessing", "C", "best_epoch", "best_val_auc",
                                            "chosen", "members", "weights", "n_trees",
                                            "epochs_run") if k in info}
    return out


def summary_table(path: Path, tags: list[str] | None = None) -> str:
    """A Markdown table of the lines of a ``--out`` file (the last line per model, params,
    protocol and holdout wins)."""
    rows: dict[tuple, dict[str, Any]] = {}
    for text in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        if line.get("error") or (tags and line.get("tag") not in tags):
            continue
        key = (line["model"], json.dumps(line["params"], sort_keys=True), line["protocol"],
               line.get("holdout"))
        rows[key] = line
    out = ["| model | params | protocol | val AUC | shifted-series AUC | external AUC [95 % CI] "
           "| shifted sens / spec at sensitivity:0.95 | fit s (load) |",
           "|---|---|---|---|---|---|---|---|"]
    for (model, params, protocol, holdout), line in rows.items():
        val = line.get("auc_val") or line.get("auc_val_in")
        shift = line.get("auc_val_shift")
        at95 = line["rules"]["sensitivity:0.95"].get("val_shift")
        ci = line.get("auc_external_ci") or ["-", "-"]
        load = line["load"][0][0]
        at95_text = "" if at95 is None else f"{at95['sens']:.3f} / {at95['spec']:.3f}"
        out.append(
            f"| {model} | {params if params != '{}' else ''} | {protocol}"
            f"{' (' + holdout + ' held out)' if holdout else ''} | {val:.4f} | "
            f"{'' if shift is None else f'{shift:.4f}'} | "
            f"{line.get('auc_external', float('nan')):.3f} [{ci[0]}, {ci[1]}] | "
            f"{at95_text} | "
            f"{line['fit_s']:.0f} ({load:.0f}) |")
    return "\n".join(out)


def rules_table(path: Path, tags: list[str] | None = None) -> str:
    """A Markdown table of how each threshold rule, set on the validation split the model saw
    (``val_in``), transfers to the held-out series and the external set (series lines only):
    sensitivity / specificity, one column per rule."""
    rows: dict[tuple, dict[str, Any]] = {}
    for text in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        if line.get("error") or line["protocol"] != "series" or (
                tags and line.get("tag") not in tags):
            continue
        rows[(line["model"], json.dumps(line["params"], sort_keys=True),
              line.get("holdout"))] = line
    out = ["| model | params | scored on | " + " | ".join(RULES) + " |",
           "|---|---|---|" + "---|" * len(RULES)]
    for (model, params, holdout), line in rows.items():
        for key, label in (("val_shift", f"held-out series ({holdout})"),
                           ("external", "external")):
            cells = []
            for rule in RULES:
                entry = line["rules"].get(rule, {}).get(key)
                cells.append("" if entry is None else f"{entry['sens']:.3f} / {entry['spec']:.3f}")
            out.append(f"| {model} | {params if params != '{}' else ''} | {label} | "
                       + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("CXRBENCH_DATA"))
    parser.add_argument("--external", default=os.environ.get("CXRBENCH_EXTERNAL"))
    parser.add_argument("--models", default="")
    parser.add_argument("--param", action="append", default=[],
                        help="MODEL.KEY=JSON (as cxrbench run --param)")
    parser.add_argument("--protocol", choices=("standard", "series", "both"), default="both")
    parser.add_argument("--holdout", choices=("NORMAL2", "IM"), default="NORMAL2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="a label stored with each line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", action="store_true",
                        help="print a Markdown table of --out instead of running anything")
    parser.add_argument("--rules", action="store_true",
                        help="with --summary: how each threshold rule transfers (series lines): "
                             "sensitivity / specificity")
    args = parser.parse_args()
    if args.summary:
        tags = [t for t in args.tag.split(",") if t] or None
        print(rules_table(args.out, tags) if args.rules else summary_table(args.out, tags))
        return 0
    if not args.data:
        parser.error("give --data or set CXRBENCH_DATA")

    from cxrbench.data import ImageCache, default_cache_dir, load_dataset
    from cxrbench.splits import make_split_plan

    cache_dir = default_cache_dir()
    dataset = load_dataset(args.data)
    plan = make_split_plan(dataset.records, seed=0)
    external = load_dataset(args.external) if args.external else None
    cache = ImageCache(cache_dir)
    from cxrbench.cli.run import parse_param_overrides  # the CLI's --param parser

    params = parse_param_overrides(args.param)
    protocols = ("standard", "series") if args.protocol == "both" else (args.protocol,)
    status = 0
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        for protocol in protocols:
            try:
                line = run_one(name, params.get(name, {}), args.seed, protocol, args.holdout,
                               dataset, plan, external, cache, cache_dir)
            except Exception as err:  # noqa: BLE001  # one failure must not stop the others
                line = {"model": name, "params": params.get(name, {}), "protocol": protocol,
                        "error": f"{type(err).__name__}: {err}"}
                status = 1
            line["tag"] = args.tag
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
            print(json.dumps({k: line.get(k) for k in (
                "model", "params", "protocol", "auc_val", "auc_val_in", "auc_val_shift",
                "auc_external", "fit_s", "error")}), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
