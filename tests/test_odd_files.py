"""Odd files in class folders, through `cxrbench run` and `cxrbench data audit`.

Dangling and looping symlinks are unreadable files with their reason (no traceback); a symlink
to an image already in the set is skipped with a warning (the real file is kept, so no image
counts twice); a symlinked folder is listed, not followed; tiny and very elongated images are
flagged by the audit and warned about by the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from data_helpers import copy_set, gray, main_cli, results, run_main, write_image

from cxrbench.data import load_dataset


@pytest.fixture
def data(synthetic_root: Path, tmp_path: Path) -> Path:
    return copy_set(synthetic_root, tmp_path / "d")


def first(folder: Path) -> Path:
    return sorted(folder.glob("*.jpeg"))[0]


def test_dangling_and_looping_symlinks_are_unreadable_not_fatal(data: Path, tmp_path: Path,
                                                                capsys) -> None:
    (data / "train/NORMAL/gone.jpeg").symlink_to(data / "nowhere.jpeg")
    loop = data / "test/PNEUMONIA/loop.jpeg"
    loop.symlink_to(loop)
    done = run_main(capsys, data, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert ("warning: 2 file(s) cannot be opened and are left out: test/PNEUMONIA/loop.jpeg "
            "(symlink loop (loop.jpeg -> " in done.stderr)
    assert ("train/NORMAL/gone.jpeg (dangling symlink (-> "
            f"{data / 'nowhere.jpeg'}, which does not exist))") in done.stderr
    data_info = results(tmp_path / "out")["provenance"]["data"]
    assert data_info["unreadable"] == ["test/PNEUMONIA/loop.jpeg", "train/NORMAL/gone.jpeg"]
    assert data_info["n_records"] == 36

    audit = main_cli(capsys, "data", "audit", data, "--json")
    assert audit.returncode == 0, audit.stderr
    unreadable = {u["record_id"]: u["reason"] for u in json.loads(audit.stdout)["unreadable"]}
    assert unreadable["test/PNEUMONIA/loop.jpeg"].startswith("symlink loop")
    assert unreadable["train/NORMAL/gone.jpeg"].startswith("dangling symlink")


def test_symlink_to_an_image_in_the_set_is_skipped_with_a_warning(data: Path, tmp_path: Path,
                                                                  capsys) -> None:
    real = first(data / "train/NORMAL")
    (data / "train/NORMAL/copy.jpeg").symlink_to(real)  # same split and label
    (data / "test/PNEUMONIA/leak.jpeg").symlink_to(real)  # another split and label
    ds = load_dataset(data)
    assert len(ds.records) == 36 and real.relative_to(data).as_posix() in set(
        ds.records["record_id"])
    done = run_main(capsys, data, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    rid = real.relative_to(data).as_posix()
    assert ("warning: skipped 2 symlink(s) to an image already in the set, so that no image "
            f"counts twice: test/PNEUMONIA/leak.jpeg (same file as {rid} (-> {real}); it sits "
            "in test/PNEUMONIA but the file is in train/NORMAL: contradictory, check the link)"
            ) in done.stderr
    evaluation = results(tmp_path / "out")["evaluation"]
    assert "test/PNEUMONIA/leak.jpeg" not in evaluation["test"]["ids"]
    audit = main_cli(capsys, "data", "audit", data)
    assert "aliases    2 (symlinks to an image already in the set; skipped)" in audit.stdout


def test_symlinked_folder_in_a_class_folder_is_listed(data: Path, capsys) -> None:
    (data / "train/NORMAL/more").symlink_to(data / "test/NORMAL", target_is_directory=True)
    audit = main_cli(capsys, "data", "audit", data)
    assert audit.returncode == 0
    assert "  train/NORMAL/more: symlink to a folder (not followed)" in audit.stdout


def test_small_and_elongated_images_are_flagged(data: Path, tmp_path: Path, capsys) -> None:
    write_image(data / "train/NORMAL/IM-7001-0001.png", np.full((1, 1), 128, np.uint8))
    write_image(data / "train/PNEUMONIA/person700_bacteria_1.png", gray(80, 400))
    done = run_main(capsys, data, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert ("warning: 1 image(s) smaller than 64 px on a side are stretched up to any larger "
            "model input: train/NORMAL/IM-7001-0001.png; check that they are whole films"
            ) in done.stderr
    assert ("warning: 1 image(s) longer than 3:1 will be squeezed into a square: "
            "train/PNEUMONIA/person700_bacteria_1.png") in done.stderr
    audit = main_cli(capsys, "data", "audit", data)
    assert ("small      1 image(s) shorter side under 64 px: train/NORMAL/IM-7001-0001.png"
            in audit.stdout)
    assert ("elongated  1 image(s) longer than 3:1: train/PNEUMONIA/person700_bacteria_1.png"
            in audit.stdout)
    report = json.loads(main_cli(capsys, "data", "audit", data, "--json").stdout)
    assert report["small_images"]["record_ids"] == ["train/NORMAL/IM-7001-0001.png"]


def test_file_that_cannot_be_read_is_unreadable(data: Path, monkeypatch) -> None:
    """A file listed but not readable (no permission; as root, injected) is named, not raised."""
    from cxrbench.data import scan

    target = first(data / "test/NORMAL")
    if os.geteuid() != 0:
        target.chmod(0)
    else:  # root reads whatever the permissions: inject the error the others would get
        real_sha = scan.sha256_file

        def sha(path: str) -> str:
            if Path(path) == target:
                raise PermissionError(13, "Permission denied", path)
            return real_sha(path)

        monkeypatch.setattr(scan, "sha256_file", sha)
    ds = load_dataset(data)
    assert [(s.record_id, s.kind) for s in ds.skipped] == [
        (target.relative_to(data).as_posix(), "unreadable")]
    assert ds.skipped[0].reason == "PermissionError: Permission denied"
    assert len(ds.records) == 35
