"""Suites: small TOML files naming what ``cxrbench run`` runs (plugins, params, seeds, rule).

Built-in suites live in ``cxrbench/run/suites/NAME.toml`` (beside this module); a path to any
TOML file works too.

    description = "..."
    seeds = [0, 1, 2]
    threshold_rule = "youden"
    timeout_s = 1800            # optional, per job
    [[models]]
    name = "hog_svm"
    params = { cell_size = 16 } # optional
    timeout_s = 600             # optional
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from cxrbench.run.config import ModelSpec

SUITE_KEYS = {"description", "seeds", "threshold_rule", "timeout_s", "models"}
MODEL_KEYS = {"name", "params", "timeout_s"}


class SuiteError(ValueError):
    """A suite file is missing or malformed."""


@dataclass
class Suite:
    name: str
    description: str
    models: list[ModelSpec]
    seeds: list[int]
    threshold_rule: str | None
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
    return _parse(name, data)


def _parse(name: str, data: dict[str, Any]) -> Suite:
    unknown = set(data) - SUITE_KEYS
    if unknown:
        raise SuiteError(f"suite {name}: unknown key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(SUITE_KEYS)}")
    models = []
    for i, entry in enumerate(data.get("models", [])):
        bad = set(entry) - MODEL_KEYS
        if bad or "name" not in entry:
            raise SuiteError(f"suite {name}: models[{i}] needs 'name' and allows only "
                             f"{sorted(MODEL_KEYS)} (got {sorted(entry)})")
        models.append(ModelSpec(entry["name"], dict(entry.get("params", {})),
                                entry.get("timeout_s")))
    if not models:
        raise SuiteError(f"suite {name}: no [[models]] entries")
    seeds = data.get("seeds", [0])
    if not (isinstance(seeds, list) and all(isinstance(s, int) for s in seeds) and seeds):
        raise SuiteError(f"suite {name}: 'seeds' must be a non-empty list of integers")
    return Suite(name, data.get("description", ""), models, seeds,
                 data.get("threshold_rule"), data.get("timeout_s"))
