"""The decoded-image cache: every file is decoded once per (size, channels, decoder version).

Layout under the cache root::

    images/{size}x{channels}/index-d{DECODER_VERSION}.json   content hash -> (shard, row)
    images/{size}x{channels}/d{DECODER_VERSION}-{id}.npy      (rows, size, size, channels) uint8
    hashes/{key}.json                       file sha256 and header by (path, size, mtime): scan.py

Entries are keyed by the sha256 of the file bytes, so a renamed or copied file is not decoded
again, and an edited one is. A load whose rows are exactly one shard (the usual case: the same
data set loaded again) returns that shard as a read-only ``np.memmap``, so a warm load costs
an index read and nothing else. Every file is written to a temporary name and moved into place
with ``os.replace`` (atomic), and the index is merged under a file lock, so concurrent builds or
an interrupted one never leave a half-written shard or index visible. Shards have their disk
blocks reserved before workers map them (``shards.py``), so a full disk is a
``CacheWriteError`` naming the folder, never a SIGBUS; ``ImageCache.check_space`` estimates the
space a build needs and checks it before anything is decoded.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrbench.cores import usable_cores
from cxrbench.data.decode import DECODER_VERSION, ImageDecodeError, decode_image
from cxrbench.data.records import DataError
from cxrbench.data.shards import (
    CacheWriteError,
    allocate_shard,
    check_free_space,
    remove_quietly,
    reorder_shard,
    shard_bytes,
)
from cxrbench.files import atomic_write_json, file_lock, read_json, temporary_path
from cxrbench.processes import forkserver_context

if TYPE_CHECKING:
    import pandas as pd

_INLINE_MAX = 8  # fewer misses than this are decoded in-process: a pool would cost more


def default_cache_dir() -> Path:
    """``$CXRBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/cxrbench``, else ``~/.cache/cxrbench``."""
    env = os.environ.get("CXRBENCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cxrbench"


# ---------------------------------------------------------------- parallel map over chunks
_THREADED_LIBRARIES = ("tensorflow", "torch", "jax", "keras")


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork when it is safe (fastest, and scripts need no ``__main__`` guard), else forkserver.

    Forking a process that runs library threads (TensorFlow, PyTorch, JAX) can deadlock the
    child, so once one of those is imported or any extra thread runs, workers are forked from a
    clean server with the decoder preloaded instead (``cxrbench.processes``); like any
    spawn-style pool, that needs the calling script to guard its entry point with
    ``if __name__ == "__main__":``.
    """
    methods = multiprocessing.get_all_start_methods()
    threaded = threading.active_count() > 1 or any(m in sys.modules for m in _THREADED_LIBRARIES)
    if "fork" in methods and not threaded:
        return multiprocessing.get_context("fork")
    return forkserver_context() or multiprocessing.get_context("spawn")


def run_chunks(
    fn: Callable[..., list[Any]],
    chunks: Sequence[Sequence[Any]],
    *args: Any,
    workers: int = 1,
    progress: bool = False,
    description: str = "working",
) -> Iterator[list[Any]]:
    """Yield ``fn(chunk, *args)`` for every chunk, in worker processes when ``workers > 1``."""
    total = sum(len(c) for c in chunks)
    bar = _progress_bar(progress, description, total)
    with bar as advance:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                yield fn(chunk, *args)
                advance(len(chunk))
            return
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = {pool.submit(fn, chunk, *args): len(chunk) for chunk in chunks}
            for fut in as_completed(futures):
                try:
                    result = fut.result()
                except BrokenProcessPool as exc:
                    raise WorkerDiedError(
                        f"a worker process {description} died abruptly (killed by a signal, "
                        "often the out-of-memory killer); free memory or lower the number "
                        "of worker processes, and run again") from exc
                yield result
                advance(futures[fut])


class WorkerDiedError(DataError):
    """A process of the pool died (a signal, e.g. the OOM killer): no result, no traceback."""


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n: prog.advance(task, n)


def split_chunks(items: Sequence[Any], workers: int, max_chunk: int = 64) -> list[list[Any]]:
    """Chunks big enough that IPC is negligible, small enough to balance the workers."""
    if not items:
        return []
    size = max(1, min(max_chunk, math.ceil(len(items) / (4 * max(workers, 1)))))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# ---------------------------------------------------------------- the image cache
