"""Run jobs on a Dask distributed cluster: an existing one (scheduler address) or a LocalCluster.

Each job is one task. On its worker the job runs in a fresh child process through
``ProcessExecutor.run_one`` (``isolate=True``, the default), so a job over its timeout is killed
there (the worker is never left burning CPU) and a segfault is an error record, exactly as in
a local run. A worker that dies anyway (killed, out of memory) makes its job an error record:
the local cluster's scheduler does not retry a task that killed a worker (allowed-failures 0)
and ``KilledWorker`` is caught. Records come back as jobs finish (``as_completed``) and the
harness writes them, as for the local executors.

Workers need the data at the same path as the client (checked before any job is submitted) and
a cache folder: the client's ``--cache-dir`` when they share its file system, else
``worker_cache_dir``. The split plan travels with the job, so it need not be shared.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import traceback
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask
from distributed import Client, KilledWorker, LocalCluster, as_completed, get_worker

from cxrbench.files import atomic_write_text
from cxrbench.plugins.registry import get_card
from cxrbench.run.executors.base import ExecutorError
from cxrbench.run.executors.local import ProcessExecutor, allow_child_processes
from cxrbench.run.jobs import Job, error_record, load_job_plugin, run_job

CONNECT_TIMEOUT_S = 30
LOCAL_START_TIMEOUT_S = 180


def wants_accelerator(model: str) -> bool:
    """Jobs whose plugin card says it benefits from a GPU are the ones pinned to GPU workers."""
    return get_card(model).accelerator


# ------------------------------------------------------------------------------- on the worker
def _localize(job: Job, plan_text: str, cache_dir: str | None) -> Job:
    """Point the job at this worker's cache, and at a local copy of the plan if not shared."""
    if cache_dir:
        job = replace(job, cache_dir=cache_dir)
    if not Path(job.split_plan_path).is_file():
        local = Path(job.cache_dir) / "plans" / f"{job.split_sha256}.json"
        if not local.is_file():
            atomic_write_text(local, plan_text)
        job = replace(job, split_plan_path=str(local))
    return job


def run_on_worker(job: Job, default_timeout_s: float | None, isolate: bool, plan_text: str,
                  cache_dir: str | None, topic: str) -> dict[str, Any]:
    """The Dask task: one job, on the worker, in a child process when ``isolate``."""
    worker = get_worker()
    worker.log_event(topic, {"job": job.job_id, "state": "started"})
    try:
        load_job_plugin(job)
    except ImportError as err:
        raise ImportError(f"{err}; the plugin module {job.plugin_source!r} must be importable "
                          f"on every Dask worker (worker {worker.address})") from err
    job = _localize(job, plan_text, cache_dir)
    allow_child_processes()  # Dask's nanny starts workers as daemonic processes
    record = ProcessExecutor(default_timeout_s).run_one(job) if isolate else run_job(job)
    record["worker"] = {"address": worker.address, "hostname": socket.gethostname(),
                        "resources": dict(worker.state.total_resources)}
    return record


def _quiet_worker_logs() -> None:
    logging.getLogger("distributed").setLevel(logging.ERROR)


def _pin_to_cores(cores: list[int]) -> None:
    """Jobs inherit their worker's CPU affinity, and size their process pools by it."""
    os.sched_setaffinity(0, cores)


def _share_cores(client: Client) -> None:
    """Give each local worker its own cores, so that jobs on different workers (each using
    all the cores it may) do not compete for the same ones. Linux only; a no-op elsewhere."""
    if not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    for i, address in enumerate(workers):
        share = cores[i::len(workers)] or [cores[i % len(cores)]]
        client.run(_pin_to_cores, share, workers=[address])


