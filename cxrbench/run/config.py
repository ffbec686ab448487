"""What a run is asked to do: typed configuration, parsed once (CLI, suite files, Python)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrbench.scoring.thresholds import DEFAULT_RULE


@dataclass
class ModelSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None


@dataclass
class RunConfig:
    data_path: Path
    models: list[ModelSpec]
    seeds: list[int]
    out_dir: Path
    threshold_rule: str = DEFAULT_RULE
    val_fraction: float = 0.15
    split_seed: int = 0
    cache_dir: Path | None = None
    executor: str = "process"
    executor_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    resume: bool = False
    overwrite: bool = False
    suite: str | None = None
    report: bool = True
