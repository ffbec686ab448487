"""Audit a data set: counts, sizes, modes, unreadable files, duplicates and leakage.

Duplicates are found by content, not by name: every file is decoded at its native size and mode
and the decoded pixels are hashed, so re-encoded copies of the same image match while images
that merely share a file name do not. Groups that span splits are train/test leakage; groups
that span labels are contradictory labels. Files the loader left out (unreadable, ignored,
symlink aliases) and images that are tiny or very elongated are listed too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from cxrbench.cores import usable_cores
from cxrbench.data.cache import run_chunks, split_chunks
from cxrbench.data.decode import ImageDecodeError, load_native, pixel_hash
from cxrbench.data.records import CLASS_NAMES, EXTREME_ASPECT, SMALL_IMAGE_PX, Dataset

PATIENT_NAME_NOTE = (
    "patient ids come from file names; the same name in two Kaggle splits is not documented to "
    "be the same child, so this is a hint to check, not proof of leakage (content duplicates "
    "across splits are)"
)


def _inspect_chunk(items: list[tuple[int, str]]) -> list[tuple[int, dict[str, Any]]]:
    """Worker: decode each file natively; return its mode, size and pixel hash, or the reason."""
    out = []
    for i, path in items:
        try:
            im = load_native(path)
        except ImageDecodeError as exc:
            out.append((i, {"reason": exc.reason}))
            continue
        out.append((i, {"mode": im.mode, "width": im.size[0], "height": im.size[1],
                        "pixel_hash": pixel_hash(im)}))
    return out


def audit_dataset(dataset: Dataset, workers: int | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """A JSON-serialisable report on ``dataset`` (see ``format_audit`` for a text summary)."""
    rec = dataset.records
    workers = max(1, workers if workers is not None else usable_cores())
    items = list(enumerate(rec["path"].astype(str)))
    info: dict[int, dict[str, Any]] = {}
    n_workers = 1 if len(items) < 32 else workers
    for chunk in run_chunks(_inspect_chunk, split_chunks(items, n_workers, max_chunk=128),
                            workers=n_workers, progress=progress, description="auditing"):
        info.update(chunk)

    ids = rec["record_id"].tolist()
    splits = [s or "all" for s in rec["source_split"].astype(str)]
    labels = rec["label"].astype(int).tolist()
    ok = [i for i in range(len(rec)) if "reason" not in info[i]]
    unreadable = sorted(
        [{"record_id": ids[i], "reason": info[i]["reason"]}
         for i in range(len(rec)) if "reason" in info[i]]
        + [{"record_id": s.record_id, "reason": s.reason}
           for s in dataset.skipped_of("unreadable")], key=lambda u: u["record_id"])

    by_pixels: dict[str, list[int]] = defaultdict(list)
    for i in ok:
        by_pixels[info[i]["pixel_hash"]].append(i)
    groups = [
        {"record_ids": [ids[i] for i in members],
         "splits": [splits[i] for i in members],
         "labels": [CLASS_NAMES[labels[i]] for i in members]}
        for members in sorted(by_pixels.values(), key=lambda m: ids[m[0]]) if len(members) > 1
    ]
    cross_split = [g for g in groups if len(set(g["splits"])) > 1]
    cross_label = [g for g in groups if len(set(g["labels"])) > 1]

    patients: dict[str, set[str]] = defaultdict(set)
    for pid, split in zip(rec["patient_id"].astype(str), splits, strict=True):
        patients[pid].add(split)
    in_several = {pid: sorted(s) for pid, s in sorted(patients.items()) if len(s) > 1}

    odd = dataset.odd_images()
    widths = [info[i]["width"] for i in ok]
    heights = [info[i]["height"] for i in ok]
    return {
        "root": str(dataset.root),
        "kind": dataset.kind,
        "synthetic": dataset.synthetic,
        "data_hash": dataset.data_hash,
        "n_images": len(rec),
        "n_patients": len(patients),
        "splits": dataset.counts(),
        "image_size": {
            "width": {"min": min(widths, default=None), "max": max(widths, default=None)},
            "height": {"min": min(heights, default=None), "max": max(heights, default=None)},
        },
        "modes": dict(sorted(Counter(info[i]["mode"] for i in ok).items())),
        "unreadable": unreadable,
        "ignored_files": [{"record_id": s.record_id, "reason": s.reason}
                          for s in dataset.skipped_of("ignored")],
        "symlink_aliases": [{"record_id": s.record_id, "reason": s.reason}
                            for s in dataset.skipped_of("alias")],
        "small_images": {"min_side_px": SMALL_IMAGE_PX, "record_ids": odd["small"]},
        "extreme_aspect_images": {"max_ratio": EXTREME_ASPECT,
                                  "record_ids": odd["extreme_aspect"]},
        "duplicate_groups": groups,
        "cross_split_duplicate_groups": cross_split,
        "cross_label_duplicate_groups": cross_label,
        "patients_in_several_splits": {
            "count": len(in_several),
            "note": PATIENT_NAME_NOTE,
            "patients": in_several,
        },
    }


def format_audit(report: dict[str, Any]) -> str:
    """A short, readable terminal summary of an ``audit_dataset`` report."""
    lines = [
        f"data set   {report['root']}  ({report['kind']}"
        + (", SYNTHETIC" if report.get("synthetic") else "") + ")",
        f"data hash  {report['data_hash']}",
        f"images     {report['n_images']}  patients {report.get('n_patients', '?')}",
        "",
        f"{'split':<8}{'NORMAL':>8}{'PNEUMONIA':>11}{'total':>8}",
    ]
    for split, c in report["splits"].items():
        lines.append(f"{split:<8}{c['NORMAL']:>8}{c['PNEUMONIA']:>11}"
                     f"{c['NORMAL'] + c['PNEUMONIA']:>8}")
    size = report["image_size"]
    lines += [
        "",
        f"size       width {size['width']['min']}-{size['width']['max']} px, "
        f"height {size['height']['min']}-{size['height']['max']} px",
        "modes      " + (", ".join(f"{m} {n}" for m, n in report["modes"].items()) or "-"),
        f"unreadable {len(report['unreadable'])}",
    ]
    lines += [f"  {u['record_id']}: {u['reason']}" for u in report["unreadable"][:10]]
    for title, key in (("ignored   ", "ignored_files"), ("aliases   ", "symlink_aliases")):
        items = report.get(key, [])
        lines.append(f"{title} {len(items)}" + (
            " (not images cxrbench reads)" if key == "ignored_files" and items else
            " (symlinks to an image already in the set; skipped)" if items else ""))
        lines += [f"  {u['record_id']}: {u['reason']}" for u in items[:10]]
        if len(items) > 10:
            lines.append(f"  ... {len(items) - 10} more (--json lists them all)")
    for title, key, rule in (
            ("small     ", "small_images", "shorter side under {min_side_px} px"),
            ("elongated ", "extreme_aspect_images", "longer than {max_ratio:g}:1")):
        odd = report.get(key)
        if odd is None:
            continue
        ids = odd["record_ids"]
        lines.append(f"{title} {len(ids)} image(s) {rule.format(**odd)}"
                     + (": " + ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
                        if ids else ""))
    lines += [
        f"duplicates {len(report['duplicate_groups'])} group(s) of identical decoded pixels; "
        f"{len(report['cross_split_duplicate_groups'])} across splits, "
        f"{len(report['cross_label_duplicate_groups'])} across labels",
    ]
    for title, key in (("ACROSS SPLITS (leakage)", "cross_split_duplicate_groups"),
                       ("ACROSS LABELS (contradictory)", "cross_label_duplicate_groups")):
        for g in report[key][:10]:
            lines.append(f"  {title}: " + ", ".join(
                f"{r} [{s}/{lab}]" for r, s, lab in zip(g["record_ids"], g["splits"],
                                                        g["labels"], strict=True)))
    several = report["patients_in_several_splits"]
    lines.append(f"patients   {several['count']} patient id(s) in several splits"
                 + (f" (e.g. {', '.join(list(several['patients'])[:5])}); {several['note']}"
                    if several["count"] else ""))
    return "\n".join(lines)
