"""Stream a high-bit grayscale TIFF in strips of rows (tifffile), in memory bounded by the strip.

Pillow decodes a TIFF into one whole image (2 bytes a pixel for 16-bit, 4 for 32-bit); tifffile
decodes it strip by strip as stored, and the strips are regrouped into the row counts the
8-bit mapping asks for. The values are the stored samples, as Pillow reads them, so only plain
cases are streamed: one grayscale sample per pixel stored in strips, "min is black", no
rotation; anything else (tiles, "min is white", an Orientation tag, a compression tifffile
cannot decode without its optional codecs) returns ``None`` and is decoded whole by Pillow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cxrbench.data.highbit import StripSource

_ORIENTATION_TAG = 274
_MINISBLACK = 1


def tiff_strips(path: str | Path) -> tuple[int, int, StripSource] | None:
    """``(width, height, strips)`` for a streamable grayscale TIFF, else ``None``."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            orientation = page.tags.get(_ORIENTATION_TAG)
            plain = (page.samplesperpixel == 1 and not page.is_tiled
                     and int(page.photometric) == _MINISBLACK
                     and (orientation is None or orientation.value == 1)
                     and page.dtype is not None and page.dtype.kind in "uif")
            width, height = int(page.imagewidth), int(page.imagelength)
            if plain:  # decode one strip: the compression may need codecs not installed
                next(iter(page.segments(maxworkers=1)))
    except Exception:  # noqa: BLE001  # not a TIFF tifffile can read: Pillow decides
        return None
    if not plain:
        return None

    def strips(rows: int) -> Iterable[np.ndarray]:
        return _regroup(Path(path), width, height, rows)

    return width, height, strips


def _regroup(path: Path, width: int, height: int, rows: int) -> Iterator[np.ndarray]:
    """Stored strips, cut and joined into strips of ``rows`` rows (the last may be shorter)."""
    import tifffile

    pending: list[np.ndarray] = []
    n_pending = 0
    y_next = 0
    with tifffile.TiffFile(path) as tif:
        for data, index, shape in tif.pages.first.segments(maxworkers=1):
            y0 = int(index[2])
            if y0 != y_next:
                raise ValueError(f"TIFF strips out of order (row {y0}, expected {y_next})")
            length = min(int(shape[1]), height - y0)
            block = (np.zeros((length, width), np.uint8) if data is None  # an empty strip
                     else data.reshape(data.shape[1], data.shape[2])[:length])
            y_next = y0 + length
            pending.append(block)
            n_pending += length
            while n_pending >= rows:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[:rows]
                rest = joined[rows:]
                pending, n_pending = ([rest], len(rest)) if len(rest) else ([], 0)
    if y_next != height:
        raise ValueError(f"TIFF image data ends after {y_next} of {height} rows (truncated)")
    if pending:
        yield np.concatenate(pending)
