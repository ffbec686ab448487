"""What every executor is: something that runs jobs and yields their records as each finishes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from cxrbench.run.jobs import Job


class ExecutorError(ValueError):
    """The executor cannot start as configured (missing extra, unreachable scheduler, ...)."""


class Executor(Protocol):
    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]: ...
