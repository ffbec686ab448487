"""Local executors: jobs in this process (``inline``) or each in a fresh process (``process``).

``process`` (default): each job in a fresh process, one at a time (each job already uses every
core), so a job that leaks memory, segfaults or hangs past its timeout cannot take the run
down: it becomes an error or timeout record. Job processes are forked from cxrbench's fork
server, which has the common libraries imported already (``cxrbench.processes``), and take
their parent's environment as it is when the job starts. ``inline``: in this process, for
debugging and fast tests.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import psutil

from cxrbench.processes import (
    adopt_environment,
    forkserver_context,
    job_start_method,
    server_matches_environment,
)
from cxrbench.run.executors.base import ExecutorError
from cxrbench.run.jobs import Job, error_record, run_job


class InlineExecutor:
    """Runs jobs one after the other in the calling process."""

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield run_job(job)


def _exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Exit when the parent dies (e.g. SIGKILL): an orphaned job must not burn CPU for hours.

    ``parent_pid`` is the process that runs the job (the harness); a forked job's direct parent
    is the fork server, which exits with the harness, so either going away ends the job.
    """
    direct_parent = os.getppid()

    def watch() -> None:
        while os.getppid() == direct_parent and psutil.pid_exists(parent_pid):
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="cxrbench-parent-watch", daemon=True).start()


def allow_child_processes() -> None:
    """Let this daemonic process (a job process, a Dask worker) start processes of its own.

    multiprocessing refuses children of daemonic processes: joblib then runs on one core (with
    a warning) and a cold image cache cannot be decoded at all. A job process and its own
    children are killed together (``_kill_tree``) or exit with their parent.
    """
    mp.current_process()._config["daemon"] = False  # type: ignore[attr-defined]


def _child(job: Job, conn: Connection, parent_pid: int, env: dict[str, str]) -> None:
    adopt_environment(env)  # a fork server's child has the server's environment otherwise
    # The parent handles Ctrl-C; the child must not die half-way through sending its record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent_pid)
    allow_child_processes()
    conn.send(run_job(job))
    conn.close()
    _exit_now()


def _exit_now() -> None:
    """End the job process as soon as its record is sent, with any pools it started.

    A normal interpreter exit would wait for idle worker pools (joblib's loky workers linger
    for 300 s) before the parent can join it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()
    os._exit(0)


def _kill_tree(process: mp.process.BaseProcess) -> None:
    """Kill a job process and the processes it started (e.g. joblib workers), then reap it."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    process.kill()
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()
    process.join()


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


class ProcessExecutor:
    """Each job in its own fresh process, with an optional per-job timeout."""

    def __init__(self, default_timeout_s: float | None = None) -> None:
        self.default_timeout_s = default_timeout_s
        try:
            job_start_method()  # a misspelt CXRBENCH_JOB_START fails before any job
        except ValueError as err:
            raise ExecutorError(str(err)) from err

    @staticmethod
    def _context_for_next_job() -> mp.context.BaseContext:
        """Forked from the preloaded server, unless it cannot give this job its thread settings
        (they changed since it started), this platform has none, or ``CXRBENCH_JOB_START`` says
        ``spawn``: then a spawned process."""
        if job_start_method() == "forkserver":
            server = forkserver_context()
            if server is not None and server_matches_environment():
                return server
        return mp.get_context("spawn")

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield self.run_one(job)

    def run_one(self, job: Job) -> dict[str, Any]:
        """Run one job in a fresh process; a timeout or a crash becomes an error record."""
        timeout = job.timeout_s if job.timeout_s is not None else self.default_timeout_s
        context = self._context_for_next_job()
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_child,
                                  args=(job, sender, os.getpid(), dict(os.environ)), daemon=True)
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
                _kill_tree(process)
                if process.exitcode is not None and process.exitcode < 0 and timeout is not None:
                    return error_record(
                        job, "timeout", f"{job.job_id} exceeded its {timeout:g} s timeout"
                    )
            return self._crash_record(job, process.exitcode)
        except BaseException:
            _kill_tree(process)
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
