import numpy as np
import pandas as pd
import pytest

from cxrbench.splits import SplitPlan, make_split_plan


def make_records(n_patients=200, images_per_patient=(1, 3), with_test=True, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = int(rng.random() < 0.7)
        split = "test" if with_test and p % 10 == 0 else ("train" if with_test else "")
        for m in range(rng.integers(*images_per_patient, endpoint=True)):
            rid = f"{split or 'all'}/{label}/person{p}_{m}.jpeg"
            rows.append(dict(record_id=rid, path="/x/" + rid, label=label,
                             patient_id=f"person{p}", source_split=split, content_hash=rid))
    return pd.DataFrame(rows)


def test_test_split_kept_whole_and_val_grouped_by_patient():
    records = make_records()
    plan = make_split_plan(records, val_fraction=0.15, seed=0)
    official_test = set(records.loc[records.source_split == "test", "record_id"])
    assert set(plan.test_ids) == official_test
    by_id = records.set_index("record_id")["patient_id"]
    train_patients = set(by_id.loc[list(plan.train_ids)])
    val_patients = set(by_id.loc[list(plan.val_ids)])
    assert not train_patients & val_patients
    pool = len(records) - len(official_test)
    assert 0.10 < len(plan.val_ids) / pool < 0.22
    counts = plan.counts(records)
    assert counts["val"]["normal"] > 0 and counts["val"]["pneumonia"] > 0


def test_same_seed_same_hash_other_seed_other_hash(tmp_path):
    records = make_records()
    a = make_split_plan(records, seed=0)
    b = make_split_plan(records.sample(frac=1, random_state=1), seed=0)  # row order irrelevant
    c = make_split_plan(records, seed=1)
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256
    path = a.save(tmp_path / "plan.json")
    assert SplitPlan.load(path) == a


def test_tampered_plan_is_detected(tmp_path):
    import json

    plan = make_split_plan(make_records())
    path = plan.save(tmp_path / "plan.json")
    data = json.loads(path.read_text())
    data["val_ids"] = data["val_ids"][1:]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="modified"):
        SplitPlan.load(path)


def test_plan_files_of_older_versions_still_load(tmp_path):
    """Plans written before the k-fold fields were dropped carry fold/n_folds as null."""
    import json

    plan = make_split_plan(make_records())
    path = plan.save(tmp_path / "plan.json")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "fold": None, "n_folds": None}))
    assert SplitPlan.load(path) == plan


def test_no_official_split_carves_test_by_patient():
    records = make_records(with_test=False)
    plan = make_split_plan(records, seed=0)
    by_id = records.set_index("record_id")["patient_id"]
    groups = [set(by_id.loc[list(plan.ids(s))]) for s in ("train", "val", "test")]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
    assert "carved" in plan.strategy

