"""Shared fixtures: a tiny synthetic Kaggle-layout data set, the real data when available, an
isolated cache folder per test, and the fault plugins. Helpers that are not fixtures live in
helpers.py (and report_helpers.py for the report's tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cxrbench.data import make_synthetic_dataset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data set in the Kaggle layout (read-only: copy it to modify it)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "cxr",
                                  n_train=(12, 12), n_test=(6, 6), size=64, seed=0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own cxrbench cache folder, never the user's ~/.cache."""
    cache = tmp_path / "cxrbench-cache"
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def real_data() -> Path:
    """The real data set root from CXRBENCH_DATA; skips the test when it is not set."""
    value = os.environ.get("CXRBENCH_DATA")
    if not value:
        pytest.skip("CXRBENCH_DATA not set: real-data test")
    return Path(value)


@pytest.fixture
def originals_data() -> Path:
    """The original-resolution sample from CXRBENCH_ORIGINALS; skips when it is not set."""
    value = os.environ.get("CXRBENCH_ORIGINALS")
    if not value:
        pytest.skip("CXRBENCH_ORIGINALS not set: original-resolution real-data test")
    return Path(value)


@pytest.fixture
def faults() -> Iterator[ModuleType]:
    """The plugins that fail on purpose (fault_plugins.py), registered for one test."""
    import fault_plugins

    with fault_plugins.registered():
        yield fault_plugins
