"""``cxrbench`` in a subprocess, as a user runs it, with the fault plugins registered: for tests
that kill a run, or run two at once. A plain module: pytest puts tests/ on ``sys.path``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent
# `cxrbench` with the fault plugins registered, for runs that a test kills.
# Ctrl-C is restored first: a test runner started in the background of a non-interactive shell
# (`cmd &`) ignores SIGINT, and its children would inherit that and never see the tests' SIGINT.
CLI_WITH_FAULTS = [sys.executable, "-c",
                   "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "import fault_plugins; from cxrbench.cli import main; "
                   "sys.exit(main(sys.argv[1:]))"]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}


def start_run(out: Path, data: Path, *extra: str) -> subprocess.Popen:
    """``cxrbench run --data DATA --out OUT EXTRA...`` started in the background."""
    return subprocess.Popen(
        [*CLI_WITH_FAULTS, "run", "--data", str(data), "--out", str(out), *extra],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_to_end(out: Path, data: Path, *extra: str, timeout_s: float = 240
               ) -> subprocess.CompletedProcess:
    """``cxrbench run ...`` in a subprocess, waited for."""
    return subprocess.run(
        [*CLI_WITH_FAULTS, "run", "--data", str(data), "--out", str(out), *extra],
        env=cli_env(), capture_output=True, text=True, timeout=timeout_s)


def wait_for_records(proc: subprocess.Popen, results: Path, n: int, timeout_s: float = 90) -> int:
    """Poll results.json until it holds ``n`` records; returns how many it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early ({proc.returncode}): {proc.communicate()[1]}")
        try:
            count = len(json.loads(results.read_text())["records"])
        except (FileNotFoundError, ValueError, KeyError):  # not written yet (never half-written)
            count = 0
        if count >= n:
            return count
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {n} record(s) in {results} after {timeout_s} s")
