"""One fork server for every process cxrbench starts: job processes and decoding workers.

A spawned process imports NumPy, pandas, scikit-learn and cxrbench again before it does any
work, and skops (needed to save a scikit-learn model) walks every scikit-learn module at import:
1.5 s per job on 2 quiet cores, measured (``benchmarks/README.md``, 3.4). A fork server imports them
once; each job process is then forked from it, still a fresh process of its own (a crash, a
leak or a timeout stays in it), but without paying the imports again. TensorFlow, PyTorch's
thread pools and JAX are never started in the server: forking a process that runs library
threads can deadlock the child.

Python's fork server is one per process, with one preload list, so every pool uses this one.
Its environment is fixed when it starts: a job process adopts its parent's current environment
(``adopt_environment``), but the native libraries preloaded in the server read their thread
settings (``OMP_*``, ``OPENBLAS_*``, ...) only once, when the server loaded them. When those
have changed since, jobs are spawned instead (``server_matches_environment``), and
``CXRBENCH_JOB_START=spawn`` spawns every job process as before (measured side by side in
``benchmarks/test_job_start.py``).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections.abc import Mapping

# Imported once in the server (a module that is not installed is skipped by Python).
PRELOAD = ("cxrbench.data.cache", "cxrbench.run.jobs", "skops.io", "xgboost")

# Read by native libraries when they load: a server started under other values would give its
# children other thread settings than their parent asked for.
_LOAD_TIME_ENV_PREFIXES = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "BLIS_")

START_METHODS = ("forkserver", "spawn")
DEFAULT_START_METHOD = "forkserver"

_server_env: dict[str, str] | None = None


def job_start_method() -> str:
    """How job processes start: ``CXRBENCH_JOB_START``, else forked from the server."""
    method = os.environ.get("CXRBENCH_JOB_START", DEFAULT_START_METHOD)
    if method not in START_METHODS:
        raise ValueError(f"CXRBENCH_JOB_START={method!r}: use one of {', '.join(START_METHODS)}")
    return method


def load_time_environment() -> dict[str, str]:
    """This process's environment variables that native libraries read when they load."""
    return {k: v for k, v in os.environ.items() if k.startswith(_LOAD_TIME_ENV_PREFIXES)}


def forkserver_context() -> multiprocessing.context.BaseContext | None:
    """The fork-server context with cxrbench's preload list, or None where there is none
    (Windows). The server itself starts with the first process started from it."""
    global _server_env
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    if _server_env is None:
        _server_env = load_time_environment()
    return context


def server_matches_environment() -> bool:
    """Whether the fork server's native libraries saw this process's current thread settings."""
    return _server_env is None or _server_env == load_time_environment()


def adopt_environment(env: Mapping[str, str]) -> None:
    """Make this (forked) process's environment ``env``: its parent's at the time of the fork."""
    os.environ.clear()
    os.environ.update(env)
