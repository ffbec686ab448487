"""The results layer: the results file (read, validate, write), merge, and the regression
check of one run against another.

Public: ``read_results(path)``, ``write_results(path, results)``, ``load(path)`` (the
leaderboard as a pandas DataFrame), ``ResultsError``.
"""

from cxrbench.results.io import ResultsError, load, read_results, write_results

__all__ = ["ResultsError", "load", "read_results", "write_results"]
