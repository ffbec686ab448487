"""Saliency in the report: overlays as small PNG ``data:`` URIs, and the summary figure of the
share of saliency outside the central thorax region, one row per model and method.

Overlays use matplotlib's ``inferno`` colormap (perceptually uniform, readable with colour
vision deficiencies and in gray print), blended over the gray image with an opacity that
grows with the saliency, so the film stays visible where the model does not look.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from cxrbench.report.palette import Style
from cxrbench.report.svg import figure_style, plt, to_svg

OVERLAY_PX = 112
COLORMAP = "inferno"
MAX_OPACITY = 0.7
METHOD_LABELS = {"occlusion": "occlusion", "gradcam": "Grad-CAM"}


def overlay_data_uri(gray: np.ndarray, saliency: np.ndarray,
                     box: tuple[float, float, float, float] | None = None,
                     size: int = OVERLAY_PX) -> str:
    """``saliency`` (``(h, w)`` in [0, 1]) over the ``(h, w)`` uint8 image, as a PNG data URI
    of ``size`` px; ``box`` (top, bottom, left, right fractions) is drawn as a dashed frame."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    base = np.repeat(np.asarray(gray, dtype=np.float64)[..., None] / 255.0, 3, axis=-1)
    heat = np.clip(np.asarray(saliency, dtype=np.float64), 0, 1)
    colour = colormaps[COLORMAP](heat)[..., :3]
    alpha = (MAX_OPACITY * heat)[..., None]
    rgb = np.round(255 * ((1 - alpha) * base + alpha * colour)).astype(np.uint8)
    image = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
    if box is not None:
        top, bottom, left, right = (round(v * (size - 1)) for v in box)
        draw = ImageDraw.Draw(image)
        for x0, y0, x1, y1 in ((left, top, right, top), (left, bottom, right, bottom),
                               (left, top, left, bottom), (right, top, right, bottom)):
            _dashed(draw, x0, y0, x1, y1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _dashed(draw: Any, x0: int, y0: int, x1: int, y1: int, dash: int = 4) -> None:
    length = max(abs(x1 - x0), abs(y1 - y0))
    for start in range(0, length, 2 * dash):
        end = min(start + dash, length)
        t0, t1 = start / max(length, 1), end / max(length, 1)
        draw.line([(x0 + t0 * (x1 - x0), y0 + t0 * (y1 - y0)),
                   (x0 + t1 * (x1 - x0), y0 + t1 * (y1 - y0))], fill=(86, 180, 233), width=1)


def share_figure(rows: list[dict[str, Any]], styles: dict[str, Style]) -> str | None:
    """One row per (model, method): each image's outside share (filled: random test images,
    hollow: the errors shown), the median of the random ones (bar), and the share a map spread
    evenly would give (gray tick). ``rows``: ``{"model", "method", "random": [...],
    "shown": [...], "area": float}``."""
    rows = [r for r in rows if r["random"] or r["shown"]]
    if not rows:
        return None
    with figure_style():
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.42 * len(rows)))
        rng = np.random.default_rng(0)  # jitter only
        for y, row in enumerate(rows):
            style = styles.get(row["model"])
            color = style.color if style else "#000000"
            marker = style.marker if style else "o"
            for values, filled in ((row["random"], True), (row["shown"], False)):
                v = np.asarray([s for s in values if s is not None], dtype=float)
                if v.size:
                    ax.scatter(v, y + rng.uniform(-0.15, 0.15, v.size), s=18, marker=marker,
                               facecolors=color if filled else "none", edgecolors=color,
                               linewidths=0.8, alpha=0.85, zorder=3)
            random = [s for s in row["random"] if s is not None]
            if random:
                ax.plot([np.median(random)] * 2, [y - 0.32, y + 0.32], color=color, lw=2.2,
                        zorder=4)
            ax.plot([row["area"]] * 2, [y - 0.38, y + 0.38], color="#888888", lw=1.2, ls=":",
                    zorder=2)
        ax.set_yticks(range(len(rows)),
                      [f"{r['model']} · {METHOD_LABELS[r['method']]}" for r in rows])
        ax.set(xlim=(-0.02, 1.02), ylim=(len(rows) - 0.5, -0.5),
               xlabel="share of saliency outside the central thorax region")
        ax.grid(axis="y", visible=False)
        fig.tight_layout()
        label = ("Share of saliency outside the central thorax region, per model and method: "
                 "one marker per image (filled: random test images, hollow: errors shown), "
                 "bar: median of the random images, dotted: an even map; data table below")
        return to_svg(fig, "fig-saliency-share", label)
