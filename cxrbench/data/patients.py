"""Patient ids from file names (the Kaggle chest X-ray naming scheme).

Validation splits must be grouped by patient, and the only patient information the Kaggle data
set carries is in its file names:

==================================  ==================  =========================
file name                           patient id          where
==================================  ==================  =========================
``person1_bacteria_1.jpeg``          ``person1``         PNEUMONIA (bacterial)
``person1_virus_6.jpeg``             ``person1``         PNEUMONIA (viral)
``person1_virus_6_2.jpeg``           ``person1``         (one such file in train/)
``IM-0115-0001.jpeg``                ``IM-0115``         NORMAL
``IM-0115-0001-0002.jpeg``           ``IM-0115``         NORMAL (several views)
``NORMAL2-IM-0381-0001.jpeg``        ``NORMAL2-IM-0381`` NORMAL (second batch)
anything else, e.g. ``scan7.png``    ``scan7`` (stem)    one image = one patient
==================================  ==================  =========================

Matching is case-insensitive and ignores the extension; the id keeps the file's own spelling.
A manifest's ``patient_id`` column, when present, wins over the file name. Note that the same
``personN`` in ``train/`` and ``test/`` is not documented to be the same child.
"""

from __future__ import annotations

import re
from pathlib import PurePath

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^(person\d+)_(?:bacteria|virus)_\d+(?:_\d+)*$", re.IGNORECASE),
    re.compile(r"^(NORMAL2-IM-\d+)-\d+(?:-\d+)*$", re.IGNORECASE),
    re.compile(r"^(IM-\d+)-\d+(?:-\d+)*$", re.IGNORECASE),
)


def patient_id_from_name(name: str) -> str:
    """The patient id encoded in a file name (or path); the stem when no pattern matches."""
    stem = PurePath(name).stem
    for pattern in _PATTERNS:
        match = pattern.match(stem)
        if match:
            return match.group(1)
    return stem
