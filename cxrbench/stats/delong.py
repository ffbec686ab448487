"""DeLong's test for correlated ROC AUCs, with the fast algorithm of Sun & Xu (2014).

DeLong, DeLong & Clarke-Pearson (1988) write the AUC as the mean of *structural components*:
for each positive image, the share of negatives it outranks (ties count half); for each
negative, the share of positives that outrank it. Their covariances over the positives and over
the negatives give the covariance matrix of several models' AUCs on the same images.
Sun & Xu (2014, IEEE Signal Processing Letters 21(11)) obtain the components from three
mid-rank computations instead of the O(m n) pairwise comparisons: O(k (m + n) log(m + n)).

The test treats images as independent; the patient-level bootstrap intervals are the check
that accounts for patients with several images.

The mean AUC over a model's seeds has as components the means of its seeds' components (the
AUC is linear in them), so :func:`delong_test` on seed-averaged components tests seed means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata


@dataclass(frozen=True)
class DeLongComponents:
    """AUCs and structural components of k models scored on the same images."""

    auc: np.ndarray  # (k,)
    positive: np.ndarray  # (k, m): per positive image, share of negatives ranked below it
    negative: np.ndarray  # (k, n): per negative image, share of positives ranked above it

    def mean(self) -> DeLongComponents:
        """Components of the models' mean AUC (e.g. over seeds), as one model."""
        return DeLongComponents(
            self.auc.mean(keepdims=True),
            self.positive.mean(axis=0, keepdims=True),
            self.negative.mean(axis=0, keepdims=True),
        )

    def covariance(self) -> np.ndarray:
        """(k, k) DeLong covariance of the AUCs: S_pos / m + S_neg / n."""
        m, n = self.positive.shape[1], self.negative.shape[1]
        s_pos = np.atleast_2d(np.cov(self.positive)) if m > 1 else np.zeros((len(self.auc),) * 2)
        s_neg = np.atleast_2d(np.cov(self.negative)) if n > 1 else np.zeros((len(self.auc),) * 2)
        return s_pos / m + s_neg / n


def delong_components(y: np.ndarray, scores: np.ndarray) -> DeLongComponents:
    """Fast DeLong (Sun & Xu 2014): components from mid-ranks. ``scores`` is (k, n_images)."""
    truth = np.asarray(y).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(truth.sum()), int((~truth).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs both positive and negative images")
    pos, neg = scores[:, truth], scores[:, ~truth]
    rank_pos = rankdata(pos, axis=1)  # mid-ranks among positives only
    rank_neg = rankdata(neg, axis=1)
    rank_all = rankdata(np.hstack([pos, neg]), axis=1)  # mid-ranks among all images
    auc = rank_all[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    # A positive's rank among all minus its rank among positives = negatives below it (+ ties/2).
    positive = (rank_all[:, :m] - rank_pos) / n
    negative = 1.0 - (rank_all[:, m:] - rank_neg) / m
    return DeLongComponents(auc, positive, negative)


def delong_test(first: DeLongComponents, second: DeLongComponents) -> dict[str, float]:
    """Two-sided test that two (possibly seed-averaged) models have the same AUC."""
    if first.positive.shape[1:] != second.positive.shape[1:]:
        raise ValueError("DeLong's test compares models scored on the same images")
    both = DeLongComponents(
        np.r_[first.auc[:1], second.auc[:1]],
        np.vstack([first.positive[:1], second.positive[:1]]),
        np.vstack([first.negative[:1], second.negative[:1]]),
    )
    cov = both.covariance()
    difference = float(both.auc[0] - both.auc[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if variance <= 1e-15:
        # Degenerate (identical rankings, or both constant): no sampling spread to test with.
        z = 0.0 if abs(difference) < 1e-12 else float("inf") * np.sign(difference)
    else:
        z = difference / np.sqrt(variance)
    return {
        "auc_first": float(both.auc[0]),
        "auc_second": float(both.auc[1]),
        "difference": difference,
        "se_difference": float(np.sqrt(max(variance, 0.0))),
        "z": float(z),
        "p": float(2 * norm.sf(abs(z))),
    }


def auc_standard_error(components: DeLongComponents) -> np.ndarray:
    """DeLong standard error of each model's AUC."""
    return np.sqrt(np.clip(np.diag(components.covariance()), 0.0, None))
