"""Files written safely: atomic replacement, advisory locks, content hashes.

Every file cxrbench writes (results, split plans, cache indexes and shards, feature shards,
reports) goes through :func:`atomic_output`: the bytes land in a temporary file beside the
target and are moved over it with ``os.replace``, so a reader sees the old file or the new one,
never half of one, and an interrupted write leaves no partial file behind. Temporary files are
created with ``open(..., "x")``, so the result has the user's umask (not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temporary_path(path: str | Path) -> Path:
    """A unique hidden name beside ``path`` (same folder, so ``os.replace`` is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb", *, fsync: bool = False,
                  encoding: str | None = None) -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file that replaces it when the block succeeds.

    ``fsync=True`` flushes the data to disk before the rename (results files: a power cut must
    not leave an empty file); caches skip it for speed. On any error the temporary file is
    removed and the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    exclusive = mode.replace("w", "x")
    try:
        with open(tmp, exclusive, encoding=encoding) as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        err.filename = str(path)  # name the file being written, not the hidden temporary one
        raise
    finally:
        with contextlib.suppress(OSError):  # e.g. a folder made read-only meanwhile
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    with atomic_output(path, "wb", fsync=fsync) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> Path:
    """Text (UTF-8), flushed to disk by default: for results and reports."""
    with atomic_output(path, "w", fsync=fsync, encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, *, fsync: bool = False) -> Path:
    """Compact JSON, not flushed by default: for cache indexes, which can be rebuilt."""
    return atomic_write_text(path, json.dumps(obj, separators=(",", ":")), fsync=fsync)


def read_json(path: str | Path) -> Any | None:
    """Parsed JSON, or None when the file is missing or unreadable (caches start afresh)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` for the block (POSIX ``flock``; waits for it).

    Where ``fcntl`` does not exist (Windows) this is a no-op: atomic replacement still keeps
    files whole, but concurrent writers may then lose each other's index entries.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# What a write fault means, and what to do about it: (cause, fix) by errno.
WRITE_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free space there"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space there"),
    errno.EROFS: ("the file system is read-only", "use a writable folder"),
    errno.EACCES: ("permission denied", "use a folder you can write to"),
    errno.EPERM: ("operation not permitted", "use a folder you can write to"),
}


def is_write_fault(err: BaseException) -> bool:
    """A full, read-only or forbidden file system (not a bug: a message, not a traceback)."""
    return isinstance(err, OSError) and err.errno in WRITE_FAULTS


def write_fault_message(err: OSError, what: str, path: str | Path, elsewhere: str = "") -> str:
    """One line: what could not be written, where, why, and what to do.

    ``elsewhere`` is the other way out, e.g. "choose another --out".
    """
    cause, fix = WRITE_FAULTS.get(err.errno or 0, (err.strerror or str(err), "check the folder"))
    todo = f"{fix}, or {elsewhere}" if elsewhere else fix
    return f"cannot write {what} {path}: {cause}; {todo}"


def check_writable_folder(path: str | Path, what: str, option: str) -> Path:
    """Create ``path`` if needed and prove it writable with a probe file, or raise
    ``NotWritableError`` naming the folder, the cause and ``option`` (the flag that moves it).

    An existing file in the way, a read-only or forbidden folder, or one that cannot be
    created all fail here, before any work.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise NotWritableError(f"{what} {path} is an existing file, not a folder; "
                               f"pass {option} with a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = temporary_path(path / "write-probe")
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as err:
        if isinstance(err, FileExistsError | NotADirectoryError):
            raise NotWritableError(f"{what} {path} cannot be created: a part of that path is "
                                   f"a file; pass {option} with a folder path") from err
        cause, fix = WRITE_FAULTS.get(err.errno or 0, (err.strerror or str(err), "check it"))
        raise NotWritableError(f"{what} {path} is not writable: {cause}; {fix}, or pass "
                               f"{option} with another folder") from err
    return path


class NotWritableError(ValueError):
    """A folder cxrbench must write into cannot be written (the message says what to do)."""


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
