"""Test images in the report: the gallery of each top model's most confident errors.

Images are read from ``data_root / record_id``, never from outside the data root (the ids come
from a results file, which may be crafted), once each (:class:`ImageStore`): a small JPEG
thumbnail goes inline, a larger copy into the report's embedded data for the click-to-enlarge
view (so an image shown in both the gallery and the hard cases is stored once). When the data
is not reachable the gallery says so and the report is written without it. For a model that
crops to the thorax (``thorax_crop``), each thumbnail shows the crop as a frame: the box
:func:`cxrbench.plugins.preprocessing.thorax_box` finds on the image, squared as the model's
input was.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

THUMBNAIL_PX = 112
LARGE_PX = 448
JPEG_QUALITY = 70
TOP_MODELS = 3
ERRORS_PER_KIND = 4  # false positives and false negatives, each


def _jpeg_data_uri(image: Any, size: int) -> str:
    copy = image.copy()
    copy.thumbnail((size, size))
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_data_uri(path: Path, size: int = THUMBNAIL_PX) -> str:
    """A grayscale JPEG thumbnail of ``path`` as a ``data:`` URI (raises OSError if unreadable)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("L", (size, size))  # JPEG: decode at reduced scale, much faster on originals
        return _jpeg_data_uri(image.convert("L"), size)


class ImageStore:
    """Thumbnails (inline) and enlargements (embedded once per image) read from ``root``."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.large: dict[str, str] = {}
        self.unreadable = 0
        self._thumbs: dict[str, str | None] = {}
        self._boxes: dict[str, dict[str, float] | None] = {}

    @property
    def available(self) -> bool:
        return self.root is not None and self.root.is_dir()

    def note(self) -> str:
        if self.root is None:
            return "no data folder given: pass --data to `cxrbench report` for thumbnails"
        if not self.root.is_dir():
            return f"the data folder {self.root} is not reachable from here: no thumbnails"
        return f"{self.unreadable} image(s) could not be read under {self.root}" \
            if self.unreadable else ""

    def crop_box(self, record_id: str) -> dict[str, float] | None:
        """Where the thorax crop lies on the thumbnail, in percent of its 112 px square
        (``top``, ``left``, ``width``, ``height``); None when the image is unreadable."""
        if record_id in self._boxes or not self.available:
            return self._boxes.get(record_id)
        from PIL import Image

        from cxrbench.plugins.preprocessing import thorax_box

        try:
            with Image.open(self.root / record_id) as image:
                image.draft("L", (LARGE_PX, LARGE_PX))
                gray = image.convert("L")
                w, h = gray.size
                # The model saw the film squashed to a square, so the box is found on that.
                square = np.asarray(gray.resize((LARGE_PX, LARGE_PX)), dtype=np.uint8)
        except OSError:
            self._boxes[record_id] = None
            return None
        (top, bottom, left, right), _ = thorax_box(square)
        # The thumbnail keeps the film's aspect ratio, centred in its square (object-fit).
        shown_w, shown_h = (1.0, h / w) if w >= h else (w / h, 1.0)
        off_x, off_y = (1 - shown_w) / 2, (1 - shown_h) / 2
        self._boxes[record_id] = {
            "top": round(100 * (off_y + top * shown_h), 2),
            "left": round(100 * (off_x + left * shown_w), 2),
            "width": round(100 * (right - left) * shown_w, 2),
            "height": round(100 * (bottom - top) * shown_h, 2)}
        return self._boxes[record_id]

    def thumbnail(self, record_id: str) -> str | None:
        """The thumbnail's data URI (None when unreadable); the enlargement is kept."""
        if record_id in self._thumbs or not self.available:
            return self._thumbs.get(record_id)
        from PIL import Image

        try:
            with Image.open(path_inside(self.root, record_id)) as image:
                image.draft("L", (LARGE_PX, LARGE_PX))
                gray = image.convert("L")
                self._thumbs[record_id] = _jpeg_data_uri(gray, THUMBNAIL_PX)
                self.large[record_id] = _jpeg_data_uri(gray, LARGE_PX)
        except OSError:
            self.unreadable += 1
            self._thumbs[record_id] = None
        return self._thumbs[record_id]


def path_inside(root: Path, record_id: str) -> Path:
    """``root / record_id``, or OSError when the id would leave the data root (an absolute
    path, a ``..`` part)."""
    parts = Path(record_id).parts
    if not parts or Path(record_id).is_absolute() or ".." in parts:
        raise OSError(f"evaluation id {record_id!r} is not a path inside the data root")
    return root / record_id


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


def build_gallery(picks: list[dict[str, Any]], ids: list[str], store: ImageStore
                  ) -> dict[str, Any]:
    """``picks``: ``{"model", "job_id", "y", "p", "threshold", "n_errors"}`` per top model,
    and ``"thorax_crop": True`` for a model that crops to the thorax.

    Returns ``{"available", "note", "models": [{"model", "job_id", "n_errors", "threshold",
    "thorax_crop", "items": [{"src", "record_id", "kind", "probability", "crop_box"}]}]}``
    (``crop_box``: see :meth:`ImageStore.crop_box`; None without the crop).
    """
    if not store.available:
        return {"available": False, "models": [], "note": store.note()}
    models = []
    for pick in picks:
        items = []
        crop = bool(pick.get("thorax_crop"))
        for index, kind in worst_errors(pick["y"], pick["p"], pick["threshold"]):
            src = store.thumbnail(ids[index])
            if src is not None:
                items.append({"src": src, "record_id": ids[index], "kind": kind,
                              "probability": float(pick["p"][index]),
                              "crop_box": store.crop_box(ids[index]) if crop else None})
        models.append({"model": pick["model"], "job_id": pick["job_id"],
                       "n_errors": pick["n_errors"], "threshold": pick["threshold"],
                       "thorax_crop": crop, "items": items})
    return {"available": any(m["items"] for m in models) or not store.unreadable,
            "models": models, "note": store.note()}
