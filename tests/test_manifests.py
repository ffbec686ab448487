"""Manifests mean what they say, through `cxrbench run` and `cxrbench data audit`.

The data root of a manifest is its folder. Its split column's train, val and test rows are the
splits as given; a path that resolves outside the root is refused (exit 2, the line named)
unless --allow-outside-root; the same file listed twice, however spelled, is refused; a split
column without test is an error unless --carve-test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from data_helpers import copy_set, main_cli, results, run_main

from cxrbench.data import DataError, load_dataset
from cxrbench.splits import make_split_plan


@pytest.fixture
def data(synthetic_root: Path, tmp_path: Path) -> Path:
    return copy_set(synthetic_root, tmp_path / "d")


def write_manifest(data: Path, rows: list[tuple[str, str, str]], name: str = "m.csv") -> Path:
    path = data / name
    path.write_text("path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows))
    return path


def rows_of(data: Path, *, val_every: int = 0, test: bool = True) -> list[tuple[str, str, str]]:
    """Every image of the copied Kaggle-layout set; each ``val_every``-th train image as val."""
    rows = []
    for i, path in enumerate(sorted(data.rglob("*.jpeg"))):
        rel = path.relative_to(data).as_posix()
        split, label = rel.split("/")[:2]
        if split == "train" and val_every and i % val_every == 0:
            split = "val"
        if split == "test" and not test:
            continue
        rows.append((rel, label, split))
    return rows


def test_given_val_rows_are_the_validation_split(data: Path, tmp_path: Path, capsys) -> None:
    rows = rows_of(data, val_every=4)
    given_val = sorted(p for p, _, s in rows if s == "val")
    assert len(given_val) == 6
    done = run_main(capsys, write_manifest(data, rows), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    res = results(tmp_path / "out")
    assert res["evaluation"]["val"]["ids"] == given_val
    assert res["split"]["strategy"] == "official test; val as given"
    plan = json.loads((tmp_path / "out" / "split_plan.json").read_text())
    assert sorted(plan["val_ids"]) == given_val
    assert not set(plan["train_ids"]) & set(given_val)


def test_path_outside_the_data_root_is_refused_unless_allowed(data: Path, tmp_path: Path,
                                                              capsys) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    moved = data / "train/NORMAL" / sorted(os.listdir(data / "train/NORMAL"))[0]
    moved.rename(outside / moved.name)
    rows = rows_of(data)
    rows.insert(3, (f"../elsewhere/{moved.name}", "NORMAL", "train"))
    manifest = write_manifest(data, rows)
    done = run_main(capsys, manifest, tmp_path / "out")
    assert done.returncode == 2
    assert (f"cxrbench: error: manifest {manifest} line 5: ../elsewhere/{moved.name} resolves "
            f"to {outside / moved.name}, outside the data root {data} (the manifest's folder); "
            "move the images (or the manifest) so that they sit under its folder, or pass "
            "--allow-outside-root if that is intended") in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    audit = main_cli(capsys, "data", "audit", manifest)
    assert audit.returncode == 2 and "outside the data root" in audit.stderr

    allowed = run_main(capsys, manifest, tmp_path / "out", "--allow-outside-root")
    assert allowed.returncode == 0, allowed.stderr
    res = results(tmp_path / "out")
    assert res["provenance"]["data"]["n_records"] == 36
    audit = main_cli(capsys, "data", "audit", manifest, "--allow-outside-root")
    assert audit.returncode == 0 and "images     36" in audit.stdout


def test_system_files_are_never_read(data: Path, tmp_path: Path, capsys) -> None:
    rows = rows_of(data)
    rows.append(("../../../../../../../../etc/passwd", "0", "test"))
    manifest = write_manifest(data, rows)
    done = run_main(capsys, manifest, tmp_path / "out")
    assert done.returncode == 2
    assert f"line {len(rows) + 1}: ../../../../../../../../etc/passwd resolves to /etc/passwd, " \
           "outside the data root" in done.stderr
    assert not list(Path(os.environ["CXRBENCH_CACHE_DIR"]).rglob("*.json"))  # nothing hashed


@pytest.mark.parametrize("spelling", ["dotdot", "symlink", "absolute"])
def test_same_file_twice_is_refused_however_spelled(data: Path, tmp_path: Path, capsys,
                                                    spelling: str) -> None:
    rows = rows_of(data)
    first = rows[0][0]  # e.g. test/NORMAL/IM-....jpeg
    if spelling == "dotdot":
        again = f"train/../{first}"
    elif spelling == "symlink":
        (data / "links").mkdir()
        (data / "links" / "x.jpeg").symlink_to(data / first)
        again = "links/x.jpeg"
    else:
        again = str(data / first)
    rows.append((again, "PNEUMONIA", "train"))  # contradictory, and in another split
    manifest = write_manifest(data, rows)
    done = run_main(capsys, manifest, tmp_path / "out")
    assert done.returncode == 2
    assert (f"manifest {manifest} line {len(rows) + 1}: {again} is the same file as {first} on "
            f"line 2 ({data / first}); list each image once") in done.stderr


def test_split_column_without_test_needs_carve_test(data: Path, tmp_path: Path, capsys) -> None:
    manifest = write_manifest(data, rows_of(data, test=False))
    done = run_main(capsys, manifest, tmp_path / "out")
    assert done.returncode == 2
    assert ("cxrbench: error: the data's splits are train, with no test rows: a benchmark needs "
            "a test split it never fits on. Add test rows (a manifest's split column, or a "
            "test/ folder), or pass --carve-test to carve one from train by patient"
            ) in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()
    carved = run_main(capsys, manifest, tmp_path / "out", "--carve-test")
    assert carved.returncode == 0, carved.stderr
    split = results(tmp_path / "out")["split"]
    assert split["strategy"] == "no test given: test carved from train by patient (carve_test)"
    assert split["counts"]["test"]["normal"] > 0 and split["counts"]["test"]["pneumonia"] > 0


def test_split_given_on_some_rows_only_is_refused(data: Path) -> None:
    rows = rows_of(data)
    rows[4] = (rows[4][0], rows[4][1], "")
    with pytest.raises(DataError, match="line 6: empty split, while other rows have one"):
        load_dataset(write_manifest(data, rows))
    with pytest.raises(DataError, match="the split column names no train rows"):
        load_dataset(write_manifest(data, [r for r in rows_of(data) if r[2] == "test"]))


def test_given_val_with_carved_test_keeps_val_whole() -> None:
    import pandas as pd

    records = pd.DataFrame({
        "record_id": [f"r{i}" for i in range(40)],
        "label": [i % 2 for i in range(40)],
        "patient_id": [f"p{i // 2}" for i in range(40)],
        "source_split": ["val" if i < 8 else "train" for i in range(40)],
    })
    plan = make_split_plan(records, given_val=True, carve_test=True, seed=3)
    assert plan.val_ids == tuple(sorted(f"r{i}" for i in range(8)))
    assert plan.test_ids and not set(plan.test_ids) & set(plan.val_ids)
    assert len(plan.train_ids) + len(plan.test_ids) == 32
    pooled = make_split_plan(records, given_val=False, carve_test=True, seed=3)
    assert pooled.val_ids != plan.val_ids  # Kaggle-style: val rows pooled, validation carved
