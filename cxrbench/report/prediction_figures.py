"""The report's figures about test predictions: ROC and PR curves, confusion matrices,
reliability diagram. Each function takes plain data and returns inline SVG markup.

``curves`` maps a model name to ``(labels, probabilities, threshold)`` of the record drawn for
it (its median-AUC seed; see ``cxrbench.stats``), in leaderboard order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from cxrbench.report.svg import Palette, figure_style, palette, plt, to_svg

Curves = dict[str, tuple[np.ndarray, np.ndarray, float]]


def _legend_outside(fig: Any, handles: list, labels: list[str], n: int) -> None:
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=9 if n <= 12 else 8, title="model (test AUC)")


def roc_pr_figure(curves: Curves, aucs: dict[str, float], colors: Palette | None = None) -> str:
    """ROC and precision-recall curves of every model, overlaid, with each operating point."""
    models = list(curves)
    colors, styles = colors or palette(models)
    with figure_style():
        fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10.5, 4.6))
        roc_ax.plot([0, 1], [0, 1], color="#aaaaaa", lw=0.8, ls=":")
        prevalence = None
        for model, (y, p, threshold) in curves.items():
            if len(np.unique(y)) < 2:
                continue
            prevalence = float(np.mean(y))
            fpr, tpr, _ = roc_curve(y, p)
            precision, recall, _ = precision_recall_curve(y, p)
            auc = aucs.get(model)
            label = f"{model} ({auc:.3f})" if auc is not None and math.isfinite(auc) else model
            style = {"color": colors[model], "ls": styles[model], "lw": 1.6}
            roc_ax.plot(fpr, tpr, label=label, drawstyle="steps-post", **style)
            pr_ax.plot(recall, precision, drawstyle="steps-post", **style)
            pred = p >= threshold
            sens = float(np.mean(pred[y == 1]))
            spec = float(np.mean(~pred[y == 0]))
            roc_ax.plot([1 - spec], [sens], "o", color=colors[model], ms=5, mec="white", mew=0.8)
            if pred.any():
                prec = float(np.mean(y[pred] == 1))
                pr_ax.plot([sens], [prec], "o", color=colors[model], ms=5, mec="white",
                           mew=0.8)
        if prevalence is not None:
            pr_ax.axhline(prevalence, color="#aaaaaa", lw=0.8, ls=":")
            pr_ax.annotate("prevalence", (0.01, prevalence), textcoords="offset points",
                           xytext=(0, -11), fontsize=8, color="#777777")
        roc_ax.set(xlabel="1 - specificity (false positive rate)",
                   ylabel="sensitivity (true positive rate)", title="ROC curve (test)",
                   xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")
        pr_ax.set(xlabel="recall (sensitivity)", ylabel="precision",
                  title="Precision-recall curve (test)", xlim=(-0.01, 1.01), ylim=(0, 1.01))
        handles, labels = roc_ax.get_legend_handles_labels()
        _legend_outside(fig, handles, labels, len(models))
        fig.text(0.01, -0.02, "dots: each model's decision threshold (chosen on validation)",
                 fontsize=8, color="#555555")
        fig.tight_layout()
        return to_svg(fig, "fig-curves")


def confusion_grid_figure(confusions: dict[str, dict[str, int]],
                          thresholds: dict[str, float]) -> str:
    """One small confusion matrix per model at its chosen threshold (test split)."""
    models = list(confusions)
    cols = min(len(models), 4)
    rows = math.ceil(len(models) / cols)
    with figure_style():
        fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 2.55 * rows), squeeze=False)
        for ax in axes.ravel()[len(models):]:
            ax.axis("off")
        for ax, model in zip(axes.ravel(), models, strict=False):
            c = confusions[model]
            matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]], dtype=float)
            totals = matrix.sum(axis=1, keepdims=True)
            share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
            # Vector cells (pcolormesh), not imshow: no embedded raster, sharp at any zoom.
            ax.pcolormesh(share, cmap="Blues", vmin=0, vmax=1, edgecolors="white", linewidth=1)
            ax.set_ylim(2, 0)
            ax.set_aspect("equal")
            for (i, j), count in np.ndenumerate(matrix):
                ax.text(j + 0.5, i + 0.5, f"{int(count)}\n{share[i, j]:.0%}", ha="center",
                        va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "#1b1f24")
            ax.set_xticks([0.5, 1.5], ["normal", "pneum."])
            ax.set_yticks([0.5, 1.5], ["normal", "pneum."])
            ax.set_xlabel("predicted", fontsize=8)
            ax.set_ylabel("true", fontsize=8)
            ax.tick_params(labelsize=8, length=0)
            ax.grid(False)
            ax.set_title(f"{_short(model)}\nthreshold {thresholds.get(model, float('nan')):.3g}",
                         fontsize=9)
        fig.tight_layout()
        return to_svg(fig, "fig-confusion")


def reliability_figure(bins: dict[str, list[dict[str, Any]]],
                       colors: Palette | None = None) -> str:
    """Observed pneumonia rate against mean predicted probability per bin, every model."""
    models = list(bins)
    colors, styles = colors or palette(models)
    with figure_style():
        fig, (ax, hist) = plt.subplots(2, 1, figsize=(7.5, 6.2), sharex=True,
                                       gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], color="#aaaaaa", lw=0.8, ls=":", label="perfect calibration")
        width = 0.1 / max(len(models), 1)
        for k, model in enumerate(models):
            filled = [b for b in bins[model] if b["count"]]
            ax.plot([b["mean_predicted"] for b in filled], [b["observed_rate"] for b in filled],
                    marker="o", ms=3.5, lw=1.4, color=colors[model], ls=styles[model],
                    label=model)
            left = np.array([b["low"] for b in bins[model]]) + k * width
            hist.bar(left, [b["count"] for b in bins[model]], width=width, align="edge",
                     color=colors[model])
        ax.set(ylabel="observed pneumonia rate", xlim=(0, 1), ylim=(-0.02, 1.02),
               title="Reliability diagram (test, 10 equal-width bins)")
        hist.set(xlabel="predicted probability of pneumonia", ylabel="images")
        hist.set_xticks(np.linspace(0, 1, 11))
        handles, labels = ax.get_legend_handles_labels()
        _legend_outside(fig, handles, labels, len(models))
        fig.legends[0].set_title(None)
        fig.tight_layout()
        return to_svg(fig, "fig-reliability")


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
