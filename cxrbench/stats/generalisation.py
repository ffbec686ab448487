"""``statistics.generalisation``: how the models do on every data set they were scored on.

Data sets: the run's ``val`` and ``test`` splits (internal) and each ok ``external[NAME]``
entry. For each set, from the records' predictions at their validation thresholds:

- ``sets[NAME].records[job_id][metric]`` and ``sets[NAME].models[model][metric]``: estimate
  and 95 % patient-bootstrap interval of every metric, per record and for the mean over a
  model's seeds (as ``statistics.models`` does for test);
- ``drop[NAME][model]``: internal test ROC AUC minus the set's (seed means), with a bootstrap
  interval: test and external resamples are drawn independently (different patients), so the
  b-th difference is the difference of two independent draws;
- ``ranking[NAME]``: Kendall's tau between the models' ROC AUC ranking on test and on the set
  (scipy's tau-b and its p-value; with few models the p-value says little), and a bootstrap
  interval of tau over the same resamples;
- ``subgroups[NAME]``: per subgroup (``cxrbench.stats.subgroups``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.data.subgroups import subgroup_from_name
from cxrbench.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    patient_weights,
    percentile_interval,
)
from cxrbench.stats.set_scores import interval, score_set
from cxrbench.stats.subgroups import subgroup_statistics

INTERNAL_SETS = ("val", "test")


def evaluation_sets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every set the records were scored on: name -> {kind, labels, groups, subgroups,
    predictions {job_id: (p, threshold)}}; internal sets first, then external ones by name."""
    records = {r["job_id"]: r for r in results.get("records", []) if r.get("status") == "ok"}
    sets: dict[str, dict[str, Any]] = {}
    evaluation = results.get("evaluation") or {}
    for split in INTERNAL_SETS:
        section = evaluation.get(split) or {}
        labels = section.get("labels") or []
        predictions = {}
        for job, record in records.items():
            p = (record.get("predictions") or {}).get(split)
            if p is not None and len(p) == len(labels):
                predictions[job] = (np.asarray(p, float), _threshold(record.get("threshold")))
        sets[split] = _set("internal", section, predictions, records)
    for name, entry in sorted((results.get("external") or {}).items()):
        if entry.get("status") != "ok":
            continue
        predictions = {}
        for job, scored in (entry.get("records") or {}).items():
            if scored.get("status") == "ok" and len(scored.get("predictions") or []) == len(
                    entry.get("labels") or []):
                predictions[job] = (np.asarray(scored["predictions"], float),
                                    _threshold(scored.get("threshold")))
        sets[name] = _set("external", entry, predictions, records)
    return {k: v for k, v in sets.items() if len(v["labels"])}


