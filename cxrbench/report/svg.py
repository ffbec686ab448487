"""Matplotlib figures as inline SVG for a self-contained HTML page.

Agg backend (no display), text kept as ``<text>`` (small, sharp, selectable), and the SVG
cleaned for inlining: no XML prolog or DOCTYPE, no namespace URLs (the HTML parser puts an
inline ``<svg>`` in the SVG namespace by itself), no fixed size (it scales with the page), and
every ``id`` prefixed so that several figures on one page cannot collide.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
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
    # No text below 9 pt: with MIN_TEXT_PX the page never shows figure text under 9 px.
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
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
_FONT_SIZE = re.compile(r"font-size: ([\d.]+)px")
_SERIES = re.compile(r'id="([\w-]+-s(\d+)-[\w-]+)"')
PX_PER_PT = 4 / 3
MAX_ZOOM = 1.1  # a small figure is never blown up beyond 110 % of its natural size
MIN_TEXT_PX = 9.5  # a figure is never shrunk so far that its smallest text is below this


@contextmanager
def figure_style() -> Iterator[None]:
    with plt.rc_context(STYLE):
        yield


def to_svg(fig: Any, prefix: str, label: str) -> str:
    """Serialise and close ``fig``; return cleaned SVG markup with ids prefixed by ``prefix``
    and ``label`` as its accessible name."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    return clean_svg(buffer.getvalue(), prefix, label)


def clean_svg(svg: str, prefix: str, label: str = "") -> str:
    """Inline-ready SVG: no prolog or namespaces, scalable (never wider than 110 % of its
    natural size, never narrower than keeps its smallest text at ``MIN_TEXT_PX``), ids
    prefixed, elements of series ``N`` (gid ``sN-...``) tagged ``data-series``, and an
    accessible name (``aria-label`` and ``<title>``)."""
    svg = svg[svg.index("<svg"):]
    head_end = svg.index(">")
    head = _SIZE.sub("", _NAMESPACE.sub("", svg[:head_end]))
    box = _VIEWBOX.search(head)
    sizes = [float(size) for size in _FONT_SIZE.findall(svg)]
    limits = ""
    if box:
        width = float(box.group(1))
        limits = f"max-width:{width * PX_PER_PT * MAX_ZOOM:.0f}px;"
        if sizes:
            limits += f"min-width:{width * MIN_TEXT_PX / min(sizes):.0f}px;"
    name = html.escape(label, quote=True)
    svg = (head + f' role="img" aria-label="{name}" class="figure-svg" '
           f'style="width:100%;height:auto;{limits}"><title>{name}</title>'
           + svg[head_end + 1:])
    svg = svg.replace("xlink:href=", "href=")
    ids = set(_ID.findall(svg))

    def rename(match: re.Match[str]) -> str:
        return f'id="{prefix}-{match.group(1)}"'

    svg = _ID.sub(rename, svg)
    svg = _SERIES.sub(lambda m: f'id="{m.group(1)}" data-series="{m.group(2)}"', svg)
    for old in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f"#{old})", f"#{prefix}-{old})").replace(
            f'href="#{old}"', f'href="#{prefix}-{old}"')
    return svg
