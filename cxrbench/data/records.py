"""The records table: one row per image file, and the data set that holds it.

Every reader produces the same table (``RECORD_COLUMNS``); everything downstream (splits,
image cache, audit, results provenance) only ever sees this table, never the folder layout.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where tables are built: decode workers stay light
    import pandas as pd

RECORD_COLUMNS: tuple[str, ...] = (
    "record_id",  # posix path relative to the data set root, unique
    "path",  # absolute path of the file
    "label",  # 0 normal, 1 pneumonia
    "patient_id",
    "source_split",  # "train" / "val" / "test", or "" when the layout has no split
    "content_hash",  # sha256 hex of the file bytes
)
CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")  # index = label
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
DATASET_KINDS: tuple[str, ...] = ("kaggle", "flat", "manifest", "synthetic")


class DataError(ValueError):
    """A data set cannot be used as given; the message says what to do about it."""


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames elementwise
class Dataset:
    """A loaded data set: where it is, how it was laid out, and its records table."""

    root: Path
    kind: str
    records: pd.DataFrame
    data_hash: str
    synthetic: bool = False

    def __len__(self) -> int:
        return len(self.records)

    def classes_present(self) -> set[int]:
        """Labels (0 normal, 1 pneumonia) that occur at least once."""
        return {int(v) for v in self.records["label"].unique()}

    def splits_present(self) -> list[str]:
        """Source splits in canonical order ("" for a layout without splits)."""
        present = set(self.records["source_split"].unique())
        order = [*SPLIT_NAMES, ""]
        return [s for s in order if s in present] + sorted(present - set(order))

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {"NORMAL": n, "PNEUMONIA": n}}``; split "all" when there is no split."""
        out: dict[str, dict[str, int]] = {}
        for split in self.splits_present():
            labels = self.records.loc[self.records["source_split"] == split, "label"]
            out[split or "all"] = {
                name: int((labels == i).sum()) for i, name in enumerate(CLASS_NAMES)
            }
        return out

    def summary(self) -> dict[str, object]:
        """What a results file records about the data (provenance)."""
        return {
            "path": str(self.root),
            "kind": self.kind,
            "data_hash": self.data_hash,
            "synthetic": self.synthetic,
            "n_records": len(self.records),
        }


def compute_data_hash(records: pd.DataFrame) -> str:
    """sha256 over the sorted (record_id, label, source_split, content_hash) rows.

    Absolute paths and the layout kind are left out on purpose, so the same files give the same
    hash on any machine and wherever they are stored.
    """
    rows = sorted(
        zip(
            records["record_id"].astype(str),
            records["label"].astype(int),
            records["source_split"].astype(str),
            records["content_hash"].astype(str),
            strict=True,
        )
    )
    h = hashlib.sha256()
    for record_id, label, split, content_hash in rows:
        h.update(f"{record_id}\t{label}\t{split}\t{content_hash}\n".encode())
    return h.hexdigest()


def make_records_table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The records table from row dicts, sorted by record_id, with the canonical dtypes."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    df = df.sort_values("record_id", kind="stable").reset_index(drop=True)
    df["label"] = df["label"].astype("int64")
    for col in ("record_id", "path", "patient_id", "source_split", "content_hash"):
        df[col] = df[col].astype(str)
    return df
