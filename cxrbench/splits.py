"""Split plans: which records train, which validate, which test. One plan per run, every plugin.

Rules: the official ``test`` split is kept whole and only ever evaluated on;
validation is carved from ``train`` (Kaggle's 16-image ``val/`` folder, when present, is pooled
with ``train`` first: it is too small to select anything) grouped by patient and stratified by
label, unless the layout's ``val`` rows are the validation split as given (``given_val``: a
manifest's split column). A layout with no split at all (flat folder, manifest without a split
column) gets a test split carved the same way; a layout that has splits but no ``test`` is an
error unless ``carve_test`` asks for one to be carved. The plan records its strategy.

The plan's sha256 covers its sorted record ids only, so the same data and seed give the same
hash on any machine (ids are paths relative to the data root).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_VAL_FRACTION = 0.15  # share of train (by images) held out for validation
DEFAULT_TEST_FRACTION = 0.20  # carved only when the data has no official test split
DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class SplitPlan:
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    test_ids: tuple[str, ...]
    seed: int
    val_fraction: float
    strategy: str

    @property
    def sha256(self) -> str:
        return split_sha256(self.train_ids, self.val_ids, self.test_ids)

    def ids(self, split: str) -> tuple[str, ...]:
        return {"train": self.train_ids, "val": self.val_ids, "test": self.test_ids}[split]

    def counts(self, records: pd.DataFrame) -> dict[str, dict[str, int]]:
        labels = records.set_index("record_id")["label"]
        out = {}
        for split in ("train", "val", "test"):
            values = labels.loc[list(self.ids(split))].to_numpy()
            out[split] = {"normal": int(np.sum(values == 0)), "pneumonia": int(np.sum(values == 1))}
        return out

    def to_json(self) -> dict:
        data = asdict(self)
        data["sha256"] = self.sha256
        return data

    def save(self, path: str | Path) -> Path:
        from cxrbench.files import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> SplitPlan:
        data = json.loads(Path(path).read_text())
        stored = data.get("sha256")
        known = {f.name for f in fields(cls)}  # older plans also hold fold/n_folds (null)
        plan = cls(**{k: tuple(v) if k.endswith("_ids") else v
                      for k, v in data.items() if k in known})
        if stored is not None and stored != plan.sha256:
            raise ValueError(f"split plan {path} was modified: its sha256 does not match its ids")
        return plan


def split_sha256(train: tuple[str, ...], val: tuple[str, ...], test: tuple[str, ...]) -> str:
    payload = json.dumps(
        {"train": sorted(train), "val": sorted(val), "test": sorted(test)}, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _patient_table(pool: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: its image count and its (majority) label, in a stable order."""
    table = pool.groupby("patient_id").agg(n=("record_id", "size"), label=("label", "mean"))
    table["label"] = (table["label"] >= 0.5).astype(int)
    return table.sort_index()


def _grouped_holdout(pool: pd.DataFrame, fraction: float, rng: np.random.Generator) -> set[str]:
    """Patients drawn per label until ``fraction`` of that label's images are held out."""
    patients = _patient_table(pool)
    held: set[str] = set()
    for label in (0, 1):
        stratum = patients[patients["label"] == label]
        order = stratum.index.to_numpy()[rng.permutation(len(stratum))]
        target = fraction * stratum["n"].sum()
        taken = 0
        for patient in order:
            if taken >= target:
                break
            held.add(patient)
            taken += int(stratum.at[patient, "n"])
    return held


def make_split_plan(
    records: pd.DataFrame,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    given_val: bool = False,
    carve_test: bool = False,
) -> SplitPlan:
    """The holdout plan: official test kept whole, validation carved from train by patient.

    ``given_val``: the ``val`` rows are the validation split as they are (``Dataset.val_given``).
    ``carve_test``: a layout with splits but no ``test`` rows gets test carved from its train
    rows by patient, instead of an error.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    splits = set(records["source_split"])
    use_given_val = given_val and "val" in splits
    if "test" in splits:
        strategy = "official test; val carved from train (+val/) by patient"
        test = records[records["source_split"] == "test"]
        pool = records[records["source_split"] != "test"]
    else:
        named = sorted(splits - {""})
        if named and not carve_test:
            raise ValueError(
                f"the data's splits are {', '.join(named)}, with no test rows: a benchmark "
                "needs a test split it never fits on. Add test rows (a manifest's split column, "
                "or a test/ folder), or pass --carve-test to carve one from train by patient")
        strategy = ("no official split: test and val carved by patient" if not named
                    else "no test given: test carved from train by patient (carve_test)")
        candidates = records[records["source_split"] != "val"] if use_given_val else records
        test_patients = _grouped_holdout(candidates, test_fraction, rng)
        test = candidates[candidates["patient_id"].isin(test_patients)]
        pool = records[~records["record_id"].isin(test["record_id"])]
    if use_given_val:
        strategy = strategy.split(";")[0] + "; val as given"
        val = pool[pool["source_split"] == "val"]
        train = pool[pool["source_split"] != "val"]
    else:
        val_patients = _grouped_holdout(pool, val_fraction, rng)
        val = pool[pool["patient_id"].isin(val_patients)]
        train = pool[~pool["patient_id"].isin(val_patients)]
    return SplitPlan(
        train_ids=tuple(sorted(train["record_id"])),
        val_ids=tuple(sorted(val["record_id"])),
        test_ids=tuple(sorted(test["record_id"])),
        seed=seed,
        val_fraction=val_fraction,
        strategy=strategy,
    )

