"""Input formats: DICOM (pydicom), 16- and 8-bit TIFF, BMP and WebP decode like PNGs.

DICOM files are made with pydicom; the display pipeline (modality LUT, VOI window or LUT,
MONOCHROME1 inversion) is checked on pixels, pixel spacing in the records table, and a mixed
folder goes through `cxrbench run` and `cxrbench data audit` as a user would run them.
16-bit images decode in bounded memory (peak RSS of a subprocess), with pixels identical to the
whole-image pipeline of earlier versions (so image caches stay valid).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from data_helpers import gray, main_cli, results, run_main, write_dicom, write_image
from PIL import Image

from cxrbench.data import load_dataset
from cxrbench.data.decode import MAX_PIXELS, ImageDecodeError, decode_image


def _old_pipeline(path: Path, size: int) -> np.ndarray:
    """How 16-bit images were decoded before strips: whole-image float64 stretch, then resize."""
    with Image.open(path) as im:
        values = np.asarray(im).astype(np.float64)
    lo, hi = values.min(), values.max()
    eight = np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    out = Image.fromarray(eight).resize((size, size), Image.Resampling.BILINEAR,
                                        reducing_gap=3.0)
    return np.asarray(out)


@pytest.mark.parametrize(("height", "width"), [(200, 300), (1503, 2001), (97, 1900)])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_strips_give_the_old_pixels(tmp_path: Path, height: int, width: int,
                                           suffix: str) -> None:
    path = write_image(tmp_path / f"g16{suffix}", gray(height, width, high=4096,
                                                       dtype=np.uint16) + 300)
    assert Image.open(path).mode == "I;16"
    for size in (32, 64, 224):
        assert np.array_equal(decode_image(path, size)[:, :, 0], _old_pipeline(path, size))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".dcm"])
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for VmHWM")
def test_16_bit_6000_px_decodes_in_bounded_memory(tmp_path: Path, suffix: str) -> None:
    pixels = np.zeros((6000, 6000), np.uint16)
    pixels[::7] = 4000
    pixels[:, ::13] = 1000
    path = tmp_path / f"big{suffix}"
    if suffix == ".dcm":  # uncompressed: a 72 MB file
        write_dicom(path, pixels, window=(2000, 3000))
    else:  # a small file claiming 36 Mpx
        write_image(path, pixels, **({"compression": "tiff_deflate"} if suffix == ".tif"
                                     else {}))
        assert path.stat().st_size < 2_000_000
    del pixels
    # VmHWM, the peak RSS of this process image (ru_maxrss would include pytest's, inherited
    # across fork and exec).
    script = textwrap.dedent(f"""
        import re
        from cxrbench.data.decode import decode_image
        out = decode_image({str(path)!r}, 224)
        assert out.shape == (224, 224, 1) and out.max() > 0
        status = open("/proc/self/status").read()
        print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    peak_mb = int(done.stdout.split()[-1])
    # Whole process, interpreter and libraries included (about 33 MB of it, 49 MB with
    # pydicom); a 16-bit PNG took 926 MB before.
    assert peak_mb < 100, f"peak RSS {peak_mb} MB"


def test_pixel_limit_refuses_a_decompression_bomb(tmp_path: Path) -> None:
    side = int(MAX_PIXELS**0.5) + 100
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # a few KB on disk
    with pytest.raises(ImageDecodeError, match=rf"image too large: {side} x {side} = .* Mpx, "
                       r"over cxrbench's limit of 64 Mpx"):
        decode_image(path, 64)


@pytest.mark.parametrize(("suffix", "save"), [
    (".tif", {}), (".tiff", {"compression": "tiff_lzw"}), (".bmp", {}),
    (".webp", {"lossless": True})])
def test_8_bit_formats_decode_like_png(tmp_path: Path, suffix: str, save: dict) -> None:
    pixels = gray(150, 120, seed=3)
    png = write_image(tmp_path / "ref.png", pixels)
    other = write_image(tmp_path / f"x{suffix}", pixels, **save)
    for channels in (1, 3):
        assert np.array_equal(decode_image(other, 64, channels), decode_image(png, 64, channels))


def test_dicom_monochrome1_is_inverted_monochrome2(tmp_path: Path) -> None:
    stored = gray(300, 200, high=4096, dtype=np.uint16)
    mono2 = decode_image(write_dicom(tmp_path / "m2.dcm", stored), 64).astype(int)
    mono1 = decode_image(write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1"),
                         64).astype(int)
    assert np.abs(mono1 - (255 - mono2)).max() <= 1  # inverted before the resize: rounding
    assert mono2.min() < 20 and mono2.max() > 235  # no window: stretched min to max
    png = write_image(tmp_path / "same.png", stored)  # the same values as a 16-bit PNG
    assert np.abs(mono2 - decode_image(png, 64)).max() <= 1


