"""The report's model palette stays tellable apart for readers with red-green colour blindness.

Each colour is passed through the Machado, Oliveira & Fernandes (2009) simulation of
deuteranopia and protanopia at full severity (colorspacious), and every pair is compared by its
distance in CAM02-UCS, a space built so that distances match perceived differences.

Threshold: 10. One unit is about one just-noticeable difference for large patches side by side;
chart lines are thin and seen apart, and small-field colour discrimination needs several times
that, so 10 keeps a clear margin while still failing the matplotlib tab10 palette the report
used before (its closest pairs come to 4.3 under deuteranopia and 1.6 under protanopia, the
"same blue" and "same yellow" reviewers saw).
"""

from __future__ import annotations

import itertools

import matplotlib.colors as mcolors
import numpy as np
import pytest

from cxrbench.report.palette import OKABE_ITO, palette

colorspacious = pytest.importorskip("colorspacious",
                                    reason="colorspacious not installed (pip install -e .[dev])")
MIN_DISTANCE = 10.0
DEFICIENCIES = ("deuteranomaly", "protanomaly")  # severity 100: deuteranopia, protanopia


def min_pair_distance(colors: list[str], deficiency: str | None) -> float:
    rgb = np.array([mcolors.to_rgb(c) for c in colors])
    if deficiency is not None:
        space = {"name": "sRGB1+CVD", "cvd_type": deficiency, "severity": 100}
        rgb = np.clip(colorspacious.cspace_convert(rgb, space, "sRGB1"), 0, 1)
    return min(colorspacious.deltaE(rgb[i], rgb[j], input_space="sRGB1")
               for i, j in itertools.combinations(range(len(rgb)), 2))


@pytest.mark.parametrize("deficiency", [None, *DEFICIENCIES])
def test_palette_colours_stay_apart(deficiency):
    assert min_pair_distance(list(OKABE_ITO), deficiency) >= MIN_DISTANCE


@pytest.mark.parametrize("deficiency", DEFICIENCIES)
def test_threshold_rejects_the_old_tab10_palette(deficiency):
    tab10 = [mcolors.to_hex(c) for c in mcolors.TABLEAU_COLORS.values()]
    assert min_pair_distance(tab10, deficiency) < MIN_DISTANCE


def test_every_model_has_its_own_look_up_to_twenty_models():
    styles = palette([f"m{i}" for i in range(20)])
    looks = {(s.color, s.line, s.marker) for s in styles.values()}
    assert len(looks) == 20
    markers = [s.marker for s in list(styles.values())[:12]]
    assert len(set(markers)) == 12  # a marker of its own for each of the first 12 models
