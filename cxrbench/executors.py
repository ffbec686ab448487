"""Executors run jobs and yield records as each finishes.

``process`` (default): each job in a fresh process, one at a time (each job already uses every
core), so a job that leaks memory, segfaults or hangs past its timeout cannot take the run
down: it becomes an error or timeout record. ``inline``: in this process, for debugging and
fast tests. Another executor (e.g. Dask) only has to implement ``run(jobs)``.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Protocol

from cxrbench.jobs import Job, error_record, run_job


class Executor(Protocol):
    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]: ...


class InlineExecutor:
    """Runs jobs one after the other in the calling process."""

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield run_job(job)


def _child(job: Job, conn: Connection) -> None:
    # The parent handles Ctrl-C; the child must not die half-way through sending its record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(run_job(job))
    conn.close()


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


class ProcessExecutor:
    """Each job in its own spawned process, with an optional per-job timeout."""

    def __init__(self, default_timeout_s: float | None = None) -> None:
        self.default_timeout_s = default_timeout_s
        self._context = mp.get_context("spawn")

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield self._run_one(job)

    def _run_one(self, job: Job) -> dict[str, Any]:
        timeout = job.timeout_s if job.timeout_s is not None else self.default_timeout_s
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_child, args=(job, sender), daemon=True)
        process.start()
        sender.close()
        try:
            if receiver.poll(timeout):
                try:
                    record = receiver.recv()
                except EOFError:
                    record = None
                process.join()
                if record is not None:
                    return record
            else:
                process.kill()
                process.join()
                if process.exitcode is not None and process.exitcode < 0 and timeout is not None:
                    return error_record(
                        job, "timeout", f"{job.job_id} exceeded its {timeout:g} s timeout"
                    )
            return self._crash_record(job, process.exitcode)
        except BaseException:
            process.kill()
            process.join()
            raise
        finally:
            receiver.close()

    @staticmethod
    def _crash_record(job: Job, exitcode: int | None) -> dict[str, Any]:
        if exitcode is not None and exitcode < 0:
            cause = f"killed by {_signal_name(exitcode)}"
            if -exitcode == signal.SIGKILL:
                cause += " (often the out-of-memory killer)"
        else:
            cause = f"exited with code {exitcode}"
        return error_record(job, "crash", f"the process running {job.job_id} {cause}")


def make_executor(name: str, *, timeout_s: float | None = None, **options: Any) -> Executor:
    if name == "process":
        return ProcessExecutor(default_timeout_s=timeout_s)
    if name == "inline":
        return InlineExecutor()
    if name == "dask":
        from cxrbench.dask_executor import DaskExecutor  # optional extra

        return DaskExecutor(timeout_s=timeout_s, **options)
    raise ValueError(f"unknown executor {name!r}; use 'process', 'inline' or 'dask'")
