"""Metrics per subgroup of a data set, with patient-bootstrap intervals.

Subgroups are named per image (a manifest's ``subgroup`` column, or Kaggle file names: see
``cxrbench.data.subgroups``). Many are one class only (bacterial and viral pneumonia; the two
series of normal films), where ROC AUC needs the other class: such a subgroup is scored
together with every image of the other class in the set, so its ROC AUC compares the
subgroup's images against all of the other class, and the metric that is its own is
sensitivity (a pneumonia subgroup) or specificity (a normal one). A subgroup holding both
classes is scored alone, with all four metrics. Images without a subgroup are not a subgroup.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.stats.bootstrap import patient_weights
from cxrbench.stats.set_scores import score_set

MIN_IMAGES = 5  # smaller subgroups are listed with their counts, not scored
POSITIVE_METRICS = ("recall", "roc_auc")
NEGATIVE_METRICS = ("specificity", "roc_auc")
MIXED_METRICS = ("roc_auc", "recall", "specificity", "accuracy")


def subgroup_statistics(data: dict[str, Any], *, n_resamples: int, seed: int,
                        level: float) -> dict[str, Any]:
    """``{subgroup: {n_images, n_patients, classes, metrics, models {model: {metric:
    interval}}, records {job_id: {metric: interval}}}}`` for one set
    (``cxrbench.stats.generalisation.evaluation_sets`` entry)."""
    labels, groups, subgroups = data["labels"], data["groups"], data["subgroups"]
    out: dict[str, Any] = {}
    for name in sorted(set(subgroups.tolist()) - {""}):
        mine = subgroups == name
        classes = sorted(set(labels[mine].tolist()))
        if classes == [1]:
            index, metrics = mine | (labels == 0), POSITIVE_METRICS
        elif classes == [0]:
            index, metrics = mine | (labels == 1), NEGATIVE_METRICS
        else:
            index, metrics = mine, MIXED_METRICS
        entry: dict[str, Any] = {
            "n_images": int(mine.sum()), "n_patients": int(len(np.unique(groups[mine]))),
            "classes": ["PNEUMONIA" if c else "NORMAL" for c in classes],
            "metrics": list(metrics), "models": {},
        }
        if mine.sum() >= MIN_IMAGES and len(set(labels[index].tolist())) == 2:
            predictions = {job: (p[index], t) for job, (p, t) in data["predictions"].items()}
            weights = patient_weights(groups[index], n_resamples, seed)
            scored, _ = score_set(labels[index], groups[index], predictions, data["model_of"],
                                  weights, level, metrics)
            entry["models"] = scored["models"]
            entry["records"] = scored["records"]  # each seed's own (for its model card)
        out[name] = entry
    return out
