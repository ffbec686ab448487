"""Helpers for the data-layer tests: the CLI in a subprocess, images and DICOM files on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str | Path, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``cxrbench ARGS`` in a fresh process, as a user runs it (a crash cannot take pytest down).

    The cache folder is passed explicitly: the test process's CXRBENCH_CACHE_DIR is per test.
    """
    env = {**os.environ, "CXRBENCH_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "cxrbench", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def run_cli(data: Path, out: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    """``cxrbench run`` of the majority baseline, inline and without a report (fast)."""
    return cli("run", *RUN_MAJORITY, "--data", data, "--out", out, *args, cache=cache)


RUN_MAJORITY = ("--models", "majority", "--seeds", "0", "--executor", "inline", "--no-report")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def main_cli(capsys: Any, *args: str | Path) -> Outcome:
    """``cxrbench ARGS`` in this process (fast; the cache is the test's CXRBENCH_CACHE_DIR)."""
    from cxrbench.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def run_main(capsys: Any, data: Path, out: Path, *args: str) -> Outcome:
    """``cxrbench run`` of the majority baseline in this process."""
    return main_cli(capsys, "run", *RUN_MAJORITY, "--data", data, "--out", out, *args)


def results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def copy_set(src: Path, dst: Path) -> Path:
    """A writable copy of a (synthetic) data set, without its SYNTHETIC marker."""
    shutil.copytree(src, dst)
    (dst / "SYNTHETIC.txt").unlink(missing_ok=True)
    return dst


def gray(height: int, width: int, seed: int = 0, dtype: type = np.uint8,
         high: int = 256) -> np.ndarray:
    """A smooth gradient plus noise, so that resizing and duplicates behave like real films."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(height), np.arange(width)) * (high / (height + width))
    return np.clip(ramp + rng.normal(0, high / 20, (height, width)), 0, high - 1).astype(dtype)


def write_image(path: Path, pixels: np.ndarray, **save: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save)
    return path


def write_dicom(path: Path, stored: np.ndarray, *, photometric: str = "MONOCHROME2",
                bits_stored: int = 12, window: tuple[float, float] | None = None,
                rescale: tuple[float, float] | None = None,
                voi_lut: np.ndarray | None = None,
                spacing: tuple[float, float] | None = (0.139, 0.139),
                preamble: bool = True) -> Path:
    """A single-frame grayscale DICOM file written with pydicom (explicit VR little endian)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = path.stem
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 * stored.dtype.itemsize
    ds.BitsStored = bits_stored if stored.dtype.itemsize > 1 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    if spacing is not None:
        ds.ImagerPixelSpacing = list(spacing)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        from pydicom.dataset import Dataset

        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 16]
        item.LUTData = voi_lut.astype("<u2").tobytes()  # VR OW
        ds.VOILUTSequence = Sequence([item])
    ds.PixelData = stored.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=preamble)
    return path
