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
    save_models = true          # optional: keep each fitted model (OUT/models/<job_id>/)
    [[external]]                # optional, repeatable: a labelled set every model is scored on
    name = "hospital_b"
    path = "../data/hospital_b" # relative to the suite file's folder

A suite is validated when it is loaded, and every problem is named at once: unknown keys,
unknown model names, the threshold rule, the seeds (a non-empty list of unique non-negative
integers), timeouts (finite, positive seconds) and params (a table).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from cxrbench.plugins.registry import UnknownModelError, get_card
from cxrbench.run.config import (
    DEFAULT_SEEDS,
    ConfigError,
    ExternalSpec,
    ModelSpec,
    check_params,
    check_seeds,
    check_timeout,
)
from cxrbench.scoring.thresholds import ThresholdRule

SUITE_KEYS = {"description", "seeds", "threshold_rule", "timeout_s", "models", "save_models",
              "external"}
MODEL_KEYS = {"name", "params", "timeout_s"}
EXTERNAL_KEYS = {"name", "path"}


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
    save_models: bool = False
    external: list[ExternalSpec] = field(default_factory=list)


def builtin_suites() -> list[str]:
    return sorted(p.name[:-5] for p in files("cxrbench.run.suites").iterdir()
                  if p.name.endswith(".toml"))


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    base = None
    if path.suffix == ".toml" and path.is_file():
        text, name, base = path.read_text(), path.stem, path.absolute().parent
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
    return parse_suite(name, data, base=base)


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


def _external(i: int, entry: Any, problems: _Problems, base: Path | None) -> ExternalSpec | None:
    where = f"external[{i}]"
    if not isinstance(entry, dict):
        problems.items.append(f"{where} must be a table ([[external]] with name and path), "
                              f"got {entry!r}")
        return None
    unknown = sorted(set(entry) - EXTERNAL_KEYS)
    if unknown:
        problems.items.append(f"{where}: unknown key(s) {unknown}; allowed: "
                              f"{sorted(EXTERNAL_KEYS)}")
        return None
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        problems.items.append(f"{where} needs a 'path': a data folder or CSV manifest")
        return None
    full = Path(path).expanduser()
    if base is not None and not full.is_absolute():
        full = base / full
    return problems.check(ExternalSpec, entry.get("name"), full, where=where)


def parse_suite(name: str, data: dict[str, Any], base: Path | None = None) -> Suite:
    """A validated Suite from a parsed TOML table; SuiteError lists every problem.

    ``base`` is the suite file's folder: relative external paths are read from there.
    """
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
    save_models = data.get("save_models", False)
    if not isinstance(save_models, bool):
        problems.items.append(f"save_models must be true or false, got {save_models!r}")
    tables = data.get("external", [])
    if not isinstance(tables, list):
        problems.items.append("external must be [[external]] tables with name and path")
        tables = []
    external = [_external(i, entry, problems, base) for i, entry in enumerate(tables)]
    names = [e.name for e in external if e is not None]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.items.append(f"external: name(s) {repeated} given more than once")
    if len(problems.items) == 1:
        raise SuiteError(f"suite {name}: {problems.items[0]}", problems.items)
    if problems.items:
        listing = "\n".join(f"  - {item}" for item in problems.items)
        raise SuiteError(f"suite {name} has {len(problems.items)} problems:\n{listing}",
                         problems.items)
    return Suite(name, description, [m for m in models if m is not None], seeds, rule, timeout,
                 save_models=bool(save_models), external=[e for e in external if e is not None])
