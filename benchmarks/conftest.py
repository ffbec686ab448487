"""Shared fixtures of the speed benchmarks (pytest-benchmark); see benchmarks/README.md.

Real data comes only from environment variables, never from a hard-coded path:
``CXRBENCH_DATA`` (the Kaggle-layout data set) and ``CXRBENCH_ORIGINALS`` (original-size
JPEGs). A benchmark that needs one skips with the reason when it is unset. Every benchmark
session gets its own cache folder, so "cold" means cold and the user's cache is untouched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

DATA_ENV, ORIGINALS_ENV = "CXRBENCH_DATA", "CXRBENCH_ORIGINALS"


def _env_path(name: str, what: str) -> Path:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} not set: this benchmark needs {what} "
                    f"(e.g. {name}=/path/to/chest_xray pytest benchmarks/)")
    path = Path(value).expanduser()
    if not path.exists():
        pytest.skip(f"{name}={value} does not exist")
    return path


@pytest.fixture(scope="session")
def bench_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh cxrbench cache for the whole session, exported as CXRBENCH_CACHE_DIR."""
    cache = tmp_path_factory.mktemp("cxrbench-cache")
    previous = os.environ.get("CXRBENCH_CACHE_DIR")
    os.environ["CXRBENCH_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("CXRBENCH_CACHE_DIR", None)
    else:
        os.environ["CXRBENCH_CACHE_DIR"] = previous


@pytest.fixture
def cold_cache_dir(tmp_path: Path) -> Path:
    """An empty cache folder per test, for cold (first-decode) measurements."""
    return tmp_path / "cold-cache"


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """Root of the real data set (CXRBENCH_DATA); skips when unset."""
    return _env_path(DATA_ENV, "the real chest X-ray data set")


@pytest.fixture(scope="session")
def originals_root() -> Path:
    """Original-resolution JPEGs (CXRBENCH_ORIGINALS); skips when unset."""
    return _env_path(ORIGINALS_ENV, "the original-resolution JPEG sample")


@pytest.fixture(scope="session")
def real_dataset(real_data_root: Path, bench_cache_dir: Path) -> Any:
    """The real data set's records table (cxrbench.data.Dataset), read once per session."""
    from cxrbench.data import load_dataset

    return load_dataset(real_data_root, cache_dir=bench_cache_dir)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Kaggle-layout set: benchmarks that must run anywhere use it."""
    from cxrbench.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "cxr",
                                  n_train=(40, 40), n_test=(16, 16), size=224, seed=0)


def stratified_sample(records: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` records, half of each label where possible, fixed for a seed (comparable runs)."""
    parts = [group.sample(min(len(group), n // 2 + (label == 1) * (n % 2)), random_state=seed)
             for label, group in records.groupby("label")]
    return pd.concat(parts).sort_values("record_id").reset_index(drop=True)


@pytest.fixture(scope="session")
def real_sample(real_dataset: Any) -> pd.DataFrame:
    """256 records of the real test split (both classes): a fixed, small benchmark workload."""
    test = real_dataset.records[real_dataset.records["source_split"] == "test"]
    return stratified_sample(test, 256)


@pytest.fixture(scope="session")
def real_images(real_sample: pd.DataFrame, bench_cache_dir: Path) -> dict[int, np.ndarray]:
    """Decoded uint8 images of ``real_sample`` at 64 and 128 px, 1 channel, keyed by size."""
    from cxrbench.data import ImageCache

    cache = ImageCache(bench_cache_dir)
    return {size: np.asarray(cache.load(real_sample, size, 1).images) for size in (64, 128)}


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record what cxrbench results record, so saved runs say where they were measured."""
    from cxrbench.provenance import collect_provenance

    provenance = collect_provenance()
    machine_info["cxrbench"] = {key: provenance.get(key) for key in (
        "cxrbench_version", "hostname", "cpu_model", "cpu_count", "backend", "device")}
    machine_info["cxrbench"]["data"] = os.environ.get(DATA_ENV)


LONG_ENV = "CXRBENCH_LONG_BENCHMARKS"


@pytest.fixture
def long_benchmark() -> None:
    """Benchmarks that take tens of minutes to hours (training A/B, scaling): opt-in."""
    if os.environ.get(LONG_ENV) != "1":
        pytest.skip(f"long benchmark (tens of minutes to hours on 2 cores): set {LONG_ENV}=1")
