"""Readers: turn a folder or a CSV manifest into a ``Dataset`` (the records table).

Accepted layouts, detected automatically by ``load_dataset``:

- **kaggle**: ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`` (``val/`` optional);
- **flat**: ``ROOT/{NORMAL,PNEUMONIA}/*.jpeg`` with no split (``source_split`` is "");
- **manifest**: a CSV file with columns ``path,label[,patient_id][,split][,subgroup]``;
  labels ``0``/``1`` or ``NORMAL``/``PNEUMONIA`` (any case); splits ``train``, ``val``,
  ``test`` (every row, or none). The **data root of a manifest is its folder**: paths are
  relative to it (or absolute), and a path that resolves (symlinks and ``..`` followed)
  outside it is refused unless ``allow_outside_root=True``. Two rows naming the same file
  (after resolving) are refused.

Subgroups (``cxrbench.data.subgroups``) come from a manifest's ``subgroup`` column, else from
Kaggle-style file names.

A folder with a ``SYNTHETIC.txt`` marker (written by ``make_synthetic_dataset``) loads as kind
"synthetic". Image files are those ``formats.is_image_file`` accepts (JPEG, PNG, TIFF, BMP,
WebP, DICOM); in class folders, hidden files (``.DS_Store``, macOS ``._*`` shadows) are skipped
silently and any other file is kept out of the records but listed in ``Dataset.skipped`` (as
"ignored"), as are files that cannot be opened (dangling or looping symlinks: "unreadable") and
symlinks to a file already in the set ("alias": the real file, or the first link by record id,
is kept, so no image counts twice). Symlinked folders inside class folders are not followed
(listed as "ignored"); a symlink that points outside a folder layout's root is read as usual.
Folder names match case-insensitively.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from cxrbench.data.formats import ACCEPTED_TEXT, is_hidden, is_image_file
from cxrbench.data.patients import patient_id_from_name
from cxrbench.data.records import (
    CLASS_NAMES,
    SPLIT_NAMES,
    DataError,
    Dataset,
    SkippedFile,
    compute_data_hash,
    make_records_table,
)
from cxrbench.data.scan import FileFacts, scan_files, unreadable_reason
from cxrbench.data.subgroups import subgroup_from_name

SYNTHETIC_MARKER = "SYNTHETIC.txt"
_LAYOUTS_HELP = (
    "accepted layouts: Kaggle (ROOT/train/, optional ROOT/val/, ROOT/test/, each with NORMAL/ "
    "and PNEUMONIA/), flat (ROOT/NORMAL/ and ROOT/PNEUMONIA/), or a CSV manifest file with "
    "columns path,label[,patient_id][,split]"
)
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "": ""}


def load_dataset(path: str | Path, *, cache_dir: str | Path | None = None,
                 allow_outside_root: bool = False) -> Dataset:
    """Read a data set (Kaggle folder, flat class folder, or CSV manifest) into a ``Dataset``.

    File content hashes and headers are remembered under ``cache_dir`` (default: the cxrbench
    cache folder), so loading the same files again only stats them. ``allow_outside_root``
    lets a manifest list files outside its folder.
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
        rows = _read_manifest(root, allow_outside_root=allow_outside_root)
        return _finish(root.parent, "manifest", rows, [], hash_key=str(root),
                       cache_dir=cache_dir)

    entries = _subdirs(root)
    splits = {name: entries[name] for name in SPLIT_NAMES if name in entries
              and _class_dirs(entries[name])}
    rows: list[dict[str, object]] = []
    skipped: list[SkippedFile] = []
    if splits:
        for split, folder in splits.items():
            _read_class_folders(root, folder, split, rows, skipped)
        kind = "kaggle"
    elif _class_dirs(root):
        _read_class_folders(root, root, "", rows, skipped)
        kind = "flat"
    else:
        raise DataError(_no_layout_message(root, entries))
    if (root / SYNTHETIC_MARKER).is_file():
        kind = "synthetic"
    if not rows:
        raise DataError(f"no images ({ACCEPTED_TEXT}) found under {root}; {_LAYOUTS_HELP}")
    return _finish(root, kind, _drop_aliases(rows, skipped), skipped, hash_key=str(root),
                   cache_dir=cache_dir)


def _finish(root: Path, kind: str, rows: list[dict[str, object]], skipped: list[SkippedFile],
            *, hash_key: str, cache_dir: str | Path | None) -> Dataset:
    facts, note = scan_files([str(r["path"]) for r in rows], key=hash_key, cache_dir=cache_dir)
    kept = []
    for row, fact in zip(rows, facts, strict=True):
        if isinstance(fact, FileFacts):
            row.update(content_hash=fact.content_hash, width=fact.width, height=fact.height,
                       pixel_spacing_mm=fact.pixel_spacing_mm)
            kept.append(row)
        else:  # vanished or unreadable since it was listed
            skipped.append(SkippedFile(str(row["record_id"]), fact, "unreadable"))
    for row in kept:
        row.pop("line", None)
    records = make_records_table(kept)
    return Dataset(root=root, kind=kind, records=records, data_hash=compute_data_hash(records),
                   synthetic=kind == "synthetic",
                   skipped=tuple(sorted(skipped, key=lambda s: (s.kind, s.record_id))),
                   notes=(note,) if note else ())


