"""Helpers for side-by-side (A/B) benchmarks on a shared machine.

Every contender runs in a fresh Python process (the same interpreter, environment and nice
level: "the same process set-up"), imports what it needs before its clock starts, and prints
one JSON line with its wall and CPU seconds. Rounds are interleaved (A B C, B C A, C A B, ...)
so that a change in the machine's load hits every contender alike, and each figure is the
median over rounds. ``machine_note`` is recorded with every table: CPU model, the
bfloat16/AMX flags, the load average before and after, the date.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def cpu_seconds() -> float:
    """CPU time of this process (all threads), its reaped child processes and the ones still
    alive (joblib's loky workers linger after a job, unreaped)."""
    import psutil

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # exited meanwhile: counted once reaped
            total += sum(child.cpu_times()[:4])  # its own and its reaped children's
    return total


def machine_note() -> dict[str, Any]:
    """What a reader needs to weigh a figure: CPU, its bf16/AMX flags, load, date."""
    from cxrbench.plugins.precision import cpu_flags
    from cxrbench.provenance import cpu_model, utc_now

    flags = cpu_flags()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "bf16_flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx")),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": utc_now(),
        "python": platform.python_version(),
    }


def run_probe(script: str, args: Sequence[str], *, env: dict[str, str] | None = None,
              timeout: float = 3600) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` in a fresh interpreter; its last stdout line is JSON."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def interleave(contenders: dict[str, Callable[[], dict[str, Any]]], rounds: int
               ) -> dict[str, list[dict[str, Any]]]:
    """Run every contender ``rounds`` times, rotating the order each round."""
    names = list(contenders)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            result = contenders[name]()
            result["load_1min"] = round(os.getloadavg()[0], 2)
            out[name].append(result)
            print(f"round {r + 1}/{rounds} {name}: " + json.dumps(result), file=sys.stderr,
                  flush=True)
    return out


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and its CPU seconds (this process and reaped children)."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0, cpu_seconds() - c0
