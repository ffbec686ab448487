"""Decode one image file into a square uint8 array, fast, strictly and in bounded memory.

Formats (``formats.py``): JPEG, PNG, TIFF, BMP and WebP through Pillow; DICOM through pydicom
(``dicom.py``: modality and VOI LUTs or window applied, MONOCHROME1 inverted).

Speed: JPEGs are decoded at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients (never
smaller than the requested size), luma only when grayscale is wanted, before the (cheap) final
resize: by libjpeg-turbo through ``simplejpeg`` (``turbojpeg.py``) at exactly the scale
Pillow's ``Image.draft`` would choose, so the pixels are Pillow's; EXIF-rotated, CMYK and
anything simplejpeg refuses go through Pillow's draft mode. What still dominates on the
multi-megapixel Kaggle originals is the entropy (Huffman) decoding, which no scaling skips.

Strictness: a truncated or corrupt file raises ``ImageDecodeError``; Pillow's
``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False, otherwise half-grey images would silently
enter a benchmark. Images over ``MAX_PIXELS`` are refused before their pixels are decoded (a
70 KB PNG can claim 36 Mpx; Pillow's own limit, 179 Mpx, is far above any chest film).

High bit depth (Pillow modes ``I;16*``, ``I``, ``F``; e.g. PNGs exported from DICOM) is mapped
to 8 bits by a min-max stretch per image: such files rarely use the full 16-bit range (often
10-12 bits, with an arbitrary offset), so a fixed ``>> 8`` would make many of them almost
black, and there is no window/level information in a PNG to do better. That mapping runs on
strips of rows (``highbit.py``), and 16-bit grayscale PNGs are also inflated strip by strip
(``png16.py``), so a 6000 x 6000 16-bit PNG is decoded in a few MB, with pixels identical to
the whole-image pipeline of earlier versions.

Resizing is to ``size x size`` without preserving the aspect ratio (as in the 224 px copy of the
data set), bilinear with Pillow's antialiasing support.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

from cxrbench.data.formats import is_dicom
from cxrbench.data.highbit import StripSource, image_strips, to_square_gray
from cxrbench.data.records import DataError
from cxrbench.data.turbojpeg import decode_scaled

# Bump when decoded pixels change: it is part of every image-cache key. 2: JPEGs through
# simplejpeg (identical pixels on every file tested; bumped in case another libjpeg-turbo
# build differs in a corner case).
DECODER_VERSION = 2
MAX_PIXELS = 64_000_000  # 8000 x 8000; the largest chest films are about 4300 x 4300
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


def _check_strict() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise DataError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process, so truncated images "
            "would be accepted silently; set it back to False before loading data"
        )


def check_pixel_count(path: str | Path, width: int, height: int) -> None:
    """Refuse images over ``MAX_PIXELS`` before decoding them (decompression bombs)."""
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(
            path, f"image too large: {width} x {height} = {width * height / 1e6:.0f} Mpx, over "
            f"cxrbench's limit of {MAX_PIXELS / 1e6:.0f} Mpx (a decompression bomb, or a scan "
            "far larger than a chest film: downscale it)")


def _open(path: str | Path) -> Image.Image:
    """``Image.open`` with the pixel limit checked from the header, before any decoding."""
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as exc:  # over Pillow's own, higher limit
        raise ImageDecodeError(path, f"image too large: {exc}") from exc
    try:
        check_pixel_count(path, *im.size)
    except ImageDecodeError:
        im.close()
        raise
    return im


def read_header(path: str | Path) -> tuple[int | None, int | None, str]:
    """(width, height, pixel spacing "row,column" in mm or "") without decoding pixels.

    (None, None, "") when the header cannot be read: decoding the file will say why.
    """
    try:
        if is_dicom(path):
            from cxrbench.data.dicom import read_dicom_header

            return read_dicom_header(path)
        with Image.open(path) as im:
            return im.size[0], im.size[1], ""
    except Exception:  # noqa: BLE001  # any failure is the file's; decoding reports it
        return None, None, ""


def load_native(path: str | Path) -> Image.Image:
    """Open and fully decode an image at its native size and mode (no conversion)."""
    _check_strict()
    try:
        if is_dicom(path):
            return _dicom_native(path)
        with _open(path) as im:
            im.load()
            return im
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001  # any decoder failure is a property of the file
        raise ImageDecodeError(path, _reason(exc)) from exc


def _dicom_native(path: str | Path) -> Image.Image:
    """The stored pixel values of a DICOM file as a Pillow image (for audits: sizes, hashes)."""
    import pydicom

    from cxrbench.data.dicom import dicom_size

    check_pixel_count(path, *dicom_size(path))
    arr = pydicom.dcmread(path).pixel_array
    if arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        arr = arr.astype(np.int32)  # Pillow mode "I"
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32)  # mode "F"
    return Image.fromarray(arr)


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
        out = _decode_dicom(path, size) if is_dicom(path) else _decode_pillow(path, size, target)
        if target == "L" and out.mode != "L":
            out = out.convert("L")
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001  # any decoder failure is a property of the file
        raise ImageDecodeError(path, _reason(exc)) from exc
    arr = np.asarray(out, dtype=np.uint8)
    if channels == 1:
        return arr[:, :, None]
    if arr.ndim == 2:  # grayscale source: R = G = B
        return np.repeat(arr[:, :, None], 3, axis=2)
    return arr


def _decode_pillow(path: str | Path, size: int, target: str) -> Image.Image:
    with _open(path) as im:
        if im.mode in _HIGH_BIT_MODES and im.format in _STRIP_READERS:
            streamed = _STRIP_READERS[im.format](path)
            if streamed is not None:
                width, height, strips = streamed
                return to_square_gray(strips, width, height, size)
        if im.format == "JPEG":
            if _orientation(im) == 1:
                pixels = decode_scaled(path, im.mode, *im.size, size, gray=target == "L")
                if pixels is not None:
                    return _to_square(Image.fromarray(pixels), size, target)
            im.draft(target, (size, size))  # DCT scaling: the big speed win
        im.load()
        return _to_square(im, size, target)


def _png_strips(path: str | Path) -> tuple[int, int, StripSource] | None:
    from cxrbench.data.png_strips import png16_strips

    return png16_strips(path)


def _tiff_strips(path: str | Path) -> tuple[int, int, StripSource] | None:
    from cxrbench.data.tiff_strips import tiff_strips

    return tiff_strips(path)


# High-bit images these read strip by strip from the file; others are decoded whole by Pillow.
_STRIP_READERS = {"PNG": _png_strips, "TIFF": _tiff_strips}


def _decode_dicom(path: str | Path, size: int) -> Image.Image:
    from cxrbench.data.dicom import decode_dicom, dicom_size

    check_pixel_count(path, *dicom_size(path))
    return decode_dicom(path, size)


def _orientation(im: Image.Image) -> int:
    return im.getexif().get(ExifTags.Base.Orientation, 1) or 1


def _to_square(im: Image.Image, size: int, target: str) -> Image.Image:
    if _orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode in _HIGH_BIT_MODES:
        return to_square_gray(image_strips(im), im.size[0], im.size[1], size)
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
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    if im.mode == "P" and _palette_is_gray(im):
        return im.convert("L")
    return im.convert("RGB")  # RGBA, RGBX, P, PA, CMYK, YCbCr, ...


def _palette_is_gray(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool(len(rgb)) and bool((rgb == rgb[:, :1]).all())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"
