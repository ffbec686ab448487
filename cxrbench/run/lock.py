"""One run per output folder: an exclusive lock, held for the life of the run.

The lock is an advisory ``flock`` on ``OUT/.cxrbench.lock``; the file also names its holder
(pid, host, process start time, command line, since when), so that a second run on the same
folder fails at once and says who holds it. The kernel drops a ``flock`` when its process dies,
however it dies, so a crashed run never blocks the folder: the next run gets the lock, finds
the dead holder's record (a pid that is gone, or reused by another process) and says that it
took over. A record naming a live process on this host is honoured even where ``flock`` is not
(some network file systems). A record from another host cannot be checked from here: the run
is refused with the way to clear it. A clean release deletes the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from cxrbench.files import is_write_fault, write_fault_message
from cxrbench.provenance import utc_now
from cxrbench.run.layout import LOCK_FILE
from cxrbench.run.plan import RunError

NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # then the holder's record guards
START_TIME_SLACK_S = 1.0  # process start times are read back with this much rounding


class OutputBusyError(RunError):
    """Another run holds the output folder (or its lock cannot be checked from here)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: enough to name it and to tell whether it is still alive."""

    pid: int
    host: str
    since: str
    start_time: float | None = None  # the process's start (psutil), to detect a reused pid
    command: list[str] | None = None

    @classmethod
    def me(cls, command: list[str] | None) -> Holder:
        return cls(os.getpid(), socket.gethostname(), utc_now(),
                   psutil.Process().create_time(), command)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder a lock file names; None when it is empty or unreadable."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data.get("since", "?")),
                       data.get("start_time"), data.get("command"))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        command = f", running `{' '.join(self.command)}`" if self.command else ""
        return f"pid {self.pid} on host {self.host} (since {self.since}{command})"

    def alive_here(self) -> bool:
        """Whether this host runs the holder's process (the same pid, started at that time)."""
        try:
            started = psutil.Process(self.pid).create_time()
        except psutil.Error:
            return False
        return self.start_time is None or abs(started - self.start_time) <= START_TIME_SLACK_S


class OutputLock:
    """``with OutputLock(folder, command) as lock:`` holds ``folder`` for the block.

    ``acquire`` raises ``OutputBusyError`` at once (it never waits) when another run holds the
    folder; ``lock.note`` says when a dead run's lock was taken over.
    """

    def __init__(self, folder: str | Path, command: list[str] | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.command = command
        self.note: str | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; the holder's record alone guards the folder
            fcntl = None
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:  # read-only: a file open for writing would keep its disk from being
                # remounted read-only (a fault the run must survive, and tests make)
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o666)
            except FileNotFoundError:  # a refused run removed the empty folder meanwhile
                continue
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.parse(_read(fd))
                os.close(fd)
                raise OutputBusyError(self._busy(holder)) from None
            except OSError as err:  # ENOLCK etc.: a file system without flock (some NFS)
                if err.errno not in NO_FLOCK:
                    os.close(fd)
                    raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder released (and deleted) the file meanwhile: try again
        try:
            self._check_previous(Holder.parse(_read(fd)))
            _rewrite(self.path, json.dumps(asdict(Holder.me(self.command))))
        except BaseException as err:
            os.close(fd)  # closing drops the flock
            if is_write_fault(err):
                raise RunError(write_fault_message(err, "the lock file", self.path,
                                                   "choose another --out")) from err
            raise
        self._fd = fd
        return self

    def _check_previous(self, previous: Holder | None) -> None:
        """A record whose flock was free: a dead run's (taken over), or one to refuse."""
        if previous is None or previous.pid == os.getpid() and previous.host == _host():
            return
        if previous.host != _host():
            raise OutputBusyError(
                f"{self.folder} is locked by {previous.describe()}, which cannot be checked "
                f"from this host; if that run has ended, delete {self.path} and try again, "
                "or choose another --out")
        if previous.alive_here():  # the file system does not enforce flock: trust the record
            raise OutputBusyError(self._busy(previous))
        self.note = (f"took over the lock of {self.folder} left by {previous.describe()}, "
                     "which is no longer running")

    def _busy(self, holder: Holder | None) -> str:
        who = holder.describe() if holder else "another process (it has not said which yet)"
        return (f"{self.folder} is in use by another cxrbench run: {who}. Wait for it to end, "
                "or choose another --out (two runs in one folder would mix their results)")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # deleted before unlocking: see acquire's retry
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _host() -> str:
    return socket.gethostname()


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _rewrite(path: Path, text: str) -> None:
    """Replace the contents of the locked file (in place: the lock is on this inode)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (a releasing run deletes it)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (here.st_dev, here.st_ino)
