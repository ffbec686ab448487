"""Gallery of test images a model gets wrong, as small inline JPEG thumbnails.

For each of the top models (the record drawn for it), its most confident errors at its chosen
threshold: false positives with the highest and false negatives with the lowest probability.
Images are read from ``data_root / record_id``; when the data is not reachable the gallery says
so and the report is written without it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

THUMBNAIL_PX = 112
JPEG_QUALITY = 70
TOP_MODELS = 3
ERRORS_PER_KIND = 4  # false positives and false negatives, each


def thumbnail_data_uri(path: Path, size: int = THUMBNAIL_PX) -> str:
    """A grayscale JPEG thumbnail of ``path`` as a ``data:`` URI (raises OSError if unreadable)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("L", (size, size))  # JPEG: decode at reduced scale, much faster on originals
        image = image.convert("L")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def worst_errors(
    y: np.ndarray, p: np.ndarray, threshold: float, per_kind: int = ERRORS_PER_KIND
) -> list[tuple[int, str]]:
    """Indices of the most confident false positives and false negatives, with their kind."""
    pred = p >= threshold
    false_pos = np.flatnonzero(pred & (y == 0))
    false_neg = np.flatnonzero(~pred & (y == 1))
    false_pos = false_pos[np.argsort(-p[false_pos], kind="stable")][:per_kind]
    false_neg = false_neg[np.argsort(p[false_neg], kind="stable")][:per_kind]
    return [(int(i), "false positive") for i in false_pos] + \
        [(int(i), "false negative") for i in false_neg]


def build_gallery(
    picks: list[dict[str, Any]],
    ids: list[str],
    data_root: str | Path | None,
) -> dict[str, Any]:
    """``picks``: ``{"model", "job_id", "y", "p", "threshold", "n_errors"}`` per top model.

    Returns ``{"available", "note", "models": [{"model", "job_id", "n_errors", "items":
    [{"src", "record_id", "kind", "probability"}]}]}``.
    """
    if data_root is None:
        return {"available": False, "models": [],
                "note": "no data folder given: pass --data to `cxrbench report` for thumbnails"}
    root = Path(data_root).expanduser()
    if not root.is_dir():
        return {"available": False, "models": [],
                "note": f"the data folder {root} is not reachable from here: no thumbnails"}
    unreadable = 0
    models = []
    for pick in picks:
        items = []
        for index, kind in worst_errors(pick["y"], pick["p"], pick["threshold"]):
            try:
                src = thumbnail_data_uri(root / ids[index])
            except OSError:
                unreadable += 1
                continue
            items.append({"src": src, "record_id": ids[index], "kind": kind,
                          "probability": float(pick["p"][index])})
        models.append({"model": pick["model"], "job_id": pick["job_id"],
                       "n_errors": pick["n_errors"], "threshold": pick["threshold"],
                       "items": items})
    note = f"{unreadable} image(s) could not be read under {root}" if unreadable else ""
    return {"available": any(m["items"] for m in models) or not unreadable,
            "models": models, "note": note}