@dataclass
class CachedImages:
    """Decoded images in records order; files that could not be decoded are in ``failed``."""

    images: np.ndarray  # (n_ok, size, size, channels) uint8, a read-only memmap when possible
    record_ids: np.ndarray  # str, aligned with images
    failed: list[dict[str, str]] = field(default_factory=list)  # {record_id, path, reason}
    n_decoded: int = 0  # files decoded by this call (0 on a warm load)


def _decode_chunk(items: list[tuple[int, str]], shard: str, size: int, channels: int
                  ) -> list[tuple[int, str]]:
    """Worker: decode ``(row, path)`` items into the shard memmap; return ``(row, reason)``."""
    out = np.load(shard, mmap_mode="r+")
    failures = []
    for row, path in items:
        try:
            out[row] = decode_image(path, size, channels)
        except ImageDecodeError as exc:
            failures.append((row, exc.reason))
    # No flush (msync): the pages are shared through the page cache, and forcing them to disk
    # per chunk made decoding wait on I/O; a cache needs no durability across power loss.
    del out
    return failures


class ImageCache:
    """Decoded images on disk, shared by every data set, run and process on this machine."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def _dir(self, size: int, channels: int) -> Path:
        return self.root / "images" / f"{size}x{channels}"

    def _index_path(self, size: int, channels: int) -> Path:
        return self._dir(size, channels) / f"index-d{DECODER_VERSION}.json"

    def _read_index(self, size: int, channels: int) -> dict[str, Any]:
        index = read_json(self._index_path(size, channels)) or {}
        shards = {name: hashes for name, hashes in index.get("shards", {}).items()
                  if (self._dir(size, channels) / name).exists()}
        return {"shards": shards, "failed": index.get("failed", {})}

    def load(
        self,
        records: pd.DataFrame,
        size: int,
        channels: int,
        workers: int | None = None,
        progress: bool = False,
    ) -> CachedImages:
        """Images of ``records`` (needs record_id, path, content_hash), decoding only misses."""
        missing = {"record_id", "path", "content_hash"} - set(records.columns)
        if missing:
            raise DataError(f"records table lacks columns {sorted(missing)}; "
                            "build it with cxrbench.data.load_dataset")
        if channels not in (1, 3) or size < 1:
            raise ValueError(f"need size >= 1 and channels 1 or 3, got {size}, {channels}")
        workers = max(1, workers if workers is not None else usable_cores())
        ids = records["record_id"].astype(str).to_numpy()
        paths = records["path"].astype(str).to_numpy()
        hashes = records["content_hash"].astype(str).to_numpy()

        index = self._read_index(size, channels)
        where = _where(index)
        todo = [i for i, h in enumerate(hashes) if h not in where and h not in index["failed"]]
        n_decoded = 0
        if todo:
            n_decoded = self._decode_into_shard(
                [(hashes[i], paths[i]) for i in todo], size, channels, workers, progress)
            index = self._read_index(size, channels)
            where = _where(index)

        ok = np.array([h in where for h in hashes], dtype=bool)
        failed = [
            {"record_id": ids[i], "path": paths[i],
             "reason": index["failed"].get(hashes[i], "not in the image cache")}
            for i in np.flatnonzero(~ok)
        ]
        images = self._assemble(list(hashes[ok]), where, index, size, channels)
        return CachedImages(images=images, record_ids=ids[ok], failed=failed,
                            n_decoded=n_decoded)

    def bytes_needed(self, records: pd.DataFrame, shapes: set[tuple[int, int]]) -> int:
        """Disk bytes that decoding ``records`` at every ``(size, channels)`` would add.

        Counts each content hash once per shape, and only those not cached (or known to fail)
        yet: a warm cache needs 0.
        """
        hashes = set(records["content_hash"].astype(str))
        total = 0
        for size, channels in shapes:
            index = self._read_index(size, channels)
            cached = set(_where(index)) | set(index["failed"])
            if missing := len(hashes - cached):
                total += shard_bytes(missing, size, channels)
        return total

    def check_space(self, records: pd.DataFrame, shapes: set[tuple[int, int]]) -> int:
        """``bytes_needed``, or ``CacheWriteError`` when the cache's disk has less free."""
        needed = self.bytes_needed(records, shapes)
        if needed:
            check_free_space(self.root, needed)
        return needed

    def _decode_into_shard(self, items: list[tuple[str, str]], size: int, channels: int,
                           workers: int, progress: bool) -> int:
        """Decode ``(hash, path)`` items into one new shard; register it and the failures.

        Any OSError writing the cache (full disk, read-only or forbidden folder) becomes a
        ``CacheWriteError``; the temporary shard is removed whatever happens.
        """
        folder = self._dir(size, channels)
        first: dict[str, int] = {}
        unique: list[tuple[str, str]] = []
        for h, p in items:
            if h not in first:
                first[h] = len(unique)
                unique.append((h, p))
        needed = shard_bytes(len(unique), size, channels)
        name = f"d{DECODER_VERSION}-{uuid.uuid4().hex[:16]}.npy"
        tmp = temporary_path(folder / name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            check_free_space(folder, needed)
            allocate_shard(tmp, len(unique), size, channels)
            rows = [(row, p) for row, (_, p) in enumerate(unique)]
            n_workers = 1 if len(rows) < _INLINE_MAX else min(workers, len(rows))
            failures: dict[str, str] = {}
            for chunk_failures in run_chunks(
                _decode_chunk, split_chunks(rows, n_workers), str(tmp), size, channels,
                workers=n_workers, progress=progress, description=f"decoding {size}px",
            ):
                failures.update({unique[row][0]: reason for row, reason in chunk_failures})
            # Shard rows follow the request order (duplicates included), so the same request
            # later is served by this shard alone, zero copy.
            order = [first[h] for h, _ in items if h not in failures]
            shard_hashes = [h for h, _ in items if h not in failures]
            if order != list(range(len(unique))):
                reordered = temporary_path(tmp)
                if order:
                    reorder_shard(tmp, reordered, order)
                remove_quietly(tmp)
                tmp = reordered
            if shard_hashes:
                os.replace(tmp, folder / name)
            with file_lock(folder / ".lock"):
                raw = read_json(self._index_path(size, channels)) or {}
                shards = raw.get("shards", {})
                if shard_hashes:
                    shards[name] = shard_hashes
                failed = {**raw.get("failed", {}), **failures}
                atomic_write_json(self._index_path(size, channels), {
                    "decoder_version": DECODER_VERSION, "size": size, "channels": channels,
                    "shards": shards, "failed": failed,
                })
        except OSError as exc:
            raise CacheWriteError.from_os_error(folder, exc, needed=needed) from exc
        finally:
            remove_quietly(tmp)
        return len(unique)

    def _assemble(self, wanted: list[str], where: dict[str, tuple[str, int]],
                  index: dict[str, Any], size: int, channels: int) -> np.ndarray:
        """Images for content hashes ``wanted``: one shard as is when it matches, else a copy."""
        folder = self._dir(size, channels)
        if not wanted:
            return np.empty((0, size, size, channels), dtype=np.uint8)
        for shard, hashes in index["shards"].items():
            if len(hashes) == len(wanted) and hashes == wanted:
                return np.load(folder / shard, mmap_mode="r")  # zero copy
        out = np.empty((len(wanted), size, size, channels), dtype=np.uint8)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for pos, h in enumerate(wanted):
            shard, row = where[h]
            by_shard.setdefault(shard, []).append((row, pos))
        for shard, pairs in by_shard.items():
            pairs.sort()  # read each shard front to back
            src = np.load(folder / shard, mmap_mode="r")
            rows = np.array([r for r, _ in pairs])
            pos = np.array([p for _, p in pairs])
            for start in range(0, len(rows), 1024):  # bounded temporary memory
                out[pos[start:start + 1024]] = src[rows[start:start + 1024]]
            del src
        return out


def _where(index: dict[str, Any]) -> dict[str, tuple[str, int]]:
    where: dict[str, tuple[str, int]] = {}
    for shard, hashes in index["shards"].items():
        for row, h in enumerate(hashes):
            where.setdefault(h, (shard, row))
    return where
