"""Full, read-only and forbidden cache folders: one clear error, never a crash or a leftover.

Before, a full cache disk ended `cxrbench run` with `Bus error` (SIGBUS from writing into a
memory map of a sparse shard, exit 135, a `.tmp` shard left) or `BrokenProcessPool`. Shards now
have their blocks reserved before they are mapped, and every write fault is a CacheWriteError
(exit 2) that says what, where and what to do. Tested on a real 2 MB tmpfs when this machine
lets the tests mount one, and through fault injection everywhere.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from data_helpers import run_cli, run_main
from fs_helpers import fill, leftovers, mounted_tmpfs

from cxrbench.data import CacheWriteError, ImageCache, load_dataset
from cxrbench.data import shards as shards_mod


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards (needs root, or a container that allows it)."""
    with mounted_tmpfs(tmp_path / "mnt", "2m") as mnt:
        yield mnt


def test_full_tmpfs_cache_is_exit_2_with_a_message(synthetic_root: Path, small_tmpfs: Path,
                                                  tmp_path: Path) -> None:
    cache = small_tmpfs / "cache"
    fill(small_tmpfs, leave=16 * 1024)  # the file-hash index fits; the images do not
    done = run_cli(synthetic_root, tmp_path / "out", cache, "--cache-dir", str(cache))
    assert done.returncode == 2, done.stderr
    assert "Bus error" not in done.stderr and "Traceback" not in done.stderr
    # The space the whole cache needs is checked before any image is decoded (the run's
    # check names the cache folder; each shard's own check names its shape's folder).
    assert (f"cxrbench: error: cannot write the image cache in {cache}: no space "
            "left on the device (needs about ") in done.stderr
    assert ("free); free space there, or point --cache-dir (or CXRBENCH_CACHE_DIR) at another "
            "disk") in done.stderr
    assert leftovers(small_tmpfs) == []
    # Room made: the same command succeeds.
    (small_tmpfs / "filler.bin").unlink()
    again = run_cli(synthetic_root, tmp_path / "out", cache, "--cache-dir", str(cache),
                    "--overwrite")
    assert again.returncode == 0, again.stderr


def test_allocation_on_a_full_tmpfs_fails_cleanly(synthetic_root: Path, small_tmpfs: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the free-space check (e.g. another process filled the disk meanwhile)."""
    monkeypatch.setattr("cxrbench.data.cache.check_free_space", lambda folder, needed: None)
    records = load_dataset(synthetic_root).records
    fill(small_tmpfs, leave=8 * 1024)
    with pytest.raises(CacheWriteError, match="no space left on the device") as err:
        ImageCache(small_tmpfs / "c").load(records, 64, 3)
    assert err.value.errno == errno.ENOSPC
    assert leftovers(small_tmpfs) == []


def test_read_only_cache_is_exit_2_with_a_message(synthetic_root: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "ro", "2m", read_only=True) as mnt:
        done = run_cli(synthetic_root, tmp_path / "out", mnt, "--cache-dir", str(mnt))
    assert done.returncode == 2, done.stderr
    # Refused before the data is read: the run checks that its cache folder is writable.
    assert (f"cxrbench: error: cache folder {mnt} is not writable: the file system is "
            "read-only; use a writable folder, or pass --cache-dir with another folder"
            ) in done.stderr


@pytest.mark.parametrize(("code", "what"), [
    (errno.ENOSPC, "no space left on the device"),
    (errno.EROFS, "the file system is read-only"),
    (errno.EACCES, "permission denied"),
])
def test_injected_write_faults_through_the_cli(synthetic_root: Path, tmp_path: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch, code: int,
                                               what: str) -> None:
    def refuse(fd: int, offset: int, length: int) -> None:
        raise OSError(code, "injected")

    monkeypatch.setattr(shards_mod.os, "posix_fallocate", refuse)
    cache = tmp_path / "cache"
    done = run_main(capsys, synthetic_root, tmp_path / "out", "--cache-dir", str(cache))
    assert done.returncode == 2
    assert f"cannot write the image cache in {cache}/images/32x1: {what} (needs about " in (
        done.stderr)
    assert leftovers(cache) == [] and not list(cache.rglob("*.npy"))


def test_without_fallocate_zeros_are_written(synthetic_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    records = load_dataset(synthetic_root).records
    reference = ImageCache(tmp_path / "a").load(records, 32, 1).images

    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(shards_mod.os, "posix_fallocate", unsupported)
    loaded = ImageCache(tmp_path / "b").load(records, 32, 1)
    assert np.array_equal(loaded.images, reference)


def test_space_needed_is_estimated_and_checked(synthetic_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    records = load_dataset(synthetic_root).records
    cache = ImageCache(tmp_path / "c")
    shapes = {(32, 1), (64, 3)}
    needed = cache.check_space(records, shapes)
    assert needed == 128 * 2 + 36 * (32 * 32 + 64 * 64 * 3)
    cache.load(records, 32, 1)
    assert cache.bytes_needed(records, shapes) == 128 + 36 * 64 * 64 * 3  # 32 px is cached
    monkeypatch.setattr(shards_mod, "free_bytes", lambda folder: 1000)
    with pytest.raises(CacheWriteError, match=r"no space left on the device \(needs about "
                       r"433 KB, 1 KB free\)"):
        cache.check_space(records, shapes)
    monkeypatch.undo()
    cache.load(records, 64, 3)
    assert cache.check_space(records, shapes) == 0  # warm: nothing to check
    err = pickle.loads(pickle.dumps(CacheWriteError("x", path="/p", errno_code=28)))
    assert (str(err), err.path, err.errno) == ("x", "/p", 28)
