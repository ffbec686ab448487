"""One colour, line style and marker per model, the same in every figure.

Colours are Okabe & Ito's palette ("Color Universal Design", 2008), chosen to stay apart for
readers with deuteranopia or protanopia (``tests/test_report_palette.py`` simulates both and
checks the distance between every pair); yellow, the weakest on white, comes last. Colour
alone never carries a model: every model also has its own marker, and models beyond the eighth
reuse the colours with dashed, then dotted lines. Colours are hex strings, so the same values
serve matplotlib and the HTML legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7",
             "#F0E442")
LINE_STYLES = ("-", "--", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
# SVG stroke-dasharray of each line style, for the HTML legend's samples.
DASHES = {"-": "", "--": "6 3", ":": "1.5 2.5"}


@dataclass(frozen=True)
class Style:
    color: str
    line: str
    marker: str
    index: int

    @property
    def dash(self) -> str:
        return DASHES[self.line]


Palette = dict[str, Style]


def palette(models: Sequence[str]) -> Palette:
    """Styles for ``models`` in leaderboard order; made once per report so that a model keeps
    its look in every figure."""
    n = len(OKABE_ITO)
    return {model: Style(color=OKABE_ITO[i % n], line=LINE_STYLES[(i // n) % len(LINE_STYLES)],
                         marker=MARKERS[i % len(MARKERS)], index=i)
            for i, model in enumerate(models)}
