"""The report's figures about test predictions: ROC curve (whole and the top-left corner),
precision-recall curve, confusion matrices. Each function takes plain data and returns inline
SVG markup whose curves carry ``data-series`` (the model's index in the leaderboard), so the
HTML legend can hide and show a model in every panel.

``curves`` maps a model name to ``(labels, probabilities, threshold)`` of the record drawn for
it (its median-AUC seed; see ``cxrbench.stats``), in leaderboard order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrbench.report.curves import operating_point, pr_points, roc_points
from cxrbench.report.palette import Palette, palette
from cxrbench.report.svg import figure_style, plt, to_svg

Curves = dict[str, tuple[np.ndarray, np.ndarray, float]]
ZOOM = (0.0, 0.4, 0.6, 1.0)  # false positive rate 0-0.4, sensitivity 0.6-1: the top-left corner
PANEL_INCHES = (4.3, 4.2)
MARK_EVERY = 0.12  # a marker every 12 % of the axes diagonal: shapes tell curves apart


def _line(ax: Any, x: np.ndarray, y: np.ndarray, style: Any, name: str) -> None:
    ax.plot(x, y, color=style.color, ls=style.line, lw=1.6, marker=style.marker, ms=5,
            markevery=MARK_EVERY, mfc="white", mew=1.1, gid=f"s{style.index}-{name}")


def _point(ax: Any, x: float, y: float, style: Any) -> None:
    ax.plot([x], [y], marker=style.marker, ms=9, color=style.color, mec="white", mew=1.0,
            ls="none", zorder=5, gid=f"s{style.index}-point")


def roc_figure(curves: Curves, styles: Palette | None = None, *, zoom: bool = False) -> str:
    """ROC curves of every model with each one's operating point; ``zoom``: the top-left
    corner only."""
    styles = styles or palette(list(curves))
    x0, x1, y0, y1 = ZOOM if zoom else (-0.01, 1.01, -0.01, 1.01)
    with figure_style():
        fig, ax = plt.subplots(figsize=PANEL_INCHES)
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
        for model, (y, p, threshold) in curves.items():
            if len(np.unique(y)) < 2:
                continue
            fpr, tpr = roc_points(y, p)
            _line(ax, fpr, tpr, styles[model], "roc")
            op_fpr, op_sens, _ = operating_point(y, p, threshold)
            _point(ax, op_fpr, op_sens, styles[model])
        if not zoom:
            x_a, x_b, y_a, y_b = ZOOM
            ax.add_patch(plt.Rectangle((x_a, y_a), x_b - x_a, y_b - y_a, fill=False,
                                       ec="#666666", lw=0.8, ls="--"))
        title = "ROC, top-left corner (test)" if zoom else "ROC curve (test)"
        ax.set(xlabel="1 − specificity (false positive rate)",
               ylabel="sensitivity (true positive rate)", title=title,
               xlim=(x0, x1), ylim=(y0, y1), aspect="equal")
        fig.tight_layout()
        label = (f"ROC curves of {len(curves)} models on the test split"
                 + (f", zoomed on false positive rate {ZOOM[0]}–{ZOOM[1]} and sensitivity "
                    f"{ZOOM[2]}–{ZOOM[3]}" if zoom else "")
                 + "; data table below")
        return to_svg(fig, "fig-roc-zoom" if zoom else "fig-roc", label)


def pr_figure(curves: Curves, styles: Palette | None = None) -> str:
    """Precision-recall curves with each model's operating point and the prevalence line."""
    styles = styles or palette(list(curves))
    with figure_style():
        fig, ax = plt.subplots(figsize=PANEL_INCHES)
        prevalence = None
        for model, (y, p, threshold) in curves.items():
            if len(np.unique(y)) < 2:
                continue
            prevalence = float(np.mean(y))
            recall, precision = pr_points(y, p)
            _line(ax, recall, precision, styles[model], "pr")
            _, op_sens, op_precision = operating_point(y, p, threshold)
            if op_precision is not None:
                _point(ax, op_sens, op_precision, styles[model])
        if prevalence is not None:
            ax.axhline(prevalence, color="#999999", lw=0.8, ls=":")
            ax.annotate("prevalence", (0.01, prevalence), textcoords="offset points",
                        xytext=(0, -12), fontsize=9, color="#555555")
        ax.set(xlabel="recall (sensitivity)", ylabel="precision",
               title="Precision-recall curve (test)", xlim=(-0.01, 1.01),
               ylim=(min(0.5, (prevalence or 0.5) - 0.05), 1.01), aspect="auto")
        fig.tight_layout()
        return to_svg(fig, "fig-pr", f"Precision-recall curves of {len(curves)} models on "
                      "the test split; data table below")


def confusion_figure(model: str, counts: dict[str, int], threshold: float | None,
                     index: int) -> str:
    """One model's confusion matrix at its chosen threshold (test split)."""
    matrix = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]], dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    with figure_style():
        fig, ax = plt.subplots(figsize=(2.9, 2.7))
        # Vector cells (pcolormesh), not imshow: no embedded raster, sharp at any zoom.
        ax.pcolormesh(share, cmap="Blues", vmin=0, vmax=1, edgecolors="white", linewidth=1)
        ax.set_ylim(2, 0)
        ax.set_aspect("equal")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j + 0.5, i + 0.5, f"{int(count)}\n{share[i, j]:.0%}", ha="center",
                    va="center", fontsize=10,
                    color="white" if share[i, j] > 0.6 else "#1b1f24")
        ax.set_xticks([0.5, 1.5], ["normal", "pneum."])
        ax.set_yticks([0.5, 1.5], ["normal", "pneum."])
        ax.set_xlabel("predicted", fontsize=9)
        ax.set_ylabel("true", fontsize=9)
        ax.tick_params(labelsize=9, length=0)
        ax.grid(False)
        shown = "–" if threshold is None or not math.isfinite(threshold) else f"{threshold:.3g}"
        ax.set_title(f"{_short(model)}\nthreshold {shown}", fontsize=10)
        fig.tight_layout()
        return to_svg(fig, f"fig-confusion-{index}",
                      f"Confusion matrix of {model} on the test split at threshold {shown}: "
                      f"{counts['tn']} true negatives, {counts['fp']} false positives, "
                      f"{counts['fn']} false negatives, {counts['tp']} true positives")


def _short(name: str, width: int = 26) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
