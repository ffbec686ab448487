"""A run's output folder, written only while the run holds its lock (``cxrbench.run.lock``).

``results.json`` is rewritten atomically after every record. Records are merged into it: if
anything else changed the file since this run last wrote it (a writer that ignores the lock),
the records of other jobs found there are kept, so a finished record is never lost.

A write fault (full disk, read-only or forbidden folder) becomes an ``OutputWriteError`` whose
message says what, where and what to do; atomic writes leave no temporary file behind. A full
disk would leave no room to record that the run stopped, so the run keeps a reserve file beside
its results, as large as the results plus a margin: ``rescue`` deletes it and writes the
results once more, with every finished record and the status the caller gives
("interrupted"). A read-only or forbidden folder gives no second chance: the file keeps its
last complete state. ``--resume`` finishes the run in either case.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from cxrbench.files import is_write_fault, write_fault_message
from cxrbench.provenance import utc_now
from cxrbench.results.io import ResultsError, read_results, write_results
from cxrbench.run.layout import REPORT_FILE, RESULTS_FILE, SPLIT_FILE  # noqa: F401 (re-exported)
from cxrbench.run.plan import RunError
from cxrbench.splits import SplitPlan

RESERVE_FILE = ".cxrbench.reserve"
RESERVE_MARGIN = 1 << 20  # bytes beyond the results' size: room for the record being added
DERIVED = ("summary", "statistics", "small_data")  # recomputed by every reader


class OutputWriteError(RunError):
    """A file of the run's output folder could not be written (the message says why)."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class RunOutput:
    """The files of one run in ``folder``: split plan, results (with a reserve), report."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.results_path = self.folder / RESULTS_FILE
        self.plan_path = self.folder / SPLIT_FILE
        self.report_path = self.folder / REPORT_FILE
        self.reserve_path = self.folder / RESERVE_FILE
        self._written: tuple[int, int, int] | None = None  # the file as this run last wrote it

    def save_plan(self, plan: SplitPlan) -> Path:
        try:
            return plan.save(self.plan_path)
        except OSError as err:
            if not is_write_fault(err):
                raise
            raise OutputWriteError(write_fault_message(
                err, "the split plan", self.plan_path, "choose another --out")) from err

    def write(self, results: dict[str, Any]) -> None:
        """Write ``results`` (merging in records written by anything else), keep the reserve."""
        self._merge_outside_changes(results)
        try:
            write_results(self.results_path, results)
            self._written = _fingerprint(self.results_path)
            self._grow_reserve(self.results_path.stat().st_size)
        except OSError as err:
            if not is_write_fault(err):
                raise
            raise OutputWriteError(write_fault_message(
                err, "the results", self.results_path, "choose another --out")) from err

    def rescue(self, results: dict[str, Any]) -> bool:
        """After a write fault: free the reserve and write ``results`` once more (without the
        derived sections, which readers recompute). True when the file now holds them."""
        self.drop_reserve()
        try:
            write_results(self.results_path,
                          {k: v for k, v in results.items() if k not in DERIVED})
        except OSError:
            return False
        self._written = _fingerprint(self.results_path)
        return True

    def drop_reserve(self) -> None:
        with contextlib.suppress(OSError):
            self.reserve_path.unlink()

    def _grow_reserve(self, results_size: int) -> None:
        """Make the reserve at least as large as the results plus a margin (an ENOSPC here
        is the first sign of a full disk: the caller rescues the run with what is reserved)."""
        target = results_size + max(RESERVE_MARGIN, results_size // 4)
        with open(self.reserve_path, "ab") as handle:
            if handle.tell() >= target:
                return
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, target)
            else:  # no fallocate (Windows, macOS): write the bytes
                handle.write(bytes(target - handle.tell()))
            handle.flush()

    def _merge_outside_changes(self, results: dict[str, Any]) -> None:
        """Keep the records another writer put in the file since this run last wrote it."""
        if self._written is None or _fingerprint(self.results_path) == self._written:
            return
        try:
            theirs = read_results(self.results_path)
        except ResultsError as err:
            _log(f"warning: {self.results_path} was changed by another process during the run "
                 f"and cannot be read ({err}); it is replaced by this run's results")
            return
        if theirs["split"].get("sha256") != results["split"].get("sha256"):
            aside = self.results_path.with_name(
                f"results.displaced-{utc_now().replace(':', '')}.json")
            os.replace(self.results_path, aside)
            _log(f"warning: {self.results_path} was replaced during the run by results of "
                 f"another split plan; they are kept as {aside}")
            return
        mine = {r["job_id"] for r in results["records"]}
        extra = [r for r in theirs["records"] if r["job_id"] not in mine]
        if extra:
            results["records"].extend(extra)
            _log(f"warning: {self.results_path} was changed by another process during the run; "
                 f"its {len(extra)} other record(s) are kept")
