"""The report's figures about cost and training: cost-quality chart with its Pareto front,
training curves of deep models. Each function returns inline SVG markup (or None: no data)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrbench.report.svg import Palette, figure_style, palette, plt, to_svg


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Models no other model beats on both cost (lower) and quality (higher), cheapest first.

    ``points`` maps a model to ``(cost, quality)``; a model is dominated when another is at
    least as good on both and strictly better on one.
    """
    front = []
    for model, (cost, quality) in points.items():
        dominated = any(
            c <= cost and q >= quality and (c < cost or q > quality)
            for other, (c, q) in points.items() if other != model
        )
        if not dominated:
            front.append(model)
    return sorted(front, key=lambda m: points[m])


def cost_quality_figure(rows: list[dict[str, Any]], colors: Palette | None = None) -> str | None:
    """Test ROC AUC (95 % interval) against mean fit time, log scale; Pareto front marked.

    ``rows`` are leaderboard rows (``model``, ``fit_s``, ``roc_auc``, ``roc_auc_low``,
    ``roc_auc_high``).
    """
    usable = [r for r in rows if _finite(r.get("fit_s")) and r["fit_s"] > 0
              and _finite(r.get("roc_auc"))]
    if not usable:
        return None
    colors = (colors or palette([r["model"] for r in rows]))[0]
    points = {r["model"]: (float(r["fit_s"]), float(r["roc_auc"])) for r in usable}
    front = pareto_front(points)
    with figure_style():
        fig, ax = plt.subplots(figsize=(9, 4.8))
        for r in usable:
            x, y = points[r["model"]]
            low, high = r.get("roc_auc_low"), r.get("roc_auc_high")
            if _finite(low) and _finite(high):
                ax.errorbar([x], [y], yerr=[[max(y - low, 0)], [max(high - y, 0)]],
                            color=colors[r["model"]], lw=1.0, capsize=2.5, zorder=2)
            on_front = r["model"] in front
            ax.plot([x], [y], "o", ms=8 if on_front else 6, zorder=3,
                    mfc=colors[r["model"]] if on_front else "white",
                    mec=colors[r["model"]], mew=1.6)
            ax.annotate(r["model"], (x, y), textcoords="offset points", xytext=(6, 4),
                        fontsize=8, color="#333333")
        xs = [points[m][0] for m in front]
        ys = [points[m][1] for m in front]
        ax.step(xs, ys, where="post", color="#444444",
                lw=1.0, ls="--", zorder=1, label="Pareto front (filled dots)")
        ax.set_xscale("log")
        ax.set(xlabel="mean fit time per seed (s, log scale)", ylabel="test ROC AUC",
               title="Cost and quality: test ROC AUC (95 % interval) against training time")
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none")
        fig.tight_layout()
        return to_svg(fig, "fig-cost")


def training_curves_figure(histories: dict[str, list[dict[str, Any]]],
                           best_epochs: dict[str, int | None],
                           colors: Palette | None = None) -> str | None:
    """Training loss and validation AUC per epoch of every model with a history."""
    histories = {m: h for m, h in histories.items() if h}
    if not histories:
        return None
    panels = [key for key in ("loss", "val_auc")
              if any(_finite(e.get(key)) for h in histories.values() for e in h)]
    if not panels:
        return None
    colors, styles = colors or palette(list(histories))
    titles = {"loss": "training loss", "val_auc": "validation ROC AUC"}
    with figure_style():
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8),
                                 squeeze=False)
        for ax, key in zip(axes[0], panels, strict=True):
            for model, history in histories.items():
                epochs = [e.get("epoch", i + 1) for i, e in enumerate(history)]
                values = [e.get(key) if _finite(e.get(key)) else np.nan for e in history]
                ax.plot(epochs, values, color=colors[model], ls=styles[model], lw=1.5,
                        marker="o", ms=2.5, label=model)
                if key == "loss" and any(_finite(e.get("val_loss")) for e in history):
                    ax.plot(epochs, [e.get("val_loss", np.nan) for e in history],
                            color=colors[model], ls=":", lw=1.2)
                best = best_epochs.get(model)
                if key == "val_auc" and best in epochs:
                    ax.plot([best], [values[epochs.index(best)]], "*", ms=11,
                            color=colors[model], mec="black", mew=0.5)
            ax.set(xlabel="epoch", title=titles[key])
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False, fontsize=9)
        if "val_auc" in panels:
            fig.text(0.01, -0.03, "star: epoch whose weights were kept (best validation AUC)",
                     fontsize=8, color="#555555")
        fig.tight_layout()
        return to_svg(fig, "fig-training")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
