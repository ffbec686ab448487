"""DICOM files (pydicom): header facts, and pixels as a radiologist would see them.

The display pipeline of the standard (PS3.3 C.11), through pydicom's own functions:
stored values -> Modality LUT or rescale slope/intercept (``apply_modality_lut``) -> VOI LUT or
window centre/width (``apply_voi_lut``) -> mapped to 8 bits -> inverted for ``MONOCHROME1``
(where the lowest value is white). The 8-bit mapping covers the VOI output range when a window
or VOI LUT is given (what the window means), else the image's own min and max (like a 16-bit
PNG). Colour DICOM (RGB, YBR, palette) is converted by pydicom and handled like an RGB image.
Only single-frame images are read; compressed transfer syntaxes need pydicom's optional
decoders (pylibjpeg, GDCM), and pydicom's message says which one.

Uncompressed pixel data is read from the file strip by strip, and the LUT steps run on those
strips (``highbit``), so memory stays bounded by the strip; compressed pixel data is decoded
whole by pydicom (the frame and its buffer: about 4 bytes a pixel for 16-bit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrbench.data.highbit import StripSource, array_strips, to_square_gray

_HEADER_TAGS = ["Rows", "Columns", "PixelSpacing", "ImagerPixelSpacing", "NumberOfFrames"]
_DEFER_BYTES = 4096  # elements larger than this (the pixel data) are read only when used


class DicomError(ValueError):
    """A DICOM file cxrbench cannot use; the message says why."""


def read_dicom_header(path: str | Path) -> tuple[int | None, int | None, str]:
    """(width, height, "row,column" pixel spacing in mm or "") from the header alone."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    rows, columns = ds.get("Rows"), ds.get("Columns")
    return (int(columns) if columns else None, int(rows) if rows else None, pixel_spacing(ds))


def pixel_spacing(ds: Any) -> str:
    """PixelSpacing (calibrated), else ImagerPixelSpacing (at the detector), as "row,column"."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            return f"{float(value[0]):g},{float(value[1]):g}"
    return ""


def dicom_size(path: str | Path) -> tuple[int, int]:
    width, height, _ = read_dicom_header(path)
    if not width or not height:
        raise DicomError("no Rows/Columns in the DICOM header (not an image?)")
    return width, height


def decode_dicom(path: str | Path, size: int) -> Image.Image:
    """An ``L`` (monochrome) or ``RGB`` image of ``size x size`` from a DICOM file."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES)  # pixel data read later, in strips
    if "PixelData" not in ds:
        raise DicomError("the DICOM file holds no pixel data (a report or structured data?)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DicomError(f"multi-frame DICOM ({frames} frames) is not supported; export the "
                         "frame to benchmark as its own file")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        arr = ds.pixel_array  # colour: pydicom converts YBR and palettes to RGB
        rgb = arr if arr.dtype == np.uint8 else _stretch_channels(arr)
        return _square(Image.fromarray(rgb).convert("RGB"), size)

    def lut(strip: np.ndarray) -> np.ndarray:
        return apply_voi_lut(apply_modality_lut(strip, ds), ds)

    height, width = int(ds.Rows), int(ds.Columns)
    strips = native_strips(path, ds, lut)
    if strips is None:  # compressed (or unusual) pixel data: pydicom decodes the frame whole
        arr = ds.pixel_array
        if arr.ndim != 2:
            raise DicomError(f"expected one grayscale frame, got pixel array of shape "
                             f"{arr.shape}")
        strips = array_strips(arr, lut)
    return to_square_gray(strips, width, height, size, window=voi_output_range(ds),
                          invert=photometric == "MONOCHROME1")


def native_strips(path: str | Path, ds: Any, transform: Callable[[np.ndarray], np.ndarray]
                  ) -> StripSource | None:
    """Strips read straight from the file when the pixel data is stored uncompressed.

    Little-endian native pixel data, one sample per pixel: each strip is read from its offset,
    and the bits above Bits Stored are cleared (or sign-extended) as pydicom does by default
    (``correct_unused_bits``), so the values equal ``ds.pixel_array``'s. Anything else returns
    ``None``.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None or syntax.is_encapsulated or syntax.is_deflated \
            or not syntax.is_little_endian:
        return None
    raw = ds.get_item("PixelData", keep_deferred=True)
    offset = getattr(raw, "value_tell", None)
    bits = int(ds.get("BitsAllocated", 0))
    if offset is None or bits not in (8, 16, 32) or int(ds.get("SamplesPerPixel", 1)) != 1:
        return None
    dtype = np.dtype(f"<{'i' if int(ds.get('PixelRepresentation', 0)) else 'u'}{bits // 8}")
    rows, cols = int(ds.Rows), int(ds.Columns)
    if raw.length < rows * cols * dtype.itemsize:
        raise DicomError(f"pixel data holds {raw.length} bytes, fewer than Rows x Columns "
                         f"({rows} x {cols}) needs: a truncated file")
    shift = bits - int(ds.get("BitsStored", bits))

    def strips(n: int) -> Iterator[np.ndarray]:
        with open(path, "rb") as fh:
            for y0 in range(0, rows, n):
                count = min(n, rows - y0) * cols
                fh.seek(offset + y0 * cols * dtype.itemsize)
                strip = np.fromfile(fh, dtype, count)
                if strip.size < count:
                    raise DicomError("the pixel data ends early: a truncated file")
                strip = strip.reshape(-1, cols)
                if shift:
                    strip = (strip << shift) >> shift
                yield transform(strip)

    return strips


def voi_output_range(ds: Any) -> tuple[float, float] | None:
    """The range a VOI window or LUT maps onto, or None when the file has neither.

    Found by passing the extremes through pydicom's own functions: a window sends everything
    below it to its minimum and above it to its maximum; a LUT's outputs are its entries.
    """
    from pydicom.pixels import apply_voi_lut

    sequence = ds.get("VOILUTSequence")
    if sequence and None not in (sequence[0].get("LUTDescriptor"), sequence[0].get("LUTData")):
        entries = int(sequence[0].LUTDescriptor[0] or 2**16)
        first = int(sequence[0].LUTDescriptor[1])
        out = apply_voi_lut(np.arange(first, first + entries, dtype=np.int64), ds)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        out = apply_voi_lut(np.array([-np.inf, np.inf]), ds)
    else:
        return None
    return float(np.min(out)), float(np.max(out))


def _stretch_channels(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr.astype(np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _square(im: Image.Image, size: int) -> Image.Image:
    if im.size == (size, size):
        return im
    return im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
