"""Suites: small TOML files naming what ``cxrbench run`` runs (plugins, params, seeds, rule).

Built-in suites live in ``cxrbench/run/suites/NAME.toml`` (beside this module); a path to any
TOML file works too.

    description = "..."
    seeds = [0, 1, 2]
    threshold_rule = "youden"
    timeout_s = 1800            # optional, per job
    [[models]]
    name = "hog_svm"
    params = { cells = [16] }   # optional
    timeout_s = 600             # optional

A suite is validated when it is loaded, and every problem is named at once: unknown keys,
unknown model names, the threshold rule, the seeds (a non-empty list of unique non-negative
integers), timeouts (finite, positive seconds) and params (a table).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from cxrbench.plugins.registry import UnknownModelError, get_card
from cxrbench.run.config import (
    DEFAULT_SEEDS,
    ConfigError,
    ModelSpec,
    check_params,
    check_seeds,
    check_timeout,
)
from cxrbench.scoring.thresholds import ThresholdRule

SUITE_KEYS = {"description", "seeds", "threshold_rule", "timeout_s", "models"}
MODEL_KEYS = {"name", "params", "timeout_s"}


class SuiteError(ConfigError):
    """A suite file is missing or malformed; ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass
class Suite:
    name: str
    description: str
    models: list[ModelSpec]
    seeds: list[int]
    threshold_rule: ThresholdRule | None  # None: the run's default
    timeout_s: float | None


def builtin_suites() -> list[str]:
    return sorted(p.name[:-5] for p in files("cxrbench.run.suites").iterdir()
                  if p.name.endswith(".toml"))


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        text, name = path.read_text(), path.stem
    elif name_or_path in builtin_suites():
        text = files("cxrbench.run.suites").joinpath(f"{name_or_path}.toml").read_text()
        name = name_or_path
    else:
        raise SuiteError(
            f"unknown suite {name_or_path!r}: use one of {builtin_suites()} "
            "or a path to a .toml file"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"suite {name}: invalid TOML: {err}") from err
    return parse_suite(name, data)


class _Problems:
    """Collects what is wrong with a suite, so that one load names every problem."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, parse: Any, *args: Any, where: str = "") -> Any:
        """``parse(*args)``, or None with the error's message kept (prefixed by ``where``)."""
        try:
            return parse(*args)
        except (ValueError, UnknownModelError) as err:
            self.items.append(f"{where}: {err}" if where else str(err))
            return None


def _model(i: int, entry: Any, problems: _Problems) -> ModelSpec | None:
    where = f"models[{i}]"
    if not isinstance(entry, dict):
        problems.items.append(f"{where} must be a table ([[models]] with a name), got {entry!r}")
        return None
    before = len(problems.items)
    unknown = sorted(set(entry) - MODEL_KEYS)
    if unknown:
        problems.items.append(f"{where}: unknown key(s) {unknown}; allowed: {sorted(MODEL_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        problems.items.append(f"{where} needs a 'name': a registered model (see `cxrbench "
                              "models`)")
        return None
    where = f"{where} ({name})"
    problems.check(get_card, name, where=where)
    params = problems.check(check_params, entry.get("params", {}), f"{where}: params")
    timeout = problems.check(check_timeout, entry.get("timeout_s"), f"{where}: timeout_s")
    return ModelSpec(name, params, timeout) if len(problems.items) == before else None


def parse_suite(name: str, data: dict[str, Any]) -> Suite:
    """A validated Suite from a parsed TOML table; SuiteError lists every problem."""
    problems = _Problems()
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        problems.items.append(f"unknown key(s) {unknown}; allowed: {sorted(SUITE_KEYS)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.items.append(f"description must be a string, got {description!r}")
    entries = data.get("models", [])
    if not isinstance(entries, list) or not entries:
        problems.items.append("no [[models]] entries: name at least one model")
        entries = []
    models = [_model(i, entry, problems) for i, entry in enumerate(entries)]
    seeds = problems.check(check_seeds, data.get("seeds", list(DEFAULT_SEEDS)))
    rule_text = data.get("threshold_rule")
    rule = (problems.check(ThresholdRule.parse, rule_text, where="threshold_rule")
            if rule_text is not None else None)
    timeout = problems.check(check_timeout, data.get("timeout_s"))
    if len(problems.items) == 1:
        raise SuiteError(f"suite {name}: {problems.items[0]}", problems.items)
    if problems.items:
        listing = "\n".join(f"  - {item}" for item in problems.items)
        raise SuiteError(f"suite {name} has {len(problems.items)} problems:\n{listing}",
                         problems.items)
    return Suite(name, description, [m for m in models if m is not None], seeds, rule, timeout)
