"""Stream a 16-bit grayscale PNG in strips of rows, in memory bounded by the strip.

Pillow decodes a PNG into one whole image (2 bytes a pixel for 16-bit gray, 72 MB for
6000 x 6000), and a 70 KB file can hold such an image. Here the zlib stream of the IDAT chunks
is inflated a strip at a time, and each strip is unfiltered by Pillow's own PNG decoder: it is
wrapped in a small in-memory PNG whose first row is the previous strip's last row, stored
unfiltered, so that the Up, Average and Paeth filters of the strip's first row see the right
neighbour. The decoded values are therefore exactly Pillow's.

Only what needs it is streamed: non-interlaced 16-bit grayscale without EXIF (which could rotate
the image). Anything else returns ``None`` and is decoded whole by Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from cxrbench.data.highbit import StripSource

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INFLATE_STEP = 1 << 20  # bytes of inflated data per step


class PngStreamError(ValueError):
    """The PNG is damaged (bad CRC, truncated data); the message says where."""


def _chunks(fh: io.BufferedReader) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset of the data, length) of every chunk, checking each one's CRC lazily."""
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise PngStreamError("file ends before the IEND chunk (truncated)")
        length, kind = struct.unpack(">I4s", head)
        offset = fh.tell()
        yield kind, offset, length
        if kind == b"IEND":
            return
        fh.seek(offset + length + 4)


def _read_chunk(fh: io.BufferedReader, kind: bytes, offset: int, length: int) -> bytes:
    fh.seek(offset)
    data = fh.read(length)
    crc = fh.read(4)
    if len(data) < length or len(crc) < 4:
        raise PngStreamError(f"{kind.decode('latin-1')} chunk is truncated")
    if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
        raise PngStreamError(f"{kind.decode('latin-1')} chunk has a bad CRC (corrupt file)")
    return data


def png16_strips(path: str | Path) -> tuple[int, int, StripSource] | None:
    """``(width, height, strips)`` for a streamable 16-bit gray PNG, else ``None``."""
    with open(path, "rb") as fh:
        if fh.read(8) != _SIGNATURE:
            return None
        chunks = list(_chunks(fh))
        if not chunks or chunks[0][0] != b"IHDR":
            return None
        ihdr = _read_chunk(fh, *chunks[0])
        width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[:13])
        if depth != 16 or color != 0 or interlace != 0:
            return None
        for kind, offset, length in chunks:
            if kind == b"eXIf":
                return None
            if kind in (b"tEXt", b"zTXt", b"iTXt"):
                fh.seek(offset)
                if fh.read(min(length, 80)).lower().startswith(b"raw profile type exif"):
                    return None
    idats = [(offset, length) for kind, offset, length in chunks if kind == b"IDAT"]
    if not idats:
        raise PngStreamError("no IDAT chunk (no image data)")

    def strips(rows: int) -> Iterable[np.ndarray]:
        return _decode_strips(Path(path), width, height, idats, rows)

    return width, height, strips


def _filtered_rows(path: Path, idats: list[tuple[int, int]], stride: int, height: int
                   ) -> Iterator[bytes]:
    """Each row's bytes as stored (filter type byte + filtered samples), inflated lazily."""
    inflater = zlib.decompressobj()
    pending = bytearray()
    produced = 0
    with open(path, "rb") as fh:
        for offset, length in idats:
            data = _read_chunk(fh, b"IDAT", offset, length)
            while data:
                pending += inflater.decompress(data, _INFLATE_STEP)
                data = inflater.unconsumed_tail
                while len(pending) >= stride and produced < height:
                    yield bytes(pending[:stride])
                    del pending[:stride]
                    produced += 1
    pending += inflater.flush()
    while len(pending) >= stride and produced < height:
        yield bytes(pending[:stride])
        del pending[:stride]
        produced += 1
    if produced < height:
        raise PngStreamError(f"image data ends after {produced} of {height} rows (truncated)")


def _mini_png(width: int, rows: int, payload: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, rows, 16, 0, 0, 0, 0)
    return (_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload, 0))
            + chunk(b"IEND", b""))


def _decode_strips(path: Path, width: int, height: int, idats: list[tuple[int, int]],
                   rows: int) -> Iterator[np.ndarray]:
    stride = 1 + 2 * width
    previous = b"\x00" + bytes(2 * width)  # "the row above the first" is zeros, unfiltered
    batch: list[bytes] = []
    for row in _filtered_rows(path, idats, stride, height):
        batch.append(row)
        if len(batch) == rows:
            strip, previous = _unfilter(width, previous, batch)
            batch = []
            yield strip
    if batch:
        yield _unfilter(width, previous, batch)[0]


def _unfilter(width: int, previous: bytes, batch: list[bytes]) -> tuple[np.ndarray, bytes]:
    """Pillow's PNG decoder on [previous row, unfiltered] + batch; returns rows and new previous."""
    with Image.open(io.BytesIO(_mini_png(width, len(batch) + 1, previous + b"".join(batch)))
                    ) as im:
        im.load()
        values = np.asarray(im)[1:]
    last = b"\x00" + values[-1].astype(">u2").tobytes()
    return values, last
