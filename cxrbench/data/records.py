"""The records table: one row per image file, and the data set that holds it.

Every reader produces the same table (``RECORD_COLUMNS``); everything downstream (splits,
image cache, audit, results provenance) only ever sees this table, never the folder layout.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cxrbench.data.formats import ACCEPTED_TEXT

if TYPE_CHECKING:  # pandas is imported where tables are built: decode workers stay light
    import pandas as pd

RECORD_COLUMNS: tuple[str, ...] = (
    "record_id",  # posix path relative to the data set root, unique
    "path",  # absolute path of the file
    "label",  # 0 normal, 1 pneumonia
    "patient_id",
    "source_split",  # "train" / "val" / "test", or "" when the layout has no split
    "content_hash",  # sha256 hex of the file bytes
    # Read from the file's header when the data set is loaded; empty when the header is unreadable
    # (the file is then reported as unreadable when it is decoded).
    "width",  # pixels (nullable integer), before any EXIF rotation
    "height",
    "pixel_spacing_mm",  # DICOM "row,column" spacing in mm ("" for other formats)
    "subgroup",  # a manifest's subgroup column, or from Kaggle file names ("" for none)
)
OPTIONAL_RECORD_COLUMNS: tuple[str, ...] = ("width", "height", "pixel_spacing_mm")
CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")  # index = label
# Images outside these bounds are decoded, but flagged by `data audit` and warned about by
# `run`: every image is resized to a square of the model's input size (64-299 px), so a tiny
# one is upscaled from almost nothing and a very elongated one is squeezed out of shape.
SMALL_IMAGE_PX = 64  # shorter side below this
EXTREME_ASPECT = 3.0  # longer side over shorter side above this
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
DATASET_KINDS: tuple[str, ...] = ("kaggle", "flat", "manifest", "synthetic")


class DataError(ValueError):
    """A data set cannot be used as given; the message says what to do about it."""


@dataclass(frozen=True)
class SkippedFile:
    """A file under the data root that is not in the records table, and why."""

    record_id: str  # posix path relative to the data root (absolute when outside it)
    reason: str
    kind: str  # "unreadable" (could not be opened), "ignored" (not an image), "alias" (symlink)


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames elementwise
class Dataset:
    """A loaded data set: where it is, how it was laid out, and its records table."""

    root: Path
    kind: str
    records: pd.DataFrame
    data_hash: str
    synthetic: bool = False
    # Files found but left out of ``records``: unreadable (dangling or looping symlinks, no
    # permission), ignored (not an image format cxrbench reads) or aliases (symlinks to a file
    # already in the set). Callers report them: ``warnings()`` says it in a few lines.
    skipped: tuple[SkippedFile, ...] = field(default=())
    notes: tuple[str, ...] = ()  # other remarks from loading (e.g. a read-only hash index)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def val_given(self) -> bool:
        """True when the layout's ``val`` rows are the validation split, as given.

        A manifest's split column means what it says. Kaggle's ``val/`` folder (16 images) is
        not a usable validation set: it is pooled with ``train/`` and validation is carved.
        """
        return self.kind == "manifest" and "val" in set(self.records["source_split"])

    def skipped_of(self, kind: str) -> list[SkippedFile]:
        return [s for s in self.skipped if s.kind == kind]

    def odd_images(self) -> dict[str, list[str]]:
        """Record ids of images that are tiny (``small``) or very elongated (``extreme_aspect``)."""
        rec = self.records
        known = rec["width"].notna() & rec["height"].notna()
        w = rec["width"].where(known, 0).astype("int64")
        h = rec["height"].where(known, 0).astype("int64")
        short, long = w.where(w < h, h), w.where(w >= h, h)
        small = known & (short < SMALL_IMAGE_PX)
        elongated = known & (short > 0) & (long > EXTREME_ASPECT * short)
        return {"small": rec.loc[small, "record_id"].tolist(),
                "extreme_aspect": rec.loc[elongated, "record_id"].tolist()}

    def warnings(self, examples: int = 3) -> list[str]:
        """One line per kind of problem found while loading (empty when there is none)."""
        def some(ids: list[str]) -> str:
            more = f", ... ({len(ids) - examples} more)" if len(ids) > examples else ""
            return ", ".join(ids[:examples]) + more

        out = list(self.notes)
        unreadable = self.skipped_of("unreadable")
        if unreadable:
            out.append(f"{len(unreadable)} file(s) cannot be opened and are left out: " + some(
                [f"{s.record_id} ({s.reason})" for s in unreadable]))
        ignored = self.skipped_of("ignored")
        if ignored:
            out.append(f"ignored {len(ignored)} file(s) that are not images cxrbench reads ("
                       + ACCEPTED_TEXT + "): "
                       + some([s.record_id for s in ignored])
                       + "; `cxrbench data audit` lists them all")
        aliases = self.skipped_of("alias")
        if aliases:
            out.append(f"skipped {len(aliases)} symlink(s) to an image already in the set, so "
                       "that no image counts twice: " + some(
                           [f"{s.record_id} ({s.reason})" for s in aliases]))
        odd = self.odd_images()
        if odd["small"]:
            out.append(f"{len(odd['small'])} image(s) smaller than {SMALL_IMAGE_PX} px on a side "
                       "are stretched up to any larger model input: " + some(odd["small"])
                       + "; check that they are whole films")
        if odd["extreme_aspect"]:
            out.append(f"{len(odd['extreme_aspect'])} image(s) longer than {EXTREME_ASPECT:g}:1 "
                       "will be squeezed into a square: " + some(odd["extreme_aspect"]))
        return out

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
    """The records table from row dicts, sorted by record_id, with the canonical dtypes.

    Optional columns missing from the rows are filled as unknown.
    """
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    df = df.sort_values("record_id", kind="stable").reset_index(drop=True)
    df["label"] = df["label"].astype("int64")
    df["pixel_spacing_mm"] = df["pixel_spacing_mm"].fillna("")
    df["subgroup"] = df["subgroup"].fillna("")
    for col in ("record_id", "path", "patient_id", "source_split", "content_hash",
                "pixel_spacing_mm", "subgroup"):
        df[col] = df[col].astype(str)
    for col in ("width", "height"):
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    return df