# ------------------------------------------------------------------------------- on the client
@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Errors only from the in-process scheduler, start to close (job failures are records)."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Progress:
    """Jobs done, running and failed: a rich progress bar on stderr, updated from two threads."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._started: set[str] = set()
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("dask jobs"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[running]} running, {task.fields[failed]} failed"),
                TimeElapsedColumn(), console=Console(stderr=True),
            )
            self._task = self._bar.add_task("jobs", total=total, running=0, failed=0)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._started - self._finished)

    def on_event(self, event: tuple[float, dict[str, str]]) -> None:
        """Subscribed to the run's topic: workers report when a job starts."""
        with self._lock:
            self._started.add(event[1]["job"])
        self._refresh()

    def finished(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._finished.add(record["job_id"])
            self.done += 1
            self.failed += record["status"] != "ok"
        self._refresh()

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, running=self.running,
                             failed=self.failed)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class DaskExecutor:
    """Submits jobs to a Dask cluster and yields their records as they finish.

    ``scheduler``: address of an existing cluster; without it a LocalCluster with ``n_workers``
    single-threaded worker processes (default: one per core) lives for the run.
    ``resources``: what deep jobs request, e.g. ``{"GPU": 1}``; on a LocalCluster one worker
    advertises it, so deep jobs run there one at a time. ``worker_cache_dir``: the image cache
    on the workers when they do not share the client's file system. ``isolate=False`` runs
    jobs in the worker itself (less overhead; no timeouts, and a crash costs the worker).
    """

    def __init__(self, timeout_s: float | None = None, scheduler: str | None = None,
                 n_workers: int | None = None, resources: dict[str, float] | None = None,
                 *, worker_cache_dir: str | None = None, isolate: bool = True,
                 progress: bool | None = None) -> None:
        if not isolate and timeout_s is not None:
            raise ExecutorError("per-job timeouts need isolate=True (a job in a child process)")
        self.timeout_s = timeout_s
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.resources = dict(resources or {})
        self.worker_cache_dir = worker_cache_dir
        self.isolate = isolate
        self.progress = progress

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        jobs = list(jobs)
        if not jobs:
            return
        if not self.isolate and any(job.timeout_s is not None for job in jobs):
            raise ExecutorError("per-job timeouts need isolate=True (a job in a child process)")
        with self._client() as client:
            self._check_workers(client, jobs)
            yield from self._submit_and_collect(client, jobs)

    # --- cluster -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _client(self) -> Iterator[Client]:
        if self.scheduler:
            try:
                client = Client(self.scheduler, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as err:
                raise ExecutorError(
                    f"cannot reach the Dask scheduler at {self.scheduler!r} ({err}); check the "
                    "address (`dask scheduler` prints it) or drop --scheduler for a local cluster"
                ) from err
            with client:
                yield client
            return
        with self._local_cluster() as cluster, Client(cluster) as client:
            n_workers = len(cluster.worker_spec)
            try:
                client.wait_for_workers(n_workers, timeout=LOCAL_START_TIMEOUT_S)
            except TimeoutError as err:
                raise ExecutorError(f"the local Dask cluster did not start {n_workers} workers "
                                    f"in {LOCAL_START_TIMEOUT_S} s; try fewer --dask-workers"
                                    ) from err
            client.run(_quiet_worker_logs)  # our own workers only, never a shared cluster's
            _share_cores(client)
            yield client
            # All jobs done: retiring first lets workers stop before the scheduler does, so
            # they do not log failed heartbeats while the cluster closes.
            client.retire_workers(close_workers=True)

    @contextlib.contextmanager
    def _local_cluster(self) -> Iterator[LocalCluster]:
        n_workers = self.n_workers or os.cpu_count() or 1
        config = {"distributed.scheduler.allowed-failures": 0}
        with _quiet_logs():
            with dask.config.set(config):
                cluster = LocalCluster(
                    n_workers=n_workers - 1 if self.resources else n_workers,
                    threads_per_worker=1, processes=True, dashboard_address=":0",
                    memory_limit=0,  # as locally: no memory cap per worker (jobs in children)
                    silence_logs=logging.ERROR,  # job failures are records, not log noise
                )
            with cluster:
                if self.resources:
                    spec = cluster.new_spec
                    cluster.worker_spec["accelerated"] = {
                        "cls": spec["cls"],
                        "options": {**spec["options"], "resources": self.resources},
                    }
                    cluster.scale(n_workers)
                yield cluster

    def _check_workers(self, client: Client, jobs: list[Job]) -> None:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError as err:
            raise ExecutorError(
                f"no Dask worker joined the scheduler within {CONNECT_TIMEOUT_S} s; start "
                f"workers with `dask worker {client.scheduler.address}`"
            ) from err
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if self.resources and any(wants_accelerator(job.model) for job in jobs):
            have = [w for w in workers.values()
                    if all(w.get("resources", {}).get(k, 0) >= v
                           for k, v in self.resources.items())]
            if not have:
                wanted = ",".join(f"{k}={v:g}" for k, v in self.resources.items())
                raise ExecutorError(
                    f"no Dask worker advertises the resource {wanted} that deep jobs request; "
                    f"start GPU workers with `dask worker ADDRESS --resources {wanted}` "
                    "or drop --dask-gpu-resource"
                )
        data_paths = sorted({job.data_path for job in jobs})
        seen = client.run(lambda: [os.path.exists(p) for p in data_paths])
        missing = sorted(addr for addr, found in seen.items() if not all(found))
        if missing:
            raise ExecutorError(
                f"the data {', '.join(data_paths)} is not visible on Dask worker(s) "
                f"{', '.join(missing)}; mount it at the same path on every worker"
            )

    # --- jobs --------------------------------------------------------------------------------
    def _submit_and_collect(self, client: Client,
                            jobs: list[Job]) -> Iterator[dict[str, Any]]:
        """Keep at most one job per worker thread in flight; yield records as they finish.

        Submitting everything at once would queue several jobs on each worker, and a worker
        that dies fails every job queued on it, not only the one that killed it.
        """
        plans = {path: Path(path).read_text() for path in {job.split_plan_path for job in jobs}}
        topic = f"cxrbench-{uuid.uuid4().hex[:12]}"  # unique: a shared scheduler has other runs
        pending = deque(jobs)
        in_flight: dict[Any, Job] = {}
        finished = as_completed()

        def top_up() -> None:
            slots = max(sum(client.nthreads().values()), 1)
            while pending and len(in_flight) < slots:
                job = pending.popleft()
                future = client.submit(
                    run_on_worker, job, self.timeout_s, self.isolate,
                    plans[job.split_plan_path], self.worker_cache_dir, topic,
                    key=f"{topic}-{len(jobs) - len(pending)}",
                    resources=self.resources if self.resources and wants_accelerator(job.model)
                    else None,
                )
                in_flight[future] = job
                finished.add(future)

        enabled = sys.stderr.isatty() if self.progress is None else self.progress
        progress = _Progress(len(jobs), enabled)
        client.subscribe_topic(topic, progress.on_event)
        try:
            with progress:
                top_up()
                for future in finished:
                    record = _collect(future, in_flight.pop(future))
                    future.release()  # a finished job is never recomputed if its worker dies
                    top_up()
                    progress.finished(record)
                    yield record
        finally:
            client.unsubscribe_topic(topic)
            client.cancel(list(in_flight))  # an interrupted run: jobs still running


def _collect(future: Any, job: Job) -> dict[str, Any]:
    """The job's record, or an error record when the task itself failed."""
    try:
        return future.result()
    except KilledWorker as err:
        return error_record(
            job, "crash",
            f"the Dask worker running {job.job_id} died ({err.last_worker.address}); "
            "often the out-of-memory killer, or the worker was stopped",
        )
    except Exception as err:  # e.g. the plugin module is not importable on the worker
        return error_record(job, type(err).__name__, str(err) or repr(err),
                            traceback.format_exc(limit=20))
