"""Readers: turn a folder or a CSV manifest into a ``Dataset`` (the records table).

Accepted layouts, detected automatically by ``load_dataset``:

- **kaggle**: ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`` (``val/`` optional);
- **flat**: ``ROOT/{NORMAL,PNEUMONIA}/*.jpeg`` with no split (``source_split`` is "");
- **manifest**: a CSV file with columns ``path,label[,patient_id][,split]``; paths relative to
  the CSV's folder or absolute; labels ``0``/``1`` or ``NORMAL``/``PNEUMONIA`` (any case).

A folder with a ``SYNTHETIC.txt`` marker (written by ``make_synthetic_dataset``) loads as kind
"synthetic". Image files are ``.jpeg``/``.jpg``/``.png`` in any case; other files (``.DS_Store``,
notes, macOS ``._*`` shadows) are ignored. Folder names match case-insensitively.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from cxrbench.data.cache import hash_files
from cxrbench.data.decode import is_image_file
from cxrbench.data.patients import patient_id_from_name
from cxrbench.data.records import (
    CLASS_NAMES,
    SPLIT_NAMES,
    DataError,
    Dataset,
    compute_data_hash,
    make_records_table,
)

SYNTHETIC_MARKER = "SYNTHETIC.txt"
_LAYOUTS_HELP = (
    "accepted layouts: Kaggle (ROOT/train/, optional ROOT/val/, ROOT/test/, each with NORMAL/ "
    "and PNEUMONIA/), flat (ROOT/NORMAL/ and ROOT/PNEUMONIA/), or a CSV manifest file with "
    "columns path,label[,patient_id][,split]"
)
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "": ""}


def load_dataset(path: str | Path, *, cache_dir: str | Path | None = None) -> Dataset:
    """Read a data set (Kaggle folder, flat class folder, or CSV manifest) into a ``Dataset``.

    File content hashes are remembered under ``cache_dir`` (default: the cxrbench cache
    folder), so loading the same files again only stats them.
    """
    if path is None or str(path) == "":
        raise DataError("no data set given; pass --data PATH or set CXRBENCH_DATA")
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise DataError(f"data set path {root} does not exist; pass --data PATH or set "
                        "CXRBENCH_DATA")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root} is a file but not a .csv manifest; {_LAYOUTS_HELP}")
        rows = _read_manifest(root)
        return _finish(root.parent, "manifest", rows, hash_key=str(root), cache_dir=cache_dir)

    entries = _subdirs(root)
    splits = {name: entries[name] for name in SPLIT_NAMES if name in entries
              and _class_dirs(entries[name])}
    if splits:
        rows = []
        for split, folder in splits.items():
            rows += _read_class_folders(root, folder, split)
        kind = "kaggle"
    elif _class_dirs(root):
        rows = _read_class_folders(root, root, "")
        kind = "flat"
    else:
        raise DataError(_no_layout_message(root, entries))
    if (root / SYNTHETIC_MARKER).is_file():
        kind = "synthetic"
    if not rows:
        raise DataError(f"no images (.jpeg, .jpg, .png) found under {root}; {_LAYOUTS_HELP}")
    return _finish(root, kind, rows, hash_key=str(root), cache_dir=cache_dir)


def _finish(root: Path, kind: str, rows: list[dict[str, object]], *, hash_key: str,
            cache_dir: str | Path | None) -> Dataset:
    hashes = hash_files([str(r["path"]) for r in rows], key=hash_key, cache_dir=cache_dir)
    for row, digest in zip(rows, hashes, strict=True):
        row["content_hash"] = digest
    records = make_records_table(rows)
    dupes = records["record_id"][records["record_id"].duplicated()]
    if len(dupes):
        raise DataError(f"record {dupes.iloc[0]!r} is listed twice; list each file once")
    return Dataset(root=root, kind=kind, records=records, data_hash=compute_data_hash(records),
                   synthetic=kind == "synthetic")


def _subdirs(folder: Path) -> dict[str, Path]:
    """Sub-folders by lower-cased name (hidden ones skipped)."""
    out = {}
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir() and not entry.name.startswith("."):
                out.setdefault(entry.name.lower(), Path(entry.path))
    return out


def _class_dirs(folder: Path) -> dict[int, Path]:
    """``{label: folder}`` for the NORMAL/PNEUMONIA sub-folders that exist."""
    sub = _subdirs(folder)
    return {label: sub[name.lower()] for label, name in enumerate(CLASS_NAMES)
            if name.lower() in sub}


def _read_class_folders(root: Path, folder: Path, split: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for label, class_dir in _class_dirs(folder).items():
        found = 0
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not is_image_file(name):
                    continue
                full = Path(dirpath) / name
                rows.append({
                    "record_id": full.relative_to(root).as_posix(),
                    "path": str(full),
                    "label": label,
                    "patient_id": patient_id_from_name(name),
                    "source_split": split,
                })
                found += 1
        if not found:
            raise DataError(f"class folder {class_dir} has no images (.jpeg, .jpg, .png); "
                            "add its images or remove the empty folder")
    return rows


def _no_layout_message(root: Path, entries: dict[str, Path]) -> str:
    hint = ""
    nested = [p for p in entries.values() if _class_dirs(p) or any(
        s in _subdirs(p) and _class_dirs(_subdirs(p)[s]) for s in SPLIT_NAMES)]
    if nested:
        hint = f"; did you mean {nested[0]}?"
    found = ", ".join(sorted(p.name + "/" for p in entries.values())[:8]) or "no sub-folders"
    return f"{root} matches no data set layout (it has {found}); {_LAYOUTS_HELP}{hint}"


def parse_label(value: str) -> int | None:
    """0/1 or NORMAL/PNEUMONIA (any case) -> 0/1; None when not a label."""
    v = value.strip().upper()
    if v in ("0", "NORMAL"):
        return 0
    if v in ("1", "PNEUMONIA"):
        return 1
    return None


def _read_manifest(csv_path: Path) -> list[dict[str, object]]:
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in ("path", "label") if c not in header]
        if missing:
            raise DataError(f"manifest {csv_path} line 1: missing column(s) {missing}; the "
                            "header must have path,label[,patient_id][,split]")
        reader.fieldnames = header
        rows: list[dict[str, object]] = []
        for lineno, raw in enumerate(reader, start=2):
            where = f"manifest {csv_path} line {lineno}"
            rel = (raw.get("path") or "").strip()
            if not rel:
                raise DataError(f"{where}: empty path; give every row a file path")
            label = parse_label(raw.get("label") or "")
            if label is None:
                raise DataError(f"{where}: unknown label {raw.get('label')!r}; use 0/1 or "
                                "NORMAL/PNEUMONIA")
            split_raw = (raw.get("split") or "").strip().lower()
            if split_raw not in _SPLIT_ALIASES:
                raise DataError(f"{where}: unknown split {raw.get('split')!r}; use train, val, "
                                "test or leave it empty")
            full = Path(rel) if Path(rel).is_absolute() else base / rel
            if not full.is_file():
                raise DataError(f"{where}: file {full} does not exist; fix the path (relative "
                                "paths are relative to the manifest's folder)")
            try:
                record_id = full.relative_to(base).as_posix()
            except ValueError:  # absolute path outside the manifest's folder
                record_id = full.as_posix()
            patient = (raw.get("patient_id") or "").strip() or patient_id_from_name(full.name)
            rows.append({"record_id": record_id, "path": str(full), "label": label,
                         "patient_id": patient, "source_split": _SPLIT_ALIASES[split_raw]})
    if not rows:
        raise DataError(f"manifest {csv_path} lists no images; add rows path,label")
    return rows
