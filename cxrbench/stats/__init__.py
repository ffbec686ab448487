"""Uncertainty and comparisons: patient bootstrap, DeLong, McNemar, Holm, calibration.

``with_statistics(results)`` computes the derived sections of a results file from its records:
``summary`` (``summarize``: mean and spread over seeds), ``statistics``
(``compute_statistics``) and ``small_data`` (``small_data``: splits too small to trust).
The building blocks are public for notebooks and tests.
"""

from cxrbench.stats.bootstrap import patient_weights, percentile_interval
from cxrbench.stats.calibration import reliability_bins
from cxrbench.stats.compute import compute_statistics
from cxrbench.stats.delong import DeLongComponents, delong_components, delong_test
from cxrbench.stats.paired import holm, mcnemar
from cxrbench.stats.small_data import small_data
from cxrbench.stats.summary import summarize, with_statistics
from cxrbench.stats.weighted import resample_metrics

__all__ = [
    "DeLongComponents",
    "compute_statistics",
    "delong_components",
    "delong_test",
    "holm",
    "mcnemar",
    "patient_weights",
    "percentile_interval",
    "reliability_bins",
    "resample_metrics",
    "small_data",
    "summarize",
    "with_statistics",
]