def _drop_aliases(rows: list[dict[str, object]], skipped: list[SkippedFile]
                  ) -> list[dict[str, object]]:
    """One row per real file: symlinks to a file already listed become "alias" entries."""
    by_target: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_target.setdefault(os.path.realpath(str(row["path"])), []).append(row)
    dropped: set[int] = set()
    for target, group in by_target.items():
        if len(group) < 2:
            continue
        # Keep the real file when one of them is; else the first link by record id.
        group = sorted(group, key=lambda r: (os.path.islink(str(r["path"])),
                                             str(r["record_id"])))
        keep = group[0]
        for row in group[1:]:
            where = ""
            if (row["source_split"], row["label"]) != (keep["source_split"], keep["label"]):
                where = (f"; it sits in {_place(row)} but the file is in {_place(keep)}: "
                         "contradictory, check the link")
            skipped.append(SkippedFile(
                str(row["record_id"]), f"same file as {keep['record_id']} (-> {target}){where}",
                "alias"))
            dropped.add(id(row))
    return [r for r in rows if id(r) not in dropped]


def _place(row: dict[str, object]) -> str:
    split = f"{row['source_split']}/" if row["source_split"] else ""
    return split + CLASS_NAMES[int(row["label"])]  # type: ignore[call-overload]


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


def _read_class_folders(root: Path, folder: Path, split: str, rows: list[dict[str, object]],
                        skipped: list[SkippedFile]) -> None:
    """Append a row per image under ``folder``'s class folders; note every other file."""
    for label, class_dir in _class_dirs(folder).items():
        found = 0
        for dirpath, dirnames, filenames in os.walk(class_dir):
            here = Path(dirpath)
            for name in sorted(dirnames):
                if os.path.islink(here / name) and not is_hidden(name):
                    skipped.append(SkippedFile(_relative(root, here / name),
                                               "symlink to a folder (not followed)", "ignored"))
            dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
            for name in sorted(filenames):
                if is_hidden(name):
                    continue
                full = here / name
                record_id = _relative(root, full)
                try:
                    os.stat(full)
                except OSError as exc:  # a dangling or looping symlink, no permission, ...
                    skipped.append(SkippedFile(record_id, unreadable_reason(full, exc),
                                               "unreadable"))
                    continue
                if not is_image_file(full):
                    skipped.append(SkippedFile(record_id, f"not an image ({ACCEPTED_TEXT})",
                                               "ignored"))
                    continue
                rows.append({
                    "record_id": record_id,
                    "path": str(full),
                    "label": label,
                    "patient_id": patient_id_from_name(name),
                    "source_split": split,
                    "subgroup": subgroup_from_name(name, label),
                })
                found += 1
        if not found:
            raise DataError(f"class folder {class_dir} has no images ({ACCEPTED_TEXT}); "
                            "add its images or remove the empty folder")


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


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


def _read_manifest(csv_path: Path, *, allow_outside_root: bool) -> list[dict[str, object]]:
    base = csv_path.parent
    real_base = Path(os.path.realpath(base))
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in ("path", "label") if c not in header]
        if missing:
            raise DataError(f"manifest {csv_path} line 1: missing column(s) {missing}; the "
                            "header must have path,label[,patient_id][,split]")
        reader.fieldnames = header
        rows: list[dict[str, object]] = []
        seen: dict[str, tuple[int, str]] = {}  # real path -> (line, path as written)
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
            full = Path(os.path.normpath(Path(rel) if Path(rel).is_absolute() else base / rel))
            real = os.path.realpath(full)
            inside = Path(real).is_relative_to(real_base)
            if not inside and not allow_outside_root:
                raise DataError(
                    f"{where}: {rel} resolves to {real}, outside the data root {base} (the "
                    "manifest's folder); move the images (or the manifest) so that they sit "
                    "under its folder, or pass --allow-outside-root if that is intended")
            if not full.is_file():
                raise DataError(f"{where}: file {full} does not exist; fix the path (relative "
                                "paths are relative to the manifest's folder)")
            if real in seen:
                first_line, first_rel = seen[real]
                raise DataError(
                    f"{where}: {rel} is the same file as {first_rel} on line {first_line} "
                    f"({real}); list each image once")
            seen[real] = (lineno, rel)
            try:
                record_id = full.relative_to(base).as_posix()
            except ValueError:  # outside the manifest's folder (allowed): the absolute path
                record_id = full.as_posix()
            patient = (raw.get("patient_id") or "").strip() or patient_id_from_name(full.name)
            subgroup = ((raw.get("subgroup") or "").strip() if "subgroup" in header
                        else subgroup_from_name(full.name, label))
            rows.append({"record_id": record_id, "path": str(full), "label": label,
                         "patient_id": patient, "source_split": _SPLIT_ALIASES[split_raw],
                         "line": lineno, "subgroup": subgroup})
    if not rows:
        raise DataError(f"manifest {csv_path} lists no images; add rows path,label")
    _check_split_column(csv_path, rows)
    return rows


def _check_split_column(csv_path: Path, rows: list[dict[str, object]]) -> None:
    """A split column is used on every row or on none; when used, it must name train rows."""
    given = [r for r in rows if r["source_split"]]
    if not given:
        return  # no split column: test and validation are carved
    blank = next((r for r in rows if not r["source_split"]), None)
    if blank is not None:
        raise DataError(
            f"manifest {csv_path} line {blank['line']}: empty split, while other rows have one; "
            "give every row train, val or test (or leave the column empty on every row to have "
            "test and validation carved by patient)")
    if not any(r["source_split"] == "train" for r in rows):
        raise DataError(f"manifest {csv_path}: the split column names no train rows; mark the "
                        "images to fit on as train")
