"""Helpers for the tests of saved models, ``evaluate`` and ``predict`` (not fixtures: each test
module makes its own module-scoped ones, with its own cache folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from cxrbench.cli import main

MODELS = "majority,pixels_logreg,hog_svm"  # fast, deterministic, three saving formats


def shifted_copy(src: Path, dst: Path, *, gamma: float = 0.6, size: int = 150,
                 suffix: str = ".png") -> Path:
    """``src/{NORMAL,PNEUMONIA}/*`` with another contrast (gamma), size and file format, as
    flat class folders under ``dst`` (file stems kept: same patients and subgroups)."""
    lut = [round(255 * (v / 255) ** gamma) for v in range(256)]
    for label in ("NORMAL", "PNEUMONIA"):
        (dst / label).mkdir(parents=True, exist_ok=True)
        for path in sorted((src / label).iterdir()):
            with Image.open(path) as im:
                shifted = im.convert("L").point(lut).resize((size, size), Image.Resampling.BICUBIC)
                shifted.save(dst / label / (path.stem + suffix))
    return dst


def write_manifest(folder: Path, name: str = "manifest.csv", subgroup: bool = False) -> Path:
    """A manifest (``path,label[,subgroup]``) listing the class folders' files under ``folder``."""
    lines = ["path,label" + (",subgroup" if subgroup else "")]
    for label in ("NORMAL", "PNEUMONIA"):
        for path in sorted((folder / label).iterdir()):
            row = f"{label}/{path.name},{label}"
            lines.append(row + (f",site{len(lines) % 2}" if subgroup else ""))
    target = folder / name
    target.write_text("\n".join(lines) + "\n")
    return target


def kaggle_with_test(train_root: Path, test_flat: Path, dst: Path) -> Path:
    """A Kaggle layout with ``train_root``'s train/ (same bytes) and ``test_flat`` as test/."""
    shutil.copytree(train_root / "train", dst / "train")
    shutil.copytree(test_flat, dst / "test", ignore=shutil.ignore_patterns("*.csv"))
    (dst / "SYNTHETIC.txt").write_text("synthetic, shifted test split (tests)\n")
    return dst


def run_saved(data: Path, out: Path, cache: Path, models: str = MODELS,
              extra: tuple[str, ...] = ()) -> dict:
    """``cxrbench run --save-models`` (inline executor); returns the results."""
    code = main(["run", "--data", str(data), "--models", models, "--seeds", "0",
                 "--executor", "inline", "--save-models", "--cache-dir", str(cache),
                 "--out", str(out), *extra])
    assert code == 0, f"run exited {code}"
    return json.loads((out / "results.json").read_text())


def by_file_name(ids: list[str], values: list[float]) -> dict[str, float]:
    """Values keyed by the file's stem (ids differ by folder between layouts)."""
    return {Path(i).stem: v for i, v in zip(ids, values, strict=True)}


def max_difference(a: dict[str, float], b: dict[str, float]) -> float:
    assert a.keys() == b.keys()
    return float(np.max(np.abs([a[k] - b[k] for k in a])))
