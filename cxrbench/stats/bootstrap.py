"""The patient-level (cluster) bootstrap: resample patients, not images.

Images of one patient are correlated (the same child, often the same day), so treating them as
independent draws would make intervals too narrow. Each resample draws as many patients as the
test split has, with replacement, and every image of a drawn patient enters with the number of
times its patient was drawn. A resample is therefore a row of integer *weights* over the test
images, and every metric of every record is a weighted metric of that row
(:mod:`cxrbench.stats.weighted`): one ``(n_resamples, n_images)`` matrix serves all records,
which also makes the resamples paired across models.

Intervals are percentile intervals (2.5th and 97.5th percentiles for 95 %), ignoring
resamples where a metric is undefined (e.g. a resample without a pneumonia image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95


def group_codes(groups: Sequence[str] | np.ndarray) -> tuple[np.ndarray, int]:
    """Integer code of each image's group (patient) and the number of groups."""
    _, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    codes = codes.reshape(-1)
    return codes, int(codes.max()) + 1 if len(codes) else 0


def patient_weights(
    groups: Sequence[str] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> np.ndarray:
    """``(n_resamples, n_images)`` weights: how often each image's patient was drawn.

    Deterministic for a seed; the same groups and seed give the same resamples on any machine.
    float32 halves the memory traffic of the vectorised metrics; the weights are small
    integers, and their sums stay exact in float32 (below 2**24).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    codes, n_groups = group_codes(groups)
    if n_groups == 0:
        return np.zeros((n_resamples, 0), dtype=np.float32)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    # One bincount over all rows at once: offset each row's draws by row * n_groups.
    offsets = (np.arange(n_resamples) * n_groups)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n_groups)
    return counts.reshape(n_resamples, n_groups)[:, codes].astype(np.float32)


def percentile_interval(
    samples: np.ndarray, level: float = DEFAULT_LEVEL
) -> tuple[float, float]:
    """Equal-tailed percentile interval of the finite bootstrap values (NaN if there are none)."""
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value that a paired difference is zero (share of sign flips x 2)."""
    finite = np.asarray(differences, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return float("nan")
    below = (np.sum(finite <= 0) + 1) / (len(finite) + 1)
    above = (np.sum(finite >= 0) + 1) / (len(finite) + 1)
    return float(min(1.0, 2 * min(below, above)))
