"""What a run is asked to do: typed configuration, parsed once (CLI, suite files, Python).

Every default of a run has one definition: here, or (the split's and the threshold rule's) in
the module that uses it, imported here. The CLI's ``--help`` shows these same constants.
Values are checked when a ``RunConfig`` or a ``ModelSpec`` is made, before any data is read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrbench.plugins.sources import PluginImport
from cxrbench.scoring.thresholds import DEFAULT_THRESHOLD_RULE, ThresholdRule
from cxrbench.splits import DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION

__all__ = [
    "DEFAULT_EXECUTOR", "DEFAULT_SEEDS", "DEFAULT_SPLIT_SEED", "DEFAULT_SUITE",
    "DEFAULT_THRESHOLD_RULE", "DEFAULT_VAL_FRACTION", "EXECUTORS", "MAX_SEED", "MAX_TIMEOUT_S",
    "ConfigError", "ExternalSpec", "ModelSpec", "RunConfig", "check_external_name",
    "check_params", "check_seeds", "check_timeout",
]

EXECUTORS = ("process", "inline", "dask")
DEFAULT_EXECUTOR = "process"
DEFAULT_SEEDS = (0,)
DEFAULT_SUITE = "quick"  # what `cxrbench run` runs when neither --suite nor --models is given
MAX_SEED = 2**32 - 1  # numpy, scikit-learn and Keras all take 32-bit seeds
MAX_TIMEOUT_S = 30 * 24 * 3600.0  # longer is a typo (1e300 overflows the executors' clocks)


class ConfigError(ValueError):
    """A run is configured with a value it cannot use; the message names it and the fix."""


def check_seeds(seeds: Any, where: str = "seeds") -> list[int]:
    """A non-empty list of unique integers in [0, MAX_SEED], or ConfigError."""
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise ConfigError(f"{where} must be a list of integers, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ConfigError(f"{where} is empty: give at least one seed, e.g. [0]")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)
           or not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"{where}: {bad!r} not integers in [0, {MAX_SEED}]")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"{where}: seed(s) {repeated} given more than once; "
                          "each seed is one job per model")
    return seeds


def check_timeout(value: Any, where: str = "timeout_s") -> float | None:
    """None (no limit) or a finite number of seconds in (0, MAX_TIMEOUT_S], or ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise ConfigError(f"{where} must be a number of seconds in (0, {MAX_TIMEOUT_S:.0f}] "
                          f"(30 days), got {value!r}")
    return float(value)


def check_params(params: Any, where: str = "params") -> dict[str, Any]:
    """A table of hyperparameters (string keys), or ConfigError."""
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ConfigError(f"{where} must be a table of name = value, got {params!r}")
    return dict(params)


EXTERNAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_SET_NAMES = ("train", "val", "test")  # the run's own splits


def check_external_name(name: Any, where: str = "external name") -> str:
    """A name for an external set: letters, digits, ``_ . -`` (at most 64), not a split name."""
    if not isinstance(name, str) or not EXTERNAL_NAME.match(name):
        raise ConfigError(f"{where} {name!r} must be 1-64 letters, digits, '_', '.' or '-', "
                          "starting with a letter or digit (e.g. 'hospital_b')")
    if name.lower() in RESERVED_SET_NAMES:
        raise ConfigError(f"{where} {name!r} is the name of one of the run's own splits; "
                          "choose another (e.g. 'external_test')")
    return name


@dataclass
class ExternalSpec:
    """A labelled external set scored by every saved model of a run: a name and a path."""

    name: str
    path: Path

    def __post_init__(self) -> None:
        self.name = check_external_name(self.name)
        if not isinstance(self.path, str | Path) or not str(self.path):
            raise ConfigError(f"external set {self.name}: needs a path to a data set")
        self.path = Path(self.path).expanduser()


@dataclass
class ModelSpec:
    """One plugin of a run: its registered name, hyperparameter overrides and timeout."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"a model name must be a non-empty string, got {self.name!r}")
        self.params = check_params(self.params, f"{self.name}: params")
        self.timeout_s = check_timeout(self.timeout_s, f"{self.name}: timeout_s")


@dataclass
class RunConfig:
    """A whole run. ``threshold_rule`` may be given as a string; it is parsed here, once.

    ``command`` is the command line that asked for the run (the CLI passes its argv), stored
    in the results as ``run.command``; None for runs started from Python.
    """

    data_path: Path
    models: list[ModelSpec]
    seeds: list[int]
    out_dir: Path
    threshold_rule: ThresholdRule = DEFAULT_THRESHOLD_RULE
    val_fraction: float = DEFAULT_VAL_FRACTION
    split_seed: int = DEFAULT_SPLIT_SEED
    cache_dir: Path | None = None
    executor: str = DEFAULT_EXECUTOR
    executor_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    resume: bool = False
    overwrite: bool = False
    suite: str | None = None
    report: bool = True
    command: list[str] | None = None
    # Data-layer options (see cxrbench.data.load_dataset and cxrbench.splits.make_split_plan).
    allow_outside_root: bool = False  # a manifest may list files outside its folder
    carve_test: bool = False  # splits without test rows: carve test from train by patient
    audit: bool = False  # audit the data (duplicates, leaks, odd images) into the results
    # Local plugin files and modules, already imported by the caller (load_plugins); job
    # processes and Dask workers import them again, checked against their sha256.
    plugins: list[PluginImport] = field(default_factory=list)
    save_models: bool = False  # write each fitted model to OUT/models/<job_id>/
    external: list[ExternalSpec] = field(default_factory=list)  # scored after the jobs

    def __post_init__(self) -> None:
        self.data_path = Path(self.data_path)
        self.out_dir = Path(self.out_dir)
        self.cache_dir = Path(self.cache_dir) if self.cache_dir is not None else None
        try:
            self.threshold_rule = ThresholdRule.parse(self.threshold_rule)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if not self.models:
            raise ConfigError("no models given: name at least one (cxrbench models lists them)")
        self.seeds = check_seeds(self.seeds)
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) \
                or not 0 <= self.split_seed <= MAX_SEED:
            raise ConfigError(f"split seed must be an integer in [0, {MAX_SEED}], "
                              f"got {self.split_seed!r}")
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, int | float) \
                or not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie strictly between 0 and 1, "
                              f"got {self.val_fraction!r}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.executor!r}; use one of {EXECUTORS}")
        self.timeout_s = check_timeout(self.timeout_s, "timeout")
        if self.command is not None:
            self.command = [str(part) for part in self.command]
        if self.executor_options and self.executor != "dask":
            raise ConfigError(f"executor options {sorted(self.executor_options)} are for the "
                              "Dask executor only; choose executor 'dask'")
        self.plugins = list(self.plugins)
        if not all(isinstance(item, PluginImport) for item in self.plugins):
            raise ConfigError("plugins must be what cxrbench.plugins.sources.load_plugins "
                              "returns (the files and modules it imported)")
        names = [spec.name for spec in self.external]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"external set name(s) {repeated} given more than once; give "
                              "each set its own name")
        if self.external:
            self.save_models = True  # external sets are scored by the saved models
