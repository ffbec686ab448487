"""cxrbench: a benchmark suite for pneumonia detection on chest X-rays.

``cxrbench.benchmark(data, models=[...], seeds=[...])`` runs a benchmark from Python and
returns a ``cxrbench.Benchmark`` (see ``cxrbench.api``); both are imported on first use.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Benchmark", "__version__", "benchmark"]

_API = ("Benchmark", "benchmark")


def __getattr__(name: str) -> Any:
    """``cxrbench.benchmark`` / ``cxrbench.Benchmark``, imported on first use (PEP 562): the
    lower layers import this package for ``__version__`` and must not pull the API in."""
    if name in _API:
        from cxrbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'cxrbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
