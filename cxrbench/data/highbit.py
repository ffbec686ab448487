"""High-bit-depth grayscale (16-bit PNG and TIFF, 32-bit TIFF, DICOM) to a small 8-bit square.

Memory is bounded by working on strips of rows: each strip is mapped to 8 bits and box-reduced
at once, so only the reduced 8-bit image is ever whole (a 6000 x 6000 image at 224 px: a
750 x 750 intermediate), never a float64 copy of the full image (8 bytes a pixel, plus
temporaries: 26 bytes a pixel before this module existed).

The result is bit-identical to the whole-image pipeline it replaces (stretch the full image to
8 bits, then ``resize(..., BILINEAR, reducing_gap=3.0)``): the stretch is per pixel, Pillow's
box ``reduce`` maps each group of ``fy`` input rows to one output row, so strips aligned to
``fy`` rows give the same rows, and the final resize gets the same intermediate image and box.
That keeps image-cache entries of 16-bit PNGs valid (no ``DECODER_VERSION`` bump).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image

RESIZE_REDUCING_GAP = 3.0  # as in decode._to_square: the reduce step Pillow takes first
_STRIP_PIXELS = 1 << 20  # about 1 Mpx of rows per strip: ~25 MB of temporaries at most

# A source of strips: called with a row count, yields 2-D arrays of that many rows (the last
# may be shorter) from top to bottom. It may be called twice (a min-max pass, then the map).
StripSource = Callable[[int], Iterable[np.ndarray]]


def reduce_factors(width: int, height: int, size: int) -> tuple[int, int]:
    """The box-reduce factors Pillow's ``resize(reducing_gap=3.0)`` applies before resampling."""
    fx = int(width / size / RESIZE_REDUCING_GAP) or 1
    fy = int(height / size / RESIZE_REDUCING_GAP) or 1
    return fx, fy


def strip_rows(width: int, fy: int) -> int:
    """Rows per strip: about ``_STRIP_PIXELS`` pixels, a multiple of ``fy``."""
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    return max(fy, rows // fy * fy)


def value_range(strips: Iterable[np.ndarray]) -> tuple[float, float]:
    """(min, max) over all finite values of the strips; (0, 0) when there is none."""
    lo, hi = math.inf, -math.inf
    for strip in strips:
        finite = strip if strip.dtype.kind in "iu" else strip[np.isfinite(strip)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def stretch_to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255 (the per-image min-max stretch); NaN -> 0."""
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = np.round((values.astype(np.float64) - lo) * (255.0 / (hi - lo)))
    np.clip(scaled, 0, 255, out=scaled)
    return np.nan_to_num(scaled, nan=0.0).astype(np.uint8)


def to_square_gray(strips: StripSource, width: int, height: int, size: int,
                   window: tuple[float, float] | None = None,
                   invert: bool = False) -> Image.Image:
    """An ``L`` image of ``size x size`` from a high-bit source given as strips of rows.

    ``window`` is the value range mapped onto 0..255 (DICOM's VOI output range); without it,
    the image's own min and max (one extra pass). ``invert`` flips black and white after the
    mapping (DICOM MONOCHROME1).
    """
    fx, fy = reduce_factors(width, height, size)
    rows = strip_rows(width, fy)
    lo, hi = window if window is not None else value_range(strips(rows))
    reduced = Image.new("L", (math.ceil(width / fx), math.ceil(height / fy)))
    y = 0
    for strip in strips(rows):
        gray = stretch_to_uint8(strip, lo, hi)
        if invert:
            np.subtract(255, gray, out=gray)
        part = Image.fromarray(gray)
        if fx > 1 or fy > 1:
            part = part.reduce((fx, fy))
        reduced.paste(part, (0, y))
        y += part.size[1]
    if reduced.size == (size, size) and (fx, fy) == (1, 1):
        return reduced
    return reduced.resize((size, size), Image.Resampling.BILINEAR,
                          box=(0, 0, width / fx, height / fy))


def image_strips(im: Image.Image) -> StripSource:
    """Strips of a decoded high-bit Pillow image (modes ``I;16*``, ``I``, ``F``)."""
    def strips(rows: int) -> Iterable[np.ndarray]:
        width, height = im.size
        for y0 in range(0, height, rows):
            yield np.asarray(im.crop((0, y0, width, min(height, y0 + rows))))

    return strips


def array_strips(arr: np.ndarray, transform: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> StripSource:
    """Strips of a 2-D array, each passed through ``transform`` (e.g. a DICOM LUT) if given."""
    def strips(rows: int) -> Iterable[np.ndarray]:
        for y0 in range(0, arr.shape[0], rows):
            strip = arr[y0:y0 + rows]
            yield transform(strip) if transform is not None else strip

    return strips
