"""Readers: layouts, records table, hashes, patient ids and error messages."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data import RECORD_COLUMNS, DataError, load_dataset, patient_id_from_name
from cxrbench.data import scan as scan_mod


def _img(path: Path, value: int = 100, size: tuple[int, int] = (16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)
    return path


def _kaggle_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "SYNTHETIC.txt").unlink()
    return dst


def test_synthetic_kaggle_layout(synthetic_root: Path) -> None:
    ds = load_dataset(synthetic_root)
    assert ds.kind == "synthetic" and ds.synthetic
    assert tuple(ds.records.columns) == RECORD_COLUMNS
    assert ds.counts() == {"train": {"NORMAL": 12, "PNEUMONIA": 12},
                           "test": {"NORMAL": 6, "PNEUMONIA": 6}}
    rec = ds.records
    assert set(rec["label"]) == {0, 1}
    assert set(rec["width"]) == {64} and set(rec["height"]) == {64}  # from the headers
    assert set(rec["pixel_spacing_mm"]) == {""}  # JPEGs carry none
    assert rec["record_id"].is_unique
    assert set(rec["source_split"]) == {"train", "test"}
    row = rec.iloc[0]
    assert Path(row["path"]) == synthetic_root.absolute() / row["record_id"]
    assert row["content_hash"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
    assert all(rec.loc[rec.label == 1, "record_id"].str.contains("/PNEUMONIA/"))


def test_kaggle_layout_with_val_and_junk_files(synthetic_root: Path, tmp_path: Path) -> None:
    root = _kaggle_copy(synthetic_root, tmp_path / "kaggle")
    _img(root / "val" / "NORMAL" / "IM-9000-0001.JPG")
    _img(root / "val" / "PNEUMONIA" / "person900_virus_1.png")
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0\1")
    (root / "train" / "NORMAL" / "notes.txt").write_text("not an image")
    (root / "train" / "NORMAL" / "._IM-0001-0001.jpeg").write_bytes(b"AppleDouble")
    ds = load_dataset(root)
    assert ds.kind == "kaggle" and not ds.synthetic
    assert not ds.val_given  # Kaggle's val/ is pooled with train/, not used as it is
    assert [(s.record_id, s.kind) for s in ds.skipped] == [
        ("train/NORMAL/notes.txt", "ignored")]  # hidden files are skipped without a word
    assert ds.counts()["val"] == {"NORMAL": 1, "PNEUMONIA": 1}
    assert ds.counts()["train"] == {"NORMAL": 12, "PNEUMONIA": 12}
    assert ds.splits_present() == ["train", "val", "test"]
    assert "val/NORMAL/IM-9000-0001.JPG" in set(ds.records["record_id"])


def test_data_hash_is_location_independent_and_content_sensitive(
    synthetic_root: Path, tmp_path: Path
) -> None:
    original = load_dataset(synthetic_root)
    copy = load_dataset(shutil.copytree(synthetic_root, tmp_path / "elsewhere"))
    assert copy.data_hash == original.data_hash
    target = tmp_path / "elsewhere" / copy.records["record_id"].iloc[0]
    _img(target, value=7)
    assert load_dataset(tmp_path / "elsewhere").data_hash != original.data_hash


def test_flat_layout_and_single_class(tmp_path: Path) -> None:
    _img(tmp_path / "flat" / "NORMAL" / "IM-0001-0001.jpeg")
    _img(tmp_path / "flat" / "PNEUMONIA" / "person1_bacteria_1.jpeg")
    _img(tmp_path / "flat" / "PNEUMONIA" / "person1_bacteria_2.jpeg", value=90)
    ds = load_dataset(tmp_path / "flat")
    assert ds.kind == "flat"
    assert set(ds.records["source_split"]) == {""}
    assert ds.counts() == {"all": {"NORMAL": 1, "PNEUMONIA": 2}}
    assert list(ds.records["patient_id"]) == ["IM-0001", "person1", "person1"]

    _img(tmp_path / "one" / "PNEUMONIA" / "person2_virus_3.jpeg")
    one = load_dataset(tmp_path / "one")
    assert set(one.records["label"]) == {1}


def test_content_hashes_are_cached_and_refreshed(synthetic_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = shutil.copytree(synthetic_root, tmp_path / "d")
    first = load_dataset(root)

    def no_hashing(path: str) -> str:
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(scan_mod, "sha256_file", no_hashing)
    assert load_dataset(root).data_hash == first.data_hash  # warm: nothing re-hashed
    monkeypatch.undo()
    _img(root / first.records["record_id"].iloc[3], value=3, size=(20, 20))
    changed = load_dataset(root).records
    assert changed["content_hash"].iloc[3] != first.records["content_hash"].iloc[3]
    assert (changed["content_hash"].drop(index=3) == first.records["content_hash"].drop(index=3)
            ).all()


def test_manifest(tmp_path: Path) -> None:
    a = _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "person5_virus_9.jpeg", value=50)
    outside = _img(tmp_path.parent / f"{tmp_path.name}-outside" / "c.jpg", value=200)
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "path,label,patient_id,split\n"
        "imgs/a.png,0,P-1,train\n"
        "imgs/person5_virus_9.jpeg,pneumonia,,TEST\n"
        f"{outside},Normal,P-1,val\n"
    )
    ds = load_dataset(csv, allow_outside_root=True)
    assert ds.kind == "manifest" and ds.root == tmp_path.absolute() and ds.val_given
    rec = ds.records.set_index("record_id")
    assert rec.loc["imgs/a.png", "path"] == str(a.absolute())
    assert rec.loc["imgs/a.png", "patient_id"] == "P-1"  # the column wins
    assert rec.loc["imgs/person5_virus_9.jpeg", "patient_id"] == "person5"  # from the name
    assert rec.loc["imgs/person5_virus_9.jpeg", "label"] == 1
    assert rec.loc[outside.as_posix(), "source_split"] == "val"
    assert sorted(rec["source_split"]) == ["test", "train", "val"]


def test_manifest_without_optional_columns(tmp_path: Path) -> None:
    _img(tmp_path / "x" / "IM-0003-0001.jpeg")
    (tmp_path / "m.csv").write_text("label,path\nNORMAL,x/IM-0003-0001.jpeg\n")
    ds = load_dataset(tmp_path / "m.csv")
    assert ds.records.iloc[0][["patient_id", "source_split", "label"]].tolist() == [
        "IM-0003", "", 0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("file,label\nx.png,0\n", r"line 1: missing column\(s\) \['path'\]"),
        ("path,label\nx.png,0\nx.png,sick\n", r"line 3: unknown label 'sick'"),
        ("path,label,split\nx.png,1,holdout\n", r"line 2: unknown split 'holdout'"),
        ("path,label\nnope.png,1\n", r"line 2: file .*nope.png does not exist"),
        ("path,label\n", r"lists no images"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    _img(tmp_path / "x.png")
    (tmp_path / "m.csv").write_text(body)
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path / "m.csv")


def test_missing_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; pass --data PATH or set CXRBENCH_DATA"):
        load_dataset(tmp_path / "nowhere")


def test_folder_matching_no_layout_lists_layouts(tmp_path: Path) -> None:
    _img(tmp_path / "images" / "a.jpeg")
    with pytest.raises(DataError, match="matches no data set layout.*accepted layouts: Kaggle"):
        load_dataset(tmp_path)


def test_nested_archive_folder_is_suggested(synthetic_root: Path, tmp_path: Path) -> None:
    shutil.copytree(synthetic_root, tmp_path / "archive" / "chest_xray")
    with pytest.raises(DataError, match=r"did you mean .*chest_xray\?"):
        load_dataset(tmp_path / "archive")


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    _img(tmp_path / "NORMAL" / "IM-0001-0001.jpeg")
    (tmp_path / "PNEUMONIA").mkdir()
    (tmp_path / "PNEUMONIA" / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match=r"class folder .*PNEUMONIA has no images"):
        load_dataset(tmp_path)


def test_non_csv_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a .csv manifest"):
        load_dataset(_img(tmp_path / "a.png"))


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1_bacteria_1.jpeg", "person1"),
        ("person1429_virus_2443.jpeg", "person1429"),
        ("person1_virus_6_2.jpeg", "person1"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0117-0001-0002.jpeg", "IM-0117"),
        ("NORMAL2-IM-0381-0001.jpeg", "NORMAL2-IM-0381"),
        ("NORMAL2-IM-1110-0001-0002.JPEG", "NORMAL2-IM-1110"),
        ("train/NORMAL/IM-0001-0001.png", "IM-0001"),
        ("scan7.png", "scan7"),
        ("person_bacteria_1.jpeg", "person_bacteria_1"),
        ("IM-12.jpeg", "IM-12"),
    ],
)
def test_patient_ids_from_names(name: str, patient: str) -> None:
    assert patient_id_from_name(name) == patient


@pytest.mark.realdata
def test_real_data_counts_and_patients(real_data: Path) -> None:
    ds = load_dataset(real_data)
    assert ds.kind == "kaggle"
    assert ds.counts() == {"train": {"NORMAL": 1341, "PNEUMONIA": 3875},
                           "test": {"NORMAL": 234, "PNEUMONIA": 390}}
    stems = ds.records["record_id"].map(lambda r: Path(r).stem)
    assert not (stems == ds.records["patient_id"]).any(), "every real name matches a pattern"
    assert ds.records["patient_id"].nunique() == 3103
    assert (ds.records.groupby("patient_id")["label"].nunique() == 1).all()
