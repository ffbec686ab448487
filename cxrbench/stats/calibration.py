"""Reliability-diagram data: equal-width probability bins, observed rate against predicted.

The bins are the ones of the expected calibration error in :mod:`cxrbench.scoring.metrics`
(``ECE_BINS`` = 10 equal-width bins on [0, 1]); ECE is the count-weighted mean gap between a
bin's mean predicted probability and its observed pneumonia rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.scoring.metrics import ECE_BINS, calibration_bin


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """One entry per bin: edges, image count, mean predicted probability, observed rate."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    index = calibration_bin(p, bins)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    out = []
    for k in range(bins):
        n = int(counts[k])
        out.append({
            "low": k / bins,
            "high": (k + 1) / bins,
            "count": n,
            "mean_predicted": float(sum_p[k] / n) if n else None,
            "observed_rate": float(sum_y[k] / n) if n else None,
        })
    return out
