"""Reliability diagrams as small multiples: one panel per model, never ten lines on one axis.

Each bin's observed pneumonia rate is drawn with its 95 % Wilson interval (a bin of 3 images
can only say so much) and a marker whose area grows with the number of images in the bin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import binomtest

from cxrbench.report.palette import Style
from cxrbench.report.svg import figure_style, plt, to_svg


def wilson_interval(rate: float, count: int) -> tuple[float, float]:
    """95 % Wilson score interval of a bin's observed rate."""
    successes = int(round(rate * count))
    ci = binomtest(successes, count).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def reliability_rows(bins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The filled bins with their Wilson intervals (the figure's data table)."""
    rows = []
    for b in bins:
        if b.get("count"):
            low, high = wilson_interval(b["observed_rate"], b["count"])
            rows.append({**b, "ci_low": low, "ci_high": high})
    return rows


def reliability_figure(model: str, bins: list[dict[str, Any]], style: Style,
                       ece: float | None) -> str:
    rows = reliability_rows(bins)
    with figure_style():
        fig, ax = plt.subplots(figsize=(3.1, 3.1))
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
        x = np.array([r["mean_predicted"] for r in rows])
        y = np.array([r["observed_rate"] for r in rows])
        counts = np.array([r["count"] for r in rows])
        err = np.array([[yi - r["ci_low"] for yi, r in zip(y, rows, strict=True)],
                        [r["ci_high"] - yi for yi, r in zip(y, rows, strict=True)]])
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="none", ecolor=style.color,
                    elinewidth=1.0, capsize=2, alpha=0.8)
        ax.plot(x, y, color=style.color, lw=0.8, ls=style.line, alpha=0.6)
        ax.scatter(x, y, s=12 + 140 * np.sqrt(counts / max(counts.max(), 1)),
                   marker=style.marker, color=style.color, edgecolors="white", linewidths=0.6,
                   zorder=3)
        shown = "–" if ece is None or not math.isfinite(ece) else f"{ece:.3f}"
        ax.set(xlim=(0, 1), ylim=(-0.03, 1.03), xlabel="mean predicted probability",
               ylabel="observed pneumonia rate", title=f"{_short(model)}\nECE {shown}")
        ax.title.set_fontsize(10)
        fig.tight_layout()
        return to_svg(fig, f"fig-reliability-{style.index}",
                      f"Reliability diagram of {model} on the test split, {len(rows)} filled "
                      f"bins, expected calibration error {shown}; data table below")


def _short(name: str, width: int = 26) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