def _set(kind: str, section: dict[str, Any], predictions: dict[str, Any],
         records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    labels = np.asarray(section.get("labels") or [], dtype=int)
    groups = section.get("groups") or [str(i) for i in range(len(labels))]
    subgroups = section.get("subgroups")
    if subgroups is None:  # a version-1 file: from the (Kaggle) file names, as a run would
        subgroups = [subgroup_from_name(i, y) for i, y in zip(section.get("ids") or [],
                                                             labels.tolist(), strict=False)]
    return {"kind": kind, "labels": labels, "groups": np.asarray(groups, dtype=str),
            "subgroups": np.asarray(subgroups or [""] * len(labels), dtype=str),
            "predictions": predictions,
            "model_of": {job: records[job]["model"] if job in records else job.split("[")[0]
                         for job in predictions}}


def _threshold(value: Any) -> float:
    return 0.5 if value is None else float(value)


def _kendall(a: dict[str, float], b: dict[str, float]) -> tuple[float, float, int]:
    from scipy.stats import kendalltau

    common = sorted(m for m in a if m in b and np.isfinite(a[m]) and np.isfinite(b[m]))
    if len(common) < 2:
        return float("nan"), float("nan"), len(common)
    result = kendalltau([a[m] for m in common], [b[m] for m in common])
    return float(result.statistic), float(result.pvalue), len(common)


def generalisation_statistics(results: dict[str, Any], *, n_resamples: int = DEFAULT_RESAMPLES,
                              seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
                              ) -> dict[str, Any]:
    """The ``generalisation`` section of ``statistics`` (see the module docstring)."""
    sets = evaluation_sets(results)
    out: dict[str, Any] = {"sets": {}, "drop": {}, "ranking": {}, "subgroups": {},
                           "method": _METHOD}
    auc_samples: dict[str, dict[str, np.ndarray]] = {}
    for name, data in sets.items():
        weights = patient_weights(data["groups"], n_resamples, seed)
        scored, model_samples = score_set(data["labels"], data["groups"], data["predictions"],
                                          data["model_of"], weights, level)
        out["sets"][name] = {"kind": data["kind"], "n_images": int(len(data["labels"])),
                             "n_pneumonia": int(data["labels"].sum()),
                             "n_patients": int(len(np.unique(data["groups"]))), **scored}
        auc_samples[name] = {m: s["roc_auc"] for m, s in model_samples.items()}
        groups = subgroup_statistics(data, n_resamples=n_resamples, seed=seed, level=level)
        if groups:
            out["subgroups"][name] = groups
    test = out["sets"].get("test")
    if test is None:
        return out
    test_auc = {m: v["roc_auc"]["estimate"] for m, v in test["models"].items()}
    for name, section in out["sets"].items():
        if name == "test":
            continue
        other_auc = {m: v["roc_auc"]["estimate"] for m, v in section["models"].items()}
        tau, p, n = _kendall(test_auc, other_auc)
        out["ranking"][name] = {"kendall_tau": tau, "p": p, "n_models": n,
                                **_tau_interval(auc_samples["test"], auc_samples[name], level)}
        if section["kind"] != "external":
            continue
        out["drop"][name] = {}
        for model, auc in other_auc.items():
            if model not in test_auc:
                continue
            diff = auc_samples["test"][model] - auc_samples[name][model]
            out["drop"][name][model] = interval(diff, test_auc[model] - auc, level)
    return out


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between rows ``a`` and ``b`` ``(n_items, n_resamples)``, per column.

    Vectorised over resamples (the same statistic as ``scipy.stats.kendalltau``, tested
    equal): concordance of the signs of every pair's differences, normalised for ties.
    """
    i, j = np.triu_indices(a.shape[0], k=1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sa * sb).sum(axis=0) / np.sqrt((sa ** 2).sum(axis=0) * (sb ** 2).sum(axis=0))


def _tau_interval(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                  level: float) -> dict[str, Any]:
    """Percentile interval of Kendall's tau over paired resamples of the two sets' AUCs."""
    models = sorted(m for m in a if m in b)
    if len(models) < 3:
        return {"low": float("nan"), "high": float("nan")}
    A = np.vstack([a[m] for m in models])
    B = np.vstack([b[m] for m in models])
    finite = np.all(np.isfinite(A), axis=0) & np.all(np.isfinite(B), axis=0)
    low, high = percentile_interval(kendall_tau_b(A[:, finite], B[:, finite]), level)
    return {"low": low, "high": high}


_METHOD = {
    "sets": "Val and test (the run's splits) and each external set; every record at its own "
            "validation-chosen threshold, no refit",
    "intervals": "95 % patient bootstrap per set (resampling each set's patients), per record "
                 "and for the mean over a model's seeds",
    "drop": "Test ROC AUC minus the external set's (seed means); interval from independent "
            "resamples of the two sets",
    "ranking": "Kendall's tau-b between the models' seed-mean ROC AUCs on test and on the set "
               "(scipy.stats.kendalltau; p-value two-sided); interval over paired resamples",
    "subgroups": "A subgroup with both classes is scored alone; a one-class subgroup with "
                 "every image of the other class in the set (ROC AUC: the subgroup against "
                 "the other class), reporting sensitivity for pneumonia subgroups and "
                 "specificity for normal ones",
}
