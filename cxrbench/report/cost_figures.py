"""The report's figures about cost and training: cost-quality chart with its Pareto front,
training curves of deep models. Each function returns inline SVG markup (None or an empty list
when there is nothing to draw)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.text import Text

from cxrbench.report.palette import Palette, palette
from cxrbench.report.svg import figure_style, plt, to_svg


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


GAP_RATIO = 30  # a model this many times faster than the next is drawn at the left edge


AUC_GAP = 0.15  # a model this far below the next one's AUC is drawn at the bottom edge


def clipped_bottom(aucs: list[float]) -> float | None:
    """The bottom of the AUC axis when the weakest model (``majority`` at 0.5) sits far below
    the rest, which would squeeze every other model into a thin band at the top."""
    ys = sorted(aucs)
    for low, high in zip(ys, ys[1:], strict=False):
        if high - low > AUC_GAP and high <= ys[len(ys) // 2]:
            return high - 0.03
    return None


def clipped_left(times: list[float]) -> float | None:
    """The left edge of the time axis when the fastest models sit far apart (``majority`` at
    1e-4 s would leave most of a log axis empty), else None."""
    xs = sorted(times)
    for fast, slow in zip(xs, xs[1:], strict=False):
        if slow / fast > GAP_RATIO and slow <= xs[len(xs) // 2]:
            return slow / 4
    return None


# Where a label may go around its point (offset in points, horizontal alignment), in order.
LABEL_SPOTS = tuple((dx, dy, "left" if dx > 0 else "right")
                    for dy in (4, -12, 14, -22, 24, -32, 34, -42) for dx in (7, -7))


def _place_labels(ax: Any, fig: Any, labels: list[Any], markers: list[Any]) -> None:
    """Put each label at the first spot around its point that overlaps no marker, no label
    placed before it and stays inside the axes (greedy, highest points first)."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [m.get_window_extent(renderer).expanded(1.3, 1.3) for m in markers]
    for text in sorted(labels, key=lambda t: -t.xy[1]):
        for dx, dy, align in LABEL_SPOTS:
            text.set_position((dx, dy))
            text.set_horizontalalignment(align)
            box = Text.get_window_extent(text, renderer).expanded(1.04, 1.15)  # no leader
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in taken):
                break
        taken.append(Text.get_window_extent(text, renderer))


def cost_quality_figure(rows: list[dict[str, Any]], styles: Palette | None = None) -> str | None:
    """Test ROC AUC (95 % interval) against mean fit time, log scale; Pareto front marked.

    ``rows`` are leaderboard rows (``model``, ``fit_s``, ``roc_auc``, ``roc_auc_low``,
    ``roc_auc_high``).
    """
    usable = [r for r in rows if _finite(r.get("fit_s")) and r["fit_s"] > 0
              and _finite(r.get("roc_auc"))]
    if not usable:
        return None
    styles = styles or palette([r["model"] for r in rows])
    points = {r["model"]: (float(r["fit_s"]), float(r["roc_auc"])) for r in usable}
    front = pareto_front(points)
    left = clipped_left([x for x, _ in points.values()])
    bottom = clipped_bottom([y for _, y in points.values()])
    with figure_style():
        fig, ax = plt.subplots(figsize=(7.2, 4.6))
        labels, markers = [], []
        for r in usable:
            model, style = r["model"], styles[r["model"]]
            x, y = points[model]
            clipped = left is not None and x < left
            shown_x = left * 1.05 if clipped else x
            below = bottom is not None and y < bottom
            low, high = r.get("roc_auc_low"), r.get("roc_auc_high")
            if below:
                y = bottom + 0.004
            elif _finite(low) and _finite(high):
                ax.errorbar([shown_x], [y], yerr=[[max(y - low, 0)], [max(high - y, 0)]],
                            color=style.color, lw=1.0, capsize=2.5, zorder=2)
            on_front = model in front
            markers += ax.plot([shown_x], [y], marker=style.marker, ms=8, zorder=3,
                               ls="none", mfc=style.color if on_front else "white",
                               mec=style.color, mew=1.6)
            off = ([f"{x:.1g} s"] if clipped else []) + \
                ([f"AUC {points[model][1]:.3f}"] if below else [])
            name = f"{model} ({', '.join(off)}, off scale)" if off else model
            labels.append(ax.annotate(name, (shown_x, y), textcoords="offset points",
                                      xytext=(7, 4), fontsize=9, color="#333333",
                                      arrowprops={"arrowstyle": "-", "lw": 0.6,
                                                  "color": "#999999", "shrinkA": 1,
                                                  "shrinkB": 5}))
        xs = [max(points[m][0], left * 1.05) if left else points[m][0] for m in front]
        ys = [max(points[m][1], bottom + 0.004) if bottom else points[m][1] for m in front]
        ax.step(xs, ys, where="post", color="#444444",
                lw=1.0, ls="--", zorder=1, label="Pareto front (filled markers)")
        ax.set_xscale("log")
        ax.margins(x=0.12, y=0.08)
        if left is not None:
            ax.set_xlim(left=left)
        if bottom is not None:
            ax.set_ylim(bottom=bottom)
        ax.set(xlabel="mean fit time per seed (s, log scale)", ylabel="test ROC AUC",
               title="Test ROC AUC (95 % interval) against training time")
        ax.legend(loc="lower right", frameon=True, framealpha=0.9, edgecolor="none")
        fig.tight_layout()
        _place_labels(ax, fig, labels, markers)
        return to_svg(fig, "fig-cost", f"Test ROC AUC against mean fit time of {len(usable)} "
                      "models, log scale, with the Pareto front; data table below")


def training_figures(histories: dict[str, list[dict[str, Any]]],
                     best_epochs: dict[str, int | None],
                     styles: Palette | None = None) -> list[str]:
    """Training loss and validation ROC AUC per epoch of every model with a history: one
    panel each (the HTML legend beside them hides and shows a model in both)."""
    histories = {m: h for m, h in histories.items() if h}
    panels = [key for key in ("loss", "val_auc")
              if any(_finite(e.get(key)) for h in histories.values() for e in h)]
    styles = styles or palette(list(histories))
    titles = {"loss": "training loss (dotted: validation loss)",
              "val_auc": "validation ROC AUC (star: kept epoch)"}
    out = []
    for key in panels:
        with figure_style():
            fig, ax = plt.subplots(figsize=(4.6, 3.6))
            for model, history in histories.items():
                epochs = [e.get("epoch", i + 1) for i, e in enumerate(history)]
                values = [e.get(key) if _finite(e.get(key)) else np.nan for e in history]
                style = styles[model]
                ax.plot(epochs, values, color=style.color, ls=style.line, lw=1.5,
                        marker=style.marker, ms=4, gid=f"s{style.index}-{key}")
                if key == "loss" and any(_finite(e.get("val_loss")) for e in history):
                    ax.plot(epochs, [e.get("val_loss", np.nan) for e in history],
                            color=style.color, ls=":", lw=1.2, gid=f"s{style.index}-val-loss")
                best = best_epochs.get(model)
                if key == "val_auc" and best in epochs:
                    ax.plot([best], [values[epochs.index(best)]], "*", ms=11,
                            color=style.color, mec="black", mew=0.5,
                            gid=f"s{style.index}-best")
            ax.set(xlabel="epoch", title=titles[key])
            ax.title.set_fontsize(10)
            fig.tight_layout()
            out.append(to_svg(fig, f"fig-training-{key.replace('_', '-')}",
                              f"{titles[key]} per epoch of {len(histories)} models; "
                              "per-record histories under Records"))
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
