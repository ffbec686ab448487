"""McNemar's test for paired accuracies, and Holm's correction for multiple comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest, chi2

# Below this many discordant pairs the chi-square approximation is poor: use the exact test.
EXACT_BELOW = 25


def mcnemar(correct_first: np.ndarray, correct_second: np.ndarray) -> dict[str, object]:
    """Two-sided McNemar test on per-image correctness of two classifiers (same images).

    ``b``: first right, second wrong; ``c``: first wrong, second right. Exact binomial test
    when ``b + c < 25``, else chi-square with continuity correction.
    """
    first = np.asarray(correct_first, dtype=bool)
    second = np.asarray(correct_second, dtype=bool)
    if first.shape != second.shape:
        raise ValueError("McNemar's test compares classifiers on the same images")
    b = int(np.sum(first & ~second))
    c = int(np.sum(~first & second))
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "method": "no discordant pairs", "statistic": None, "p": 1.0}
    if n < EXACT_BELOW:
        p = binomtest(min(b, c), n, 0.5).pvalue
        return {"b": b, "c": c, "method": "exact binomial", "statistic": None, "p": float(p)}
    statistic = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "method": "chi-square, continuity-corrected",
            "statistic": float(statistic), "p": float(chi2.sf(statistic, 1))}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone); None/NaN entries stay None."""
    values = [None if v is None or not np.isfinite(v) else float(v) for v in p_values]
    index = [i for i, v in enumerate(values) if v is not None]
    order = sorted(index, key=lambda i: values[i])  # type: ignore[arg-type,return-value]
    adjusted: list[float | None] = [None] * len(values)
    running = 0.0
    m = len(order)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[i]))  # type: ignore[operator]
        adjusted[i] = running
    return adjusted
