"""Where a number came from: code, packages, machine, backend. Failures are recorded, not raised."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cxrbench
from cxrbench.cores import openmp_wait_policy

# CPU-only builds are tracked under their own names: the same version of another build can
# give other numbers (xgboost-cpu's column sampling draws other columns for the same seed).
TRACKED_PACKAGES = (
    "cxrbench", "numpy", "pandas", "scikit-learn", "scikit-image", "xgboost", "xgboost-cpu",
    "keras", "tensorflow", "tensorflow-cpu", "jax", "torch", "pillow", "matplotlib", "jinja2",
    "dask", "distributed", "skops",
)


def utc_now() -> str:
    """The current UTC time to the second, ISO 8601: every timestamp cxrbench writes."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def git_info() -> dict[str, Any]:
    """Commit and dirty flag of the source tree cxrbench runs from, or the reason there is none."""
    source = Path(cxrbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip()), "error": None}
    except (OSError, subprocess.SubprocessError) as err:
        return {"commit": None, "dirty": None, "error": f"{type(err).__name__}: {err}"}


def keras_backend_name() -> str:
    """The Keras backend jobs will use, read without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def gpu_names() -> list[str]:
    """GPUs visible through nvidia-smi (no framework import); empty on a CPU-only machine."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_provenance() -> dict[str, Any]:
    gpus = gpu_names()
    return {
        "cxrbench_version": cxrbench.__version__,
        "packages": package_versions(),
        "git": git_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "backend": keras_backend_name(),
        "device": f"gpu: {', '.join(gpus)}" if gpus else "cpu",
        "openmp_wait_policy": openmp_wait_policy(),
        "date": utc_now(),
    }
