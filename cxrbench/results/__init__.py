"""The results layer: the results file (schema, read, validate, write), the leaderboard,
merge, and the regression check of one run against another.

Public: ``read_results(path)``, ``write_results(path, results)``, ``load(path)`` (the
leaderboard as a pandas DataFrame), ``ResultsError``; the schema's types in
``cxrbench.results.schema``.
"""

from cxrbench.results.io import ResultsError, read_results, write_results
from cxrbench.results.leaderboard import leaderboard, load

__all__ = ["ResultsError", "leaderboard", "load", "read_results", "write_results"]
