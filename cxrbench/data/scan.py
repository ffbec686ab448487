"""Facts about files, remembered: content hash (sha256) and header (size, pixel spacing).

The index lives under the cache folder (``hashes/{key}.json``) and is keyed by (absolute path,
size, mtime_ns), so re-loading a data set only stats its files. Misses are read in threads
(hashlib and the image libraries release the GIL). A file that cannot be read at all is
returned as ``None`` with the reason, never raised: one broken file must not stop a data set
from loading.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrbench.cores import usable_cores
from cxrbench.data.cache import default_cache_dir
from cxrbench.data.decode import read_header
from cxrbench.files import atomic_write_json, read_json, sha256_file

_INDEX_VERSION = 2


@dataclass(frozen=True)
class FileFacts:
    content_hash: str
    width: int | None  # None when the header cannot be read (decoding will then fail too)
    height: int | None
    pixel_spacing_mm: str  # "row,column" for DICOM; "" otherwise


def _read_facts(path: str, known_hash: str | None) -> FileFacts:
    digest = known_hash or sha256_file(path)
    width, height, spacing = read_header(path)
    return FileFacts(digest, width, height, spacing)


def scan_files(paths: Sequence[str], *, key: str, cache_dir: str | Path | None = None
               ) -> tuple[list[FileFacts | str], str | None]:
    """``FileFacts`` for each path, or the reason (a string) when the file cannot be read;
    and a note when the index could not be saved (a read-only or full cache: the facts are
    then read again next time, nothing else is lost).

    ``key`` names the small index file (e.g. the data set root).
    """
    index_path = Path(cache_dir or default_cache_dir()) / "hashes" / (
        hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")
    known: dict[str, list[Any]] = (read_json(index_path) or {}).get("files", {})
    out: list[FileFacts | str | None] = []
    stats: list[os.stat_result | None] = []
    misses: list[tuple[int, str | None]] = []
    note = None
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError as exc:
            stats.append(None)
            out.append(unreadable_reason(p, exc))
            continue
        stats.append(st)
        entry = known.get(p)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            if len(entry) == 6:
                out.append(FileFacts(entry[2], entry[3], entry[4], entry[5]))
                continue
            misses.append((i, entry[2]))  # an index of version 1: the hash, but no header
        else:
            misses.append((i, None))
        out.append(None)
    if misses:
        n_threads = min(16, 4 * usable_cores(), len(misses))
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            futures = [pool.submit(_read_facts, paths[i], h) for i, h in misses]
            for (i, _), fut in zip(misses, futures, strict=True):
                try:
                    out[i] = fut.result()
                except OSError as exc:  # e.g. permission denied, or removed meanwhile
                    out[i] = unreadable_reason(paths[i], exc)
        files = {p: [st.st_size, st.st_mtime_ns, f.content_hash, f.width, f.height,
                     f.pixel_spacing_mm]
                 for p, st, f in zip(paths, stats, out, strict=True)
                 if st is not None and isinstance(f, FileFacts)}
        try:
            atomic_write_json(index_path, {"version": _INDEX_VERSION, "files": files})
        except OSError as exc:  # a read-only or full cache must not stop anyone loading data
            note = (f"could not save the file-hash index {index_path} ({exc.strerror or exc}); "
                    "file hashes will be computed again next time")
    return [f for f in out if f is not None], note


def unreadable_reason(path: str | Path, exc: OSError) -> str:
    """Why a file cannot be opened, in words (dangling and looping symlinks named as such)."""
    path = Path(path)
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if exc.errno == errno.ELOOP:
            return f"symlink loop ({path.name} -> {target})"
        if not os.path.exists(path):
            return f"dangling symlink (-> {target}, which does not exist)"
    return f"{type(exc).__name__}: {exc.strerror or exc}"
