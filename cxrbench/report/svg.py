"""Matplotlib figures as inline SVG for a self-contained HTML page.

Agg backend (no display), text kept as ``<text>`` (small, sharp, selectable), and the SVG
cleaned for inlining: no XML prolog or DOCTYPE, no namespace URLs (the HTML parser puts an
inline ``<svg>`` in the SVG namespace by itself), no fixed size (it scales with the page), and
every ``id`` prefixed so that several figures on one page cannot collide.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "cxrbench",  # deterministic ids: the same results give the same file
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "figure.dpi": 72,
}

_ID = re.compile(r'\bid="([^"]+)"')
_NAMESPACE = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_SIZE = re.compile(r'\s+(?:width|height)="[\d.]+pt"')
_VIEWBOX = re.compile(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) [\d.]+"')
PX_PER_PT = 4 / 3
MAX_ZOOM = 1.1  # a small figure is never blown up beyond 110 % of its natural size


@contextmanager
def figure_style() -> Iterator[None]:
    with plt.rc_context(STYLE):
        yield


def model_colors(models: Sequence[str]) -> dict[str, Any]:
    """A stable colour per model (in leaderboard order), distinct for up to 20 models.

    tab10 for ten models; beyond, tab20 with its ten strong colours first and their light
    twins after, so neighbours in the ranking never share a hue.
    """
    if len(models) <= 10:
        cmap = plt.get_cmap("tab10")
        return {model: cmap(i % 10) for i, model in enumerate(models)}
    cmap = plt.get_cmap("tab20")
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return {model: cmap(order[i % 20]) for i, model in enumerate(models)}


def line_styles(models: Sequence[str]) -> dict[str, str]:
    """Solid lines for the first ten models, dashed after: 20 curves stay tellable apart."""
    return {model: "-" if i < 10 else "--" for i, model in enumerate(models)}


Palette = tuple[dict[str, Any], dict[str, str]]


def palette(models: Sequence[str]) -> Palette:
    """Colours and line styles for ``models``; made once per report so that a model keeps its
    colour in every figure."""
    return model_colors(models), line_styles(models)


def to_svg(fig: Any, prefix: str) -> str:
    """Serialise and close ``fig``; return cleaned SVG markup with ids prefixed by ``prefix``."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    return clean_svg(buffer.getvalue(), prefix)


def clean_svg(svg: str, prefix: str) -> str:
    svg = svg[svg.index("<svg"):]
    head_end = svg.index(">")
    head = _SIZE.sub("", _NAMESPACE.sub("", svg[:head_end]))
    box = _VIEWBOX.search(head)
    max_width = f"max-width:{float(box.group(1)) * PX_PER_PT * MAX_ZOOM:.0f}px;" if box else ""
    svg = (head + f' role="img" class="figure-svg" style="width:100%;height:auto;{max_width}"'
           + svg[head_end:])
    svg = svg.replace("xlink:href=", "href=")
    ids = set(_ID.findall(svg))

    def rename(match: re.Match[str]) -> str:
        return f'id="{prefix}-{match.group(1)}"'

    svg = _ID.sub(rename, svg)
    for old in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f"#{old})", f"#{prefix}-{old})").replace(
            f'href="#{old}"', f'href="#{prefix}-{old}"')
    return svg
