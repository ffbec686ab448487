"""Small real file systems for fault tests: a tmpfs of a few MB, filled or made read-only
during a run. Mounting needs root or a container that allows it; where it is not allowed the
tests that need one skip and say why (the fault-injection tests cover the same code paths).
A plain module: pytest puts tests/ on ``sys.path``."""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(args: list[str]) -> None:
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here; the fault-injection tests cover the same errors")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the fault-injection tests cover the same errors")


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str = "4m", *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where`` for the block, then unmounted."""
    where.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs",
            str(where)])
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, mode: str) -> None:
    """``mode`` "ro" or "rw": make a mounted tmpfs read-only, or writable again."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True,
                   capture_output=True)


def fill(where: Path, leave: int = 0, name: str = "filler.bin") -> Path:
    """Fill the file system holding ``where`` but ``leave`` bytes (0: to its last page);
    returns the filler file, to delete to make room again."""
    filler = where / name
    if leave:
        with open(filler, "wb") as handle:
            handle.write(bytes(max(0, shutil.disk_usage(where).free - leave)))
        return filler
    with open(filler, "wb", buffering=0) as handle:
        for block in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    handle.write(bytes(block))
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    return filler


def leftovers(folder: Path) -> list[str]:
    """Temporary files (atomic writes in progress) left in ``folder``."""
    return sorted(p.name for p in folder.rglob("*.tmp"))
