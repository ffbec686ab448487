"""How many cores this process may use: one rule for every pool cxrbench starts.

The CPU affinity of the process, not the machine's core count: a Dask worker pinned to one
core, a container with a CPU set, or ``taskset`` all lower it, and every process pool and
thread count in cxrbench (image decoding, audit, feature extraction, XGBoost, SVM folds)
follows it.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; the core count where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
