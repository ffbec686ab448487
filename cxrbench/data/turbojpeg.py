"""The fast path for JPEGs: libjpeg-turbo through ``simplejpeg``, DCT-scaled as Pillow would.

Pillow's ``Image.draft`` already asks libjpeg-turbo for a 1/2, 1/4 or 1/8 scale decode; this
module asks ``simplejpeg`` for the very same scale (the largest power of two that keeps both
sides at least the target size), so the decoded pixels are the ones Pillow's draft mode gives
(checked equal on every original Kaggle JPEG, grayscale and RGB, baseline and progressive, by
the tests) in one call, with no Python-level tile handling (the measured difference:
``benchmarks/README.md``, "Ingestion").

It only takes the common case, and answers None for everything else, which the caller then
decodes with Pillow: EXIF-rotated images, CMYK/YCCK files, 16-bit or arithmetic-coded JPEGs,
anything simplejpeg refuses (including truncated or corrupt files, for which Pillow writes the
error message users see), and every JPEG when simplejpeg is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:  # a compiled wheel; without it every JPEG goes through Pillow, with the same pixels
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the platform's wheels
    simplejpeg = None

# Pillow modes of a JPEG that simplejpeg decodes to the same pixels (CMYK is converted
# differently; "I;16" JPEGs do not exist in baseline libjpeg).
_MODES = frozenset({"L", "RGB"})


def available() -> bool:
    return simplejpeg is not None


def draft_scale(width: int, height: int, size: int) -> int:
    """Pillow's draft scale: the largest of 8, 4, 2, 1 with both sides still >= ``size``."""
    scale = min(width // size, height // size)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def decode_scaled(path: str | Path, mode: str, width: int, height: int, size: int,
                  gray: bool) -> np.ndarray | None:
    """``(h, w)`` (gray) or ``(h, w, 3)`` uint8 at Pillow's draft scale, or None (use Pillow).

    ``mode``, ``width`` and ``height`` come from the file's header (Pillow's ``Image.open``,
    which the caller has already done to check the pixel limit and the EXIF orientation).
    """
    if simplejpeg is None or mode not in _MODES:
        return None
    scale = draft_scale(width, height, size)
    try:
        data = Path(path).read_bytes()
        # The smallest libjpeg-turbo scale with sides >= these is exactly 1/scale.
        out = simplejpeg.decode_jpeg(
            data, colorspace="GRAY" if gray or mode == "L" else "RGB",
            min_height=-(-height // scale), min_width=-(-width // scale), strict=True)
    except (ValueError, OSError):  # corrupt, truncated, unusual: Pillow decides and explains
        return None
    if out.shape[:2] != (-(-height // scale), -(-width // scale)):
        return None  # a scale Pillow would not have used: keep the pixels Pillow gives
    return out[:, :, 0] if out.shape[2] == 1 else out
