"""Subgroups: from Kaggle file names and manifest columns, and their metrics with intervals."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.data import load_dataset
from cxrbench.data.subgroups import subgroup_from_name
from cxrbench.scoring.metrics import compute_metrics
from cxrbench.stats.subgroups import subgroup_statistics


@pytest.mark.parametrize("name, label, subgroup", [
    ("person1_bacteria_1.jpeg", 1, "bacterial"),
    ("train/PNEUMONIA/person1_virus_6.jpeg", 1, "viral"),
    ("person1_virus_6_2.jpeg", 1, "viral"),
    ("IM-0115-0001.jpeg", 0, "normal IM"),
    ("IM-0115-0001-0002.jpeg", 0, "normal IM"),
    ("NORMAL2-IM-0381-0001.jpeg", 0, "normal NORMAL2-IM"),
    ("scan7.png", 0, ""),
    ("person1_bacteria_1.jpeg", 0, ""),  # a pneumonia name under NORMAL is not a subgroup
])
def test_kaggle_subgroups_from_file_names(name, label, subgroup):
    assert subgroup_from_name(name, label) == subgroup


def test_records_carry_subgroups_from_names_and_manifest_columns(synthetic_root, tmp_path):
    records = load_dataset(synthetic_root).records
    names = set(records["subgroup"])
    assert {"bacterial", "viral", "normal IM", "normal NORMAL2-IM"} <= names
    manifest = synthetic_root.parent / "subgroups.csv"  # a manifest's files lie under its folder
    rows = records.head(6)
    manifest.write_text("path,label,subgroup\n" + "".join(
        f"{p},{y},{'site A' if i % 2 else ''}\n"
        for i, (p, y) in enumerate(zip(rows["path"], rows["label"], strict=True))))
    try:
        read = load_dataset(manifest).records
    finally:
        manifest.unlink()
    assert sorted(read["subgroup"]) == ["", "", "", "site A", "site A", "site A"]


def _set(labels, groups, subgroups, p, threshold=0.5):
    return {"labels": np.asarray(labels), "groups": np.asarray(groups, dtype=str),
            "subgroups": np.asarray(subgroups, dtype=str),
            "predictions": {"m[seed=0]": (np.asarray(p, float), threshold)},
            "model_of": {"m[seed=0]": "m"}}


def test_one_class_subgroups_are_scored_against_the_other_class():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    subgroups = ["a"] * 10 + ["b"] * 10 + ["viral"] * 8 + ["bacterial"] * 12
    p = np.clip(labels * 0.4 + rng.uniform(0, 0.6, 40), 0, 1)
    groups = [f"p{i}" for i in range(40)]
    out = subgroup_statistics(_set(labels, groups, subgroups, p), n_resamples=200, seed=0,
                              level=0.95)
    viral = out["viral"]
    assert viral["classes"] == ["PNEUMONIA"] and viral["metrics"] == ["recall", "roc_auc"]
    index = np.r_[np.arange(20), np.arange(20, 28)]  # the viral images and every normal one
    expected = compute_metrics(labels[index], p[index], 0.5)
    scores = viral["models"]["m"]
    assert scores["roc_auc"]["estimate"] == pytest.approx(expected["roc_auc"])
    assert scores["recall"]["estimate"] == pytest.approx(expected["recall"])
    assert scores["roc_auc"]["low"] <= scores["roc_auc"]["estimate"] <= scores["roc_auc"]["high"]
    normal_a = out["a"]
    assert normal_a["metrics"] == ["specificity", "roc_auc"]
    spec = compute_metrics(labels[:10].tolist() + [1] * 20, np.r_[p[:10], p[20:]], 0.5)
    assert normal_a["models"]["m"]["specificity"]["estimate"] == pytest.approx(
        spec["specificity"])


def test_mixed_and_tiny_subgroups():
    labels = [0, 1] * 6
    p = [0.2, 0.8] * 6
    subgroups = ["site"] * 10 + ["tiny", "tiny"]
    out = subgroup_statistics(_set(labels, [str(i) for i in range(12)], subgroups, p),
                              n_resamples=50, seed=0, level=0.95)
    assert out["site"]["metrics"] == ["roc_auc", "recall", "specificity", "accuracy"]
    assert out["site"]["models"]["m"]["accuracy"]["estimate"] == 1.0
    assert out["tiny"]["models"] == {} and out["tiny"]["n_images"] == 2
