"""Where a model looks: occlusion sensitivity for any plugin, and the share of a saliency map
that falls outside the central thorax region (pure computation; no files, no rendering).

**Occlusion sensitivity** (Zeiler & Fergus, ECCV 2014): a square patch a quarter of the image
wide, filled with the image's own mean, slides over the image in ``OCCLUSION_STEPS`` positions
per axis (half-overlapping); each occluded copy is scored by the model, and the change in its
score is spread over the pixels the patch covered (each pixel: the mean over the patches that
covered it). All copies of a group of images go to the model in one call. The map is signed as
*evidence for the class the model predicted* at its threshold: positive where hiding the region
lowers the probability of pneumonia for an image it calls pneumonia, or raises it for an image
it calls normal.

**The central thorax region**, defined once here: the box
:func:`cxrbench.plugins.preprocessing.thorax_box` finds on the image as the model saw it (the
lung fields from intensity projections, plus its 8 % margin; the same box the ``thorax_crop``
preprocessing crops to). On an axis where that box is not trusted (too narrow or too short), the
fixed central band ``FALLBACK_BOX`` (10 % to 90 % of the side) is used instead. Outside it lie
the film's borders, text markers, shoulders and the abdomen: saliency there is the
shortcut-learning signal described by DeGrave, Janizek & Lee (Nat Mach Intell 3, 2021).

**Outside share** of a map: the positive part of the map (evidence for the predicted class)
outside the region, divided by all of its positive part. A map spread evenly over the image
would give the region's outside *area* share, which is reported beside it as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

OCCLUSION_PATCH = 0.25  # patch side, as a fraction of the image side
OCCLUSION_STEPS = 7  # patch positions per axis (stride: half a patch)
MAX_COPIES = 512  # occluded copies per model call (bounds memory: 512 x 224 px x 3 = 77 MB)
FALLBACK_BOX = (0.10, 0.90, 0.10, 0.90)  # top, bottom, left, right: where thorax_box fails

Box = tuple[float, float, float, float]  # top, bottom, left, right, fractions of the side
Predict = Callable[[np.ndarray], np.ndarray]  # (n, h, w, c) uint8 -> probabilities (n,)


@dataclass(frozen=True)
class ThoraxRegion:
    """The central thorax region of one image and whether thorax_box found it on both axes."""

    box: Box
    found: bool

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean ``(height, width)`` mask, True inside the region."""
        top, bottom, left, right = self.box
        mask = np.zeros((height, width), dtype=bool)
        mask[int(round(top * height)):int(round(bottom * height)),
             int(round(left * width)):int(round(right * width))] = True
        return mask

    @property
    def outside_area(self) -> float:
        top, bottom, left, right = self.box
        return 1.0 - (bottom - top) * (right - left)


def thorax_region(gray: np.ndarray) -> ThoraxRegion:
    """The central thorax region of a ``(h, w)`` uint8 image (see the module docstring)."""
    from cxrbench.plugins.preprocessing import thorax_box

    (top, bottom, left, right), found = thorax_box(gray)
    if not found:  # thorax_box keeps an untrusted axis whole: use the fixed band there
        if (top, bottom) == (0.0, 1.0):
            top, bottom = FALLBACK_BOX[:2]
        if (left, right) == (0.0, 1.0):
            left, right = FALLBACK_BOX[2:]
    return ThoraxRegion((top, bottom, left, right), found)


def outside_share(saliency: np.ndarray, region: ThoraxRegion) -> float | None:
    """Share of the map's positive part outside ``region``; None when it has no positive part
    (nothing in the image speaks for the predicted class)."""
    positive = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    total = positive.sum()
    if not total > 0:
        return None
    inside = positive[region.mask(*positive.shape)].sum()
    return float((total - inside) / total)


def patch_positions(size: int, patch: int, steps: int = OCCLUSION_STEPS) -> list[int]:
    """Start offsets of the patch along one axis: ``steps`` evenly spaced, first 0, last
    ``size - patch`` (so every pixel is covered)."""
    return sorted({int(round(v)) for v in np.linspace(0, size - patch, steps)})


def occlusion_maps(predict: Predict, images: np.ndarray, thresholds: float | np.ndarray,
                   *, patch_fraction: float = OCCLUSION_PATCH, steps: int = OCCLUSION_STEPS,
                   max_copies: int = MAX_COPIES) -> tuple[np.ndarray, np.ndarray]:
    """Occlusion maps ``(n, h, w)`` of ``images`` ``(n, h, w, c)`` uint8, signed as evidence for
    the predicted class, and the model's probabilities of the unoccluded images ``(n,)``.

    ``predict`` scores a uint8 batch (one call per group of images, originals and occluded
    copies together); ``thresholds`` (one, or one per image) decide the predicted class.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be (n, h, w, c) uint8, got {images.dtype} "
                         f"{images.shape}")
    n, h, w, _ = images.shape
    patch_h = max(1, int(round(patch_fraction * h)))
    patch_w = max(1, int(round(patch_fraction * w)))
    spots = [(y, x) for y in patch_positions(h, patch_h, steps)
             for x in patch_positions(w, patch_w, steps)]
    per_image = len(spots) + 1  # the original first, then each occluded copy
    group = max(1, max_copies // per_image)
    maps = np.zeros((n, h, w), dtype=np.float64)
    base = np.zeros(n, dtype=np.float64)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n,))
    for first in range(0, n, group):
        chunk = images[first:first + group]
        copies = np.repeat(chunk, per_image, axis=0)
        for i, image in enumerate(chunk):
            fill = np.round(image.reshape(-1, image.shape[-1]).mean(axis=0)).astype(np.uint8)
            for j, (y, x) in enumerate(spots, start=1):
                copies[i * per_image + j, y:y + patch_h, x:x + patch_w] = fill
        p = np.asarray(predict(copies), dtype=np.float64).reshape(len(chunk), per_image)
        for i in range(len(chunk)):
            k = first + i
            base[k] = p[i, 0]
            sign = 1.0 if p[i, 0] >= thresholds[k] else -1.0
            total = np.zeros((h, w))
            count = np.zeros((h, w))
            for j, (y, x) in enumerate(spots, start=1):
                total[y:y + patch_h, x:x + patch_w] += sign * (p[i, 0] - p[i, j])
                count[y:y + patch_h, x:x + patch_w] += 1
            maps[k] = total / np.maximum(count, 1)
    return maps, base


def display_scale(saliency: np.ndarray) -> np.ndarray:
    """The positive part of a map scaled to [0, 1] by its maximum (all zero when none)."""
    positive = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    top = positive.max() if positive.size else 0.0
    return positive / top if top > 0 else positive
