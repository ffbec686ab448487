"""The Python API, for notebooks and scripts: ``cxrbench.benchmark(...) -> Benchmark``.

It sits above the run layer and below the CLI: ``cxrbench run`` parses its options and calls
:func:`benchmark`, so the command line and Python give the same files and numbers. The package
root hands out ``cxrbench.benchmark`` and ``cxrbench.Benchmark`` lazily (on first use), so
``import cxrbench`` stays light.
"""

from cxrbench.api.benchmark import MlflowExportWarning, benchmark
from cxrbench.api.result import Benchmark

__all__ = ["Benchmark", "MlflowExportWarning", "benchmark"]
