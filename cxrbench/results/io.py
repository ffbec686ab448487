"""The results file on disk: read (and validate), write atomically. Nothing is computed here.

The fields are documented as types in ``cxrbench.results.schema`` (and in the README);
``read_results`` checks a file against them (``cxrbench.results.validate``) and raises
``ResultsError`` listing every problem. The derived ``summary`` and ``statistics`` sections are
computed by ``cxrbench.stats.with_statistics`` before a write that should carry them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.files import atomic_write_text
from cxrbench.results.schema import SCHEMA_VERSION, ResultsError
from cxrbench.results.validate import validate_results

__all__ = ["SCHEMA_VERSION", "ResultsError", "dumps", "read_results", "validate_results",
           "write_results"]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: undefined metrics are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(_nan_to_none(results), indent=1, default=_json_default, allow_nan=False)


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    """Write ``results`` as they are, atomically (a reader never sees half a file)."""
    return atomic_write_text(Path(path), dumps(results))


def read_results(path: str | Path) -> dict[str, Any]:
    """Parse and validate a results file; every problem is named, never a bare KeyError."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(
            f"{path} is not valid JSON (truncated or hand-edited?): {err}. "
            "Restore it from a copy, or start the run again with --overwrite."
        ) from err
    validate_results(data, source=str(path))
    return data
