"""A chest-like synthetic film whose lung fields sit where a test says (preprocessing, report)."""

from __future__ import annotations

import numpy as np


def chest(size: int = 128, *, top: float = 0.2, bottom: float = 0.75, left: float = 0.18,
          right: float = 0.82, seed: int = 0) -> np.ndarray:
    """A chest-like film: dark background, a bright body with two dark lungs in the given box
    (fractions), a bright spine between them, bright shoulders above (background over them)
    and a bright abdomen below."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.full((size, size), 20.0)
    body = (xx > left - 0.1) & (xx < right + 0.1) & (yy > top - 0.1)
    img[body] = 170
    lung_rows = (yy > top) & (yy < bottom)
    mid = (left + right) / 2
    img[lung_rows & (xx > left) & (xx < mid - 0.06)] = 60
    img[lung_rows & (xx > mid + 0.06) & (xx < right)] = 60
    img[(yy >= bottom) & body] = 200
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
