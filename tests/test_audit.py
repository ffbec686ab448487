"""audit_dataset: counts, modes, unreadable files, duplicates by decoded pixels, leakage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cxrbench.data import audit_dataset, format_audit, load_dataset, patient_id_from_name


@pytest.fixture
def planted(synthetic_root: Path, tmp_path: Path) -> Path:
    """The synthetic set plus: a cross-split copy, a cross-label PNG re-encode, a within-split
    copy, and one unreadable file."""
    root = shutil.copytree(synthetic_root, tmp_path / "planted")
    train_normal = sorted((root / "train" / "NORMAL").iterdir())
    train_pneu = sorted((root / "train" / "PNEUMONIA").iterdir())
    shutil.copy(train_normal[0], root / "test" / "NORMAL" / "IM-7777-0001.jpeg")
    with Image.open(train_pneu[0]) as im:  # same pixels, other bytes and format
        im.save(root / "train" / "NORMAL" / "IM-8888-0001.png")
    shutil.copy(train_normal[1], root / "train" / "NORMAL" / "IM-6666-0001.jpeg")
    (root / "test" / "PNEUMONIA" / "person999_virus_1.jpeg").write_bytes(b"\xff\xd8broken")
    # a test patient's name, and image, also in train (a hint, not proof)
    test_image = sorted((root / "test" / "NORMAL").iterdir())[1]
    shutil.copy(test_image, root / "train" / "NORMAL" /
                f"{patient_id_from_name(test_image.name)}-0009.jpeg")
    return root


def test_audit_finds_planted_duplicates(planted: Path) -> None:
    ds = load_dataset(planted)
    report = audit_dataset(ds, workers=1)
    json.dumps(report)  # JSON-serialisable
    assert report["n_images"] == len(ds) == 24 + 12 + 5
    assert report["splits"] == {"train": {"NORMAL": 15, "PNEUMONIA": 12},
                                "test": {"NORMAL": 7, "PNEUMONIA": 7}}
    assert report["unreadable"] == [{"record_id": "test/PNEUMONIA/person999_virus_1.jpeg",
                                     "reason": report["unreadable"][0]["reason"]}]
    assert report["modes"] == {"L": len(ds) - 1}
    assert report["image_size"] == {"width": {"min": 64, "max": 64},
                                    "height": {"min": 64, "max": 64}}
    assert len(report["duplicate_groups"]) == 4
    assert all(len(g["record_ids"]) == 2 for g in report["duplicate_groups"])

    (cross_split,) = [g for g in report["cross_split_duplicate_groups"]
                      if "test/NORMAL/IM-7777-0001.jpeg" in g["record_ids"]]
    assert sorted(cross_split["splits"]) == ["test", "train"]
    assert len(report["cross_split_duplicate_groups"]) == 2  # the planted one + the patient copy
    (cross_label,) = report["cross_label_duplicate_groups"]
    assert "train/NORMAL/IM-8888-0001.png" in cross_label["record_ids"]
    assert sorted(cross_label["labels"]) == ["NORMAL", "PNEUMONIA"]

    several = report["patients_in_several_splits"]
    shared = patient_id_from_name(sorted((planted / "test" / "NORMAL").iterdir())[1].name)
    assert several["patients"] == {shared: ["test", "train"]} and several["count"] == 1
    assert "not documented" in several["note"]
    assert report["data_hash"] == ds.data_hash

    text = format_audit(report)
    assert "4 group(s)" in text and "1 across labels" in text and "unreadable 1" in text
    assert "ACROSS LABELS" in text and "IM-8888-0001.png" in text


def test_audit_parallel_equals_serial(planted: Path) -> None:
    ds = load_dataset(planted)
    assert audit_dataset(ds, workers=2) == audit_dataset(ds, workers=1)


def test_clean_synthetic_set_has_no_duplicates(synthetic_root: Path) -> None:
    report = audit_dataset(load_dataset(synthetic_root), workers=1)
    assert report["duplicate_groups"] == [] and report["unreadable"] == []
    assert report["synthetic"] is True


def test_flat_layout_uses_split_all(tmp_path: Path) -> None:
    for cls, value in (("NORMAL", 10), ("PNEUMONIA", 20)):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (30, 20), (value,) * 3).save(tmp_path / cls / f"{cls}.png")
    report = audit_dataset(load_dataset(tmp_path), workers=1)
    assert report["splits"] == {"all": {"NORMAL": 1, "PNEUMONIA": 1}}
    assert report["modes"] == {"RGB": 2}
    assert report["patients_in_several_splits"]["count"] == 0


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_audit_numbers(real_data: Path) -> None:
    report = audit_dataset(load_dataset(real_data))
    assert report["splits"] == {"train": {"NORMAL": 1341, "PNEUMONIA": 3875},
                                "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    assert report["unreadable"] == []
    assert len(report["duplicate_groups"]) == 30
    assert report["cross_split_duplicate_groups"] == []
    assert report["cross_label_duplicate_groups"] == []
