"""Executors: where jobs run. ``process`` (default) and ``inline`` locally; ``dask`` on a
cluster (optional extra). Each implements ``run(jobs) -> records as they finish``."""

from __future__ import annotations

from typing import Any

from cxrbench.run.config import EXECUTORS
from cxrbench.run.executors.base import Executor, ExecutorError
from cxrbench.run.executors.local import InlineExecutor, ProcessExecutor

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "InlineExecutor", "ProcessExecutor",
           "make_executor"]


def make_executor(name: str, *, timeout_s: float | None = None, **options: Any) -> Executor:
    if name == "process":
        return ProcessExecutor(default_timeout_s=timeout_s)
    if name == "inline":
        return InlineExecutor()
    if name == "dask":
        try:
            from cxrbench.run.executors.dask import DaskExecutor  # optional extra
        except ImportError as err:
            raise ExecutorError(
                f"the dask executor needs Dask distributed ({err}); "
                "install it with: pip install 'cxrbench[dask]'"
            ) from err
        return DaskExecutor(timeout_s=timeout_s, **options)
    raise ValueError(f"unknown executor {name!r}; use one of {EXECUTORS}")
