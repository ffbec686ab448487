"""How many cores this process may use, and how its OpenMP threads wait: one rule for every
pool cxrbench starts.

The CPU affinity of the process, not the machine's core count: a Dask worker pinned to one
core, a container with a CPU set, or ``taskset`` all lower it, and every process pool and
thread count in cxrbench (image decoding, audit, feature extraction, XGBoost, SVM folds)
follows it.

OpenMP threads (XGBoost's, scikit-learn's) that wait at a barrier spin by default; when the
cores are shared with other work, the spinning threads keep the one doing the work off the CPU.
``prefer_passive_openmp`` makes them sleep instead (``OMP_WAIT_POLICY=PASSIVE``) unless the
user chose otherwise: the computed numbers are the same, only the waiting changes (measured in
``benchmarks/README.md``). OpenMP reads the variable once, when its runtime is loaded (the first
import of scikit-learn or XGBoost), so the command line sets it before anything else, and job
processes inherit it.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; the core count where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


OPENMP_WAIT_POLICY = "PASSIVE"  # the default; OMP_WAIT_POLICY=ACTIVE in the environment wins


def prefer_passive_openmp() -> str:
    """``OMP_WAIT_POLICY=PASSIVE`` for this process and its children, unless already set;
    returns the policy in force. Effective only before an OpenMP runtime is loaded."""
    return os.environ.setdefault("OMP_WAIT_POLICY", OPENMP_WAIT_POLICY)


def openmp_wait_policy() -> str | None:
    """The policy in this process's environment (None: the runtime's default, spinning)."""
    return os.environ.get("OMP_WAIT_POLICY")
