"""Which files are images: one source of truth for readers, decoder and messages.

Pillow decodes JPEG, PNG, TIFF, BMP and WebP; pydicom decodes DICOM. A DICOM file is one named
``*.dcm``/``*.dicom``, or one with any other unknown extension (or none, as many PACS exports
are named) whose 128-byte preamble is followed by the ``DICM`` magic: cheap to check, since only
files that would otherwise be ignored are peeked at. Hidden files (``.DS_Store``, macOS ``._x``
shadows) are never images.
"""

from __future__ import annotations

from pathlib import Path

PILLOW_EXTENSIONS: frozenset[str] = frozenset(
    {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
DICOM_EXTENSIONS: frozenset[str] = frozenset({".dcm", ".dicom"})
IMAGE_EXTENSIONS: frozenset[str] = PILLOW_EXTENSIONS | DICOM_EXTENSIONS
# For messages: what cxrbench reads, in the words a user would search for.
ACCEPTED_TEXT = "JPEG, PNG, TIFF, BMP, WebP or DICOM"
_DICOM_MAGIC_OFFSET = 128


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def has_dicom_magic(path: str | Path) -> bool:
    """True when the file starts with a DICOM preamble and the ``DICM`` prefix (Part 10)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_DICOM_MAGIC_OFFSET + 4)
    except OSError:
        return False
    return head[_DICOM_MAGIC_OFFSET:] == b"DICM"


def is_dicom(path: str | Path) -> bool:
    """A file to decode with pydicom (by extension, else by magic for unknown extensions)."""
    suffix = Path(path).suffix.lower()
    if suffix in DICOM_EXTENSIONS:
        return True
    return suffix not in PILLOW_EXTENSIONS and has_dicom_magic(path)


def is_image_file(path: str | Path) -> bool:
    """True for a non-hidden file cxrbench decodes (extension, or DICOM magic if unknown)."""
    name = Path(path).name
    if is_hidden(name):
        return False
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS or has_dicom_magic(path)
