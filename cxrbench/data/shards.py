"""Shard files of the image cache: space reserved before they are mapped, faults as messages.

Decoding workers write rows straight into a memory-mapped ``.npy`` file. A memory map of a
sparse file that the disk cannot back kills the writer with SIGBUS (no message, a temporary
file left behind, a broken process pool). So every shard's blocks are reserved with
``posix_fallocate`` (or by writing zeros where that is unsupported) before any worker maps
it: a full disk is then an ``OSError`` at allocation, turned into one ``CacheWriteError`` that
says what failed, where, and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
from pathlib import Path

import numpy as np

from cxrbench.data.records import DataError

_NPY_HEADER_BYTES = 128  # numpy's .npy header for a small shape (format 1.0)
_ZEROS = bytes(1 << 20)
_WHAT = {
    errno.ENOSPC: ("no space left on the device", "free space there"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space there"),
    errno.EROFS: ("the file system is read-only", "use a writable folder"),
    errno.EACCES: ("permission denied", "use a folder you can write to"),
    errno.EPERM: ("operation not permitted", "use a folder you can write to"),
}


class CacheWriteError(DataError):
    """The image cache cannot be written (full disk, read-only or forbidden folder)."""

    def __init__(self, message: str, *, path: str | Path = "", errno_code: int | None = None
                 ) -> None:
        super().__init__(message)
        self.path = str(path)
        self.errno = errno_code

    def __reduce__(self):  # picklable with its keyword arguments
        return (_rebuild, (str(self), self.path, self.errno))

    @classmethod
    def from_os_error(cls, where: str | Path, exc: OSError, *, needed: int | None = None,
                      free: int | None = None) -> CacheWriteError:
        what, todo = _WHAT.get(exc.errno or 0, (exc.strerror or str(exc), "check the folder"))
        sizes = ""
        if needed is not None:
            sizes = f" (needs about {_size(needed)}" + (
                f", {_size(free)} free)" if free is not None else ")")
        return cls(f"cannot write the image cache in {where}: {what}{sizes}; {todo}, or point "
                   "--cache-dir (or CXRBENCH_CACHE_DIR) at another disk",
                   path=where, errno_code=exc.errno)


def _rebuild(message: str, path: str, errno_code: int | None) -> CacheWriteError:
    return CacheWriteError(message, path=path, errno_code=errno_code)


def _size(n: int | None) -> str:
    n = n or 0
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{math.ceil(n / 2**10)} KB"


def shard_bytes(rows: int, size: int, channels: int) -> int:
    """Bytes of a shard file holding ``rows`` decoded images."""
    return _NPY_HEADER_BYTES + rows * size * size * channels


def free_bytes(folder: str | Path) -> int:
    """Free bytes on the file system that holds ``folder`` (or its nearest existing parent)."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(folder: str | Path, needed: int) -> None:
    """Raise ``CacheWriteError`` (no space) when ``folder``'s disk has less than ``needed``."""
    free = free_bytes(folder)
    if free < needed:
        raise CacheWriteError.from_os_error(
            folder, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), needed=needed, free=free)


def allocate_shard(path: Path, rows: int, size: int, channels: int) -> None:
    """Create ``path`` as a zero-filled ``(rows, size, size, channels)`` uint8 ``.npy``, with
    every data block reserved on disk (OSError, e.g. ENOSPC, if it cannot be)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                   shape=(rows, size, size, channels))
    offset = int(mm.offset)
    del mm
    with open(path, "r+b") as fh:
        _reserve(fh.fileno(), offset, os.fstat(fh.fileno()).st_size - offset)


def _reserve(fd: int, offset: int, length: int) -> None:
    if length <= 0:
        return
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, offset, length)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    # No fallocate on this file system: writing zeros allocates the blocks just as well.
    end = offset + length
    while offset < end:
        offset += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), end - offset)], offset)


def reorder_shard(tmp: Path, new: Path, order: list[int]) -> None:
    """Write rows ``order`` of shard ``tmp`` into a new shard ``new`` (removed on failure)."""
    src = np.load(tmp, mmap_mode="r")
    try:
        allocate_shard(new, len(order), int(src.shape[1]), int(src.shape[3]))
        dst = np.load(new, mmap_mode="r+")
        for start in range(0, len(order), 1024):
            dst[start:start + 1024] = src[order[start:start + 1024]]
        del dst
    except BaseException:
        remove_quietly(new)
        raise
    finally:
        del src


def remove_quietly(path: Path) -> None:
    """Remove a temporary file; on a read-only or vanished folder there is nothing to do."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
