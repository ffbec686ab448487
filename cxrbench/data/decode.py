"""Decode one image file into a square uint8 array, fast and strictly.

Speed: for JPEGs, ``Image.draft`` asks libjpeg to decode at 1/2, 1/4 or 1/8 scale straight
from the DCT coefficients (never smaller than the requested size), and to hand back luma only
when grayscale is wanted. On the multi-megapixel Kaggle originals this skips most of the
decoding work before the (cheap) final resize.

Strictness: a truncated or corrupt file raises ``ImageDecodeError``; Pillow's
``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False, otherwise half-grey images would silently
enter a benchmark.

16-bit images (modes ``I;16*``, ``I``, ``F``; e.g. PNGs exported from DICOM) are mapped to 8 bit
by a min-max stretch per image: such files rarely use the full 16-bit range (often 10-12 bits,
with an arbitrary offset), so a fixed ``>> 8`` would make many of them almost black, and there
is no window/level information in a PNG to do better.

Resizing is to ``size x size`` without preserving the aspect ratio (as in the 224 px copy of the
data set), bilinear with Pillow's antialiasing support.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

from cxrbench.data.records import DataError

DECODER_VERSION = 1  # bump when decoded pixels change: it is part of every image-cache key
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpeg", ".jpg", ".png"})
_HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


class ImageDecodeError(DataError):
    """A file that is not a readable image (corrupt, truncated, or not an image at all)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot decode {self.path}: {reason}; replace or remove the file "
            "(`cxrbench data audit` lists every unreadable file)"
        )

    def __reduce__(self):  # keep it picklable across process pools
        return (type(self), (self.path, self.reason))


def is_image_file(name: str) -> bool:
    """True for ``.jpeg``/``.jpg``/``.png`` (any case) that are not hidden files (``._x.jpeg``)."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _check_strict() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise DataError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process, so truncated images "
            "would be accepted silently; set it back to False before loading data"
        )


def load_native(path: str | Path) -> Image.Image:
    """Open and fully decode an image at its native size and mode (no conversion)."""
    _check_strict()
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except Exception as exc:  # noqa: BLE001  # any decoder failure is a property of the file
        raise ImageDecodeError(path, _reason(exc)) from exc


def pixel_hash(im: Image.Image) -> str:
    """sha256 of the decoded pixels, mode and size (equal only for identical images)."""
    h = hashlib.sha256(f"{im.mode}|{im.size[0]}x{im.size[1]}|".encode())
    h.update(im.tobytes())
    return h.hexdigest()


def decode_image(path: str | Path, size: int, channels: int = 1) -> np.ndarray:
    """Decode ``path`` to a ``(size, size, channels)`` uint8 array (1 = gray, 3 = RGB)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    _check_strict()
    target = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(target, (size, size))  # DCT scaling: the big speed win
            im.load()
            out = _to_square(im, size, target)
    except Exception as exc:  # noqa: BLE001  # any decoder failure is a property of the file
        raise ImageDecodeError(path, _reason(exc)) from exc
    arr = np.asarray(out, dtype=np.uint8)
    if channels == 1:
        return arr[:, :, None]
    if arr.ndim == 2:  # grayscale source: R = G = B
        return np.repeat(arr[:, :, None], 3, axis=2)
    return arr


def _to_square(im: Image.Image, size: int, target: str) -> Image.Image:
    orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
    im = _to_8bit(im)
    if target == "L" and im.mode != "L":
        im = im.convert("L")  # before resizing: a third of the work
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return im  # "L" or "RGB"; gray -> RGB is expanded by the caller


def _to_8bit(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB" (alpha dropped, palettes and CMYK converted)."""
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in _HIGH_BIT_MODES:
        return Image.fromarray(_stretch_to_uint8(np.asarray(im)), mode="L")
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    if im.mode == "P" and _palette_is_gray(im):
        return im.convert("L")
    return im.convert("RGB")  # RGBA, RGBX, P, PA, CMYK, YCbCr, ...


def _palette_is_gray(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool(len(rgb)) and bool((rgb == rgb[:, :1]).all())


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"
