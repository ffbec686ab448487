"""Subgroups of a data set: which images to score separately (metrics per subgroup).

A manifest's ``subgroup`` column names them (any text: a site, a scanner, an age band); an
empty cell means none. For the Kaggle naming scheme they come from the file names:

================================  =====================  ====================================
file name                         subgroup               what it is
================================  =====================  ====================================
``person1_bacteria_1.jpeg``       ``bacterial``          PNEUMONIA, bacterial
``person1_virus_6.jpeg``          ``viral``              PNEUMONIA, viral
``IM-0115-0001.jpeg``             ``normal IM``          NORMAL, the ``IM-`` series
``NORMAL2-IM-0381-0001.jpeg``     ``normal NORMAL2-IM``  NORMAL, the second (``NORMAL2-``)
                                                         series
anything else                     (none)
================================  =====================  ====================================

The two normal series differ (on the official test split one model calls far more
``NORMAL2-`` normals pneumonia than the others), which is why they are kept apart.
"""

from __future__ import annotations

import re
from pathlib import PurePath

_KAGGLE_SUBGROUPS: tuple[tuple[re.Pattern[str], int, str], ...] = (
    (re.compile(r"^person\d+_bacteria_\d+(?:_\d+)*$", re.IGNORECASE), 1, "bacterial"),
    (re.compile(r"^person\d+_virus_\d+(?:_\d+)*$", re.IGNORECASE), 1, "viral"),
    (re.compile(r"^NORMAL2-IM-\d+-\d+(?:-\d+)*$", re.IGNORECASE), 0, "normal NORMAL2-IM"),
    (re.compile(r"^IM-\d+-\d+(?:-\d+)*$", re.IGNORECASE), 0, "normal IM"),
)


def subgroup_from_name(name: str, label: int) -> str:
    """The subgroup a Kaggle file name encodes (given its label), or "" for none."""
    stem = PurePath(name).stem
    for pattern, expected_label, subgroup in _KAGGLE_SUBGROUPS:
        if int(label) == expected_label and pattern.match(stem):
            return subgroup
    return ""