def test_dicom_window_and_voi_lut_are_applied(tmp_path: Path) -> None:
    stored = np.zeros((128, 128), np.uint16)
    stored[:, :64] = 1000  # below the window
    stored[:, 64:] = 3000  # above it
    stored[:8] = 2048  # the window's centre
    window = decode_image(write_dicom(tmp_path / "w.dcm", stored, window=(2048, 800)), 128)
    assert (window[8:, :64] == 0).all() and (window[8:, 64:] == 255).all()
    assert abs(int(window[2, 10, 0]) - 128) <= 1
    # With rescale slope/intercept the window is in rescaled units: 2 * 2000 - 1000 = 3000 is
    # its centre (the stored 2000 would be below it), 2 * 1000 - 1000 is below, 5000 above.
    stored[:8] = 2000
    rescaled = decode_image(write_dicom(tmp_path / "r.dcm", stored, rescale=(2.0, -1000.0),
                                        window=(3000, 400)), 128)
    assert abs(int(rescaled[2, 10, 0]) - 128) <= 1
    assert (rescaled[8:, :64] == 0).all() and (rescaled[8:, 64:] == 255).all()
    # A VOI LUT sending everything below 2000 to 0 and the rest to 4000.
    lut = np.where(np.arange(4096) < 2000, 0, 4000).astype(np.uint16)
    voi = decode_image(write_dicom(tmp_path / "lut.dcm", stored, voi_lut=lut), 128)
    assert (voi[8:, :64] == 0).all() and (voi[:, 64:] == 255).all() and (voi[:8] == 255).all()


@pytest.mark.parametrize(("dtype", "bits_stored", "extra"), [
    (np.uint16, 12, {}), (np.int16, 12, {"rescale": (1.0, -1024.0)}), (np.uint8, 8, {}),
    (np.uint16, 16, {"window": (30000, 20000), "photometric": "MONOCHROME1"})])
def test_dicom_read_in_strips_equals_pydicom_whole(tmp_path: Path, monkeypatch, dtype: type,
                                                   bits_stored: int, extra: dict) -> None:
    import cxrbench.data.dicom as dicom

    info = np.iinfo(dtype)
    stored = np.random.default_rng(1).integers(info.min, info.max, (700, 300), dtype=dtype,
                                               endpoint=True)  # unused high bits set too
    path = write_dicom(tmp_path / "x.dcm", stored, bits_stored=bits_stored, **extra)
    streamed = decode_image(path, 64)
    monkeypatch.setattr(dicom, "native_strips", lambda *args: None)  # pydicom's pixel_array
    assert np.array_equal(streamed, decode_image(path, 64))


def _mixed_set(root: Path) -> Path:
    """A flat folder with every accepted format in each class, and a few other files."""
    for label, folder in enumerate(("NORMAL", "PNEUMONIA")):
        for i in range(8):
            pixels = gray(96, 80, seed=10 * label + i)
            stem = root / folder / f"{folder.lower()}{i}"
            kind = i % 4
            if kind == 0:
                write_image(stem.with_suffix(".png"), pixels)
            elif kind == 1:
                write_image(stem.with_suffix(".tif"), pixels.astype(np.uint16) * 16)
            elif kind == 2:
                write_image(stem.with_suffix(".webp"), pixels, lossless=True)
            else:
                write_dicom(stem.with_suffix(".dcm"), pixels.astype(np.uint16) * 16,
                            photometric=("MONOCHROME2", "MONOCHROME1")[i % 2])
        write_image(root / folder / f"{folder.lower()}_bmp.bmp", gray(96, 80, seed=99 + label))
        write_dicom(root / folder / f"{folder.lower()}_noext", gray(96, 80, seed=70 + label,
                                                                    dtype=np.uint16))
        (root / folder / "scan.gif.txt").write_text("a note")
        write_image(root / folder / "old.gif", gray(96, 80, seed=5))
    return root


def test_mixed_formats_through_run_and_audit(tmp_path: Path, capsys) -> None:
    data = _mixed_set(tmp_path / "mixed")
    records = load_dataset(data, cache_dir=tmp_path / "c").records.set_index("record_id")
    assert len(records) == 20 and set(records["width"]) == {80}
    assert records.loc["NORMAL/normal3.dcm", "pixel_spacing_mm"] == "0.139,0.139"
    assert records.loc["NORMAL/normal_noext", "pixel_spacing_mm"] == "0.139,0.139"
    assert records.loc["NORMAL/normal0.png", "pixel_spacing_mm"] == ""

    done = run_main(capsys, data, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert ("warning: ignored 4 file(s) that are not images cxrbench reads (JPEG, PNG, TIFF, "
            "BMP, WebP or DICOM): NORMAL/old.gif, NORMAL/scan.gif.txt, PNEUMONIA/old.gif, "
            "... (1 more); `cxrbench data audit` lists them all") in done.stderr
    data_info = results(tmp_path / "out")["provenance"]["data"]
    assert data_info["unreadable"] == [] and data_info["n_records"] == 20

    audit = main_cli(capsys, "data", "audit", data)
    assert audit.returncode == 0, audit.stderr
    assert "unreadable 0" in audit.stdout
    assert "ignored    4 (not images cxrbench reads)" in audit.stdout
    assert "  PNEUMONIA/scan.gif.txt: not an image (JPEG, PNG, TIFF, BMP, WebP or DICOM)" in (
        audit.stdout)
