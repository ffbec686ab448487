"""Image standardisation any plugin can turn on: a thorax crop, then an intensity step.

Two parameters every plugin inherits from :class:`~cxrbench.plugins.contract.Plugin` switch
it on (both off by default, so a plugin's results do not change unless asked):

- ``thorax_crop=True``: :func:`thorax_box` finds the lung fields from intensity projections
  and the image is cropped to that box (plus a margin) and resized back to its size.
- ``intensity``: ``"percentile"`` stretches each image's 1st-99th percentile to 0-255;
  ``"clahe"`` is contrast-limited adaptive histogram equalisation (scikit-image,
  Zuiderveld 1994); ``"histmatch"`` maps each image's gray levels onto a reference histogram
  fitted on the *training* images only (the average of their quantile functions), kept as the
  plugin's fitted state.

The contract applies the step to train and validation before ``_fit`` and to every image set
before ``_predict``, so features and networks see standardised images. Transformed images get
new content hashes (the original hash, the settings and the fitted reference, hashed
together): the feature cache, keyed by content hash, never confuses them with the originals.

The thorax box, from projections of the image downsampled to 64 px (no weights, about 3 ms):
the spine is the brightest column of the middle third; walking outwards from it, each lung is
the first valley and the chest wall the next peak (the box's left and right). Over the lung
columns, the row where they are darkest against the spine is the lungs' middle; walking up to
the first peak (shoulders, clavicles) gives the top, walking down until the brightness rises
half-way to the abdomen's gives the diaphragm. A margin of 8 % is added on every side. A box
narrower than 55 % or shorter than 50 % of the image on one axis is not trusted: that axis is
kept whole (counted in ``fit_info['preprocessing']['crop_fallback']``). Method after the
projection-profile lung field detectors reviewed by van Ginneken et al., IEEE TMI 20(12), 2001.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cxrbench.cores import usable_cores

# Bump when a transform's output changes for the same settings: derived hashes change with it.
PREPROCESSING_VERSION = 1
INTENSITY_METHODS = ("none", "percentile", "clahe", "histmatch")

_ANALYSIS_PX = 64  # the thorax box is found on the image downsampled to this size
_MARGIN = 0.08
_MIN_HEIGHT, _MIN_WIDTH = 0.50, 0.55
_PERCENTILES = (1.0, 99.0)
_CLAHE_CLIP = 0.01
_CLAHE_TILES = 8  # tiles per side
_QUANTILES = 256  # points of the histogram-matching reference
_PARALLEL_MIN = 512  # fewer images than this are transformed in-process


# ------------------------------------------------------------------------------ thorax box
def _walk_to_peak(profile: np.ndarray, start: int, step: int, tol: float) -> int:
    """From ``start``, walk by ``step`` while the profile rises (dips under ``tol`` forgiven);
    the index of the highest point reached."""
    best, best_i, i = profile[start], start, start
    while 0 <= i + step < len(profile):
        i += step
        if profile[i] > best:
            best, best_i = profile[i], i
        elif profile[i] < best - tol:
            break
    return best_i


def _walk_to_valley(profile: np.ndarray, start: int, step: int, tol: float = 0.01) -> int:
    return _walk_to_peak(-profile, start, step, tol)


def _rise(profile: np.ndarray, start: int, fraction: float) -> int:
    """From ``start`` downwards, the first index where the profile has risen ``fraction`` of
    the way to its maximum below ``start``."""
    below = profile[start:]
    level = profile[start] + fraction * (below.max() - profile[start])
    return start + int(np.flatnonzero(below >= level)[0])


def thorax_box(gray: np.ndarray) -> tuple[tuple[float, float, float, float], bool]:
    """The thorax box of one ``(h, w)`` uint8 image as fractions ``(top, bottom, left, right)``,
    and whether it was found on both axes (see the module docstring for the method)."""
    from PIL import Image
    from scipy import ndimage as ndi

    s = _ANALYSIS_PX
    small = np.asarray(Image.fromarray(np.ascontiguousarray(gray)).resize(
        (s, s), Image.Resampling.BILINEAR), dtype=np.float32)
    lo, hi = np.percentile(small, (1, 99))
    x = ndi.gaussian_filter(np.clip((small - lo) / max(hi - lo, 1.0), 0, 1), 1.0)
    columns = ndi.gaussian_filter1d(x[int(0.2 * s):int(0.7 * s)].mean(axis=0), 1.5)
    a, b = int(0.35 * s), int(0.65 * s)
    spine = a + int(np.argmax(columns[a:b]))
    left_lung = _walk_to_valley(columns, spine, -1)
    right_lung = _walk_to_valley(columns, spine, 1)
    left = _walk_to_peak(columns, left_lung, -1, 0.03)
    right = _walk_to_peak(columns, right_lung, 1, 0.03) + 1
    w = max(2, (right_lung - left_lung) // 6)
    lung_cols = np.r_[max(0, left_lung - w):left_lung + w + 1,
                      right_lung - w:min(s, right_lung + w + 1)]
    rows = ndi.gaussian_filter1d(x[:, lung_cols].mean(axis=1), 2.5)
    spine_rows = ndi.gaussian_filter1d(x[:, max(0, spine - 1):spine + 2].mean(axis=1), 2.5)
    # The lungs' middle: where they are darkest against the spine (background above the
    # shoulders is dark too, but so is the spine's column there).
    a, b = int(0.1 * s), int(0.85 * s)
    middle = a + int(np.argmax((spine_rows - rows)[a:b]))
    top = _walk_to_peak(rows, middle, -1, 0.04)
    bottom = _rise(rows, middle, 0.5) + 1
    pad = _MARGIN * s
    top, bottom = max(0.0, top - pad), min(float(s), bottom + pad)
    left, right = max(0.0, left - pad), min(float(s), right + pad)
    found = True
    if bottom - top < _MIN_HEIGHT * s:
        top, bottom, found = 0.0, float(s), False
    if right - left < _MIN_WIDTH * s:
        left, right, found = 0.0, float(s), False
    return (top / s, bottom / s, left / s, right / s), found


def crop_to_box(gray: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """``gray`` cropped to ``box`` (fractions: top, bottom, left, right) and resized back to its
    own size (bilinear; the box's aspect ratio is not kept, as the data's own resizing)."""
    from PIL import Image

    h, w = gray.shape
    top, bottom, left, right = box
    image = Image.fromarray(np.ascontiguousarray(gray))
    out = image.resize((w, h), Image.Resampling.BILINEAR,
                       box=(left * w, top * h, right * w, bottom * h))
    return np.asarray(out, dtype=np.uint8)


# ------------------------------------------------------------------------------ intensity
def percentile_stretch(gray: np.ndarray) -> np.ndarray:
    """The image's 1st-99th percentile range stretched to 0-255 (clipped outside)."""
    lo, hi = np.percentile(gray, _PERCENTILES)
    if hi <= lo:
        return gray.copy()
    out = (gray.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def clahe(gray: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (``skimage.exposure
    .equalize_adapthist``, 8 x 8 tiles, clip limit 0.01)."""
    from skimage.exposure import equalize_adapthist

    kernel = max(2, gray.shape[0] // _CLAHE_TILES)
    out = equalize_adapthist(gray, kernel_size=kernel, clip_limit=_CLAHE_CLIP)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def image_quantiles(gray: np.ndarray) -> np.ndarray:
    """The image's quantile function at ``_QUANTILES`` evenly spaced probabilities."""
    probs = (np.arange(_QUANTILES) + 0.5) / _QUANTILES
    return np.quantile(gray, probs).astype(np.float64)


def match_histogram(gray: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each gray level mapped through the image's CDF onto the reference quantile function
    (mid-ranks, so ties go to the middle of their span)."""
    counts = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    cdf = (np.cumsum(counts) - 0.5 * counts) / gray.size
    probs = (np.arange(len(reference)) + 0.5) / len(reference)
    lut = np.interp(cdf, probs, reference)
    return np.clip(np.round(lut), 0, 255).astype(np.uint8)[gray]


# ------------------------------------------------------------------------------ the step
@dataclass(frozen=True)
class Preprocessing:
    """The settings of the step: ``intensity`` (one of :data:`INTENSITY_METHODS`) and
    ``thorax_crop``."""

    intensity: str = "none"
    thorax_crop: bool = False

    def __post_init__(self) -> None:
        if self.intensity not in INTENSITY_METHODS:
            raise ValueError(f"unknown intensity standardisation {self.intensity!r}; use one "
                             f"of {', '.join(INTENSITY_METHODS)}")

    @property
    def active(self) -> bool:
        return self.intensity != "none" or self.thorax_crop

    @property
    def needs_reference(self) -> bool:
        return self.intensity == "histmatch"

    def digest(self, reference: np.ndarray | None) -> str:
        """What a transformed image depends on besides its source: settings, version, the
        fitted reference."""
        spec = {**asdict(self), "version": PREPROCESSING_VERSION}
        h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
        if reference is not None:
            h.update(np.ascontiguousarray(reference, dtype=np.float64).tobytes())
        return h.hexdigest()

    def transform_one(self, gray: np.ndarray, reference: np.ndarray | None
                      ) -> tuple[np.ndarray, bool]:
        """One ``(h, w)`` uint8 image transformed, and whether its thorax box was found."""
        found = True
        if self.thorax_crop:
            box, found = thorax_box(gray)
            gray = crop_to_box(gray, box)
        if self.intensity == "percentile":
            gray = percentile_stretch(gray)
        elif self.intensity == "clahe":
            gray = clahe(gray)
        elif self.intensity == "histmatch":
            if reference is None:
                raise ValueError("histogram matching needs a reference fitted on training "
                                 "images (fit_reference)")
            gray = match_histogram(gray, reference)
        return gray, found


def _gray(batch: np.ndarray) -> np.ndarray:
    """``(n, h, w, c)`` uint8 -> ``(n, h, w)`` uint8 (channel mean; the films are gray)."""
    if batch.shape[3] == 1:
        return np.asarray(batch[..., 0])
    return np.round(np.asarray(batch, dtype=np.float32).mean(axis=3)).astype(np.uint8)


def _quantiles_batch(spec: Preprocessing, batch: np.ndarray) -> np.ndarray:
    crop_only = Preprocessing(thorax_crop=spec.thorax_crop)
    return np.stack([image_quantiles(crop_only.transform_one(g, None)[0])
                     for g in _gray(batch)])


def _transform_batch(spec: Preprocessing, batch: np.ndarray, reference: np.ndarray | None
                     ) -> tuple[np.ndarray, int]:
    out = np.empty(batch.shape[:3], dtype=np.uint8)
    missed = 0
    for i, g in enumerate(_gray(batch)):
        out[i], found = spec.transform_one(g, reference)
        missed += not found
    return out, missed


def _map_batches(function: Any, spec: Preprocessing, images: np.ndarray, *args: Any) -> list:
    """``function(spec, batch, *args)`` over batches, in worker processes for many images."""
    n = len(images)
    n_jobs = usable_cores()
    if n < _PARALLEL_MIN or n_jobs == 1:
        return [function(spec, np.asarray(images[i:i + 256]), *args) for i in range(0, n, 256)]
    from joblib import Parallel, delayed

    step = int(np.clip(np.ceil(n / (4 * n_jobs)), 32, 256))
    return Parallel(n_jobs=n_jobs, backend="loky")(
        delayed(function)(spec, np.asarray(images[i:i + step]), *args) for i in range(0, n, step))


def fit_reference(spec: Preprocessing, images: np.ndarray) -> np.ndarray | None:
    """The histogram-matching reference of ``images`` (training images, after the crop): the
    mean of their quantile functions; None when the settings need no reference."""
    if not spec.needs_reference:
        return None
    quantiles = np.concatenate(_map_batches(_quantiles_batch, spec, images))
    return np.maximum.accumulate(quantiles.mean(axis=0))  # a quantile function never falls


def transform_images(spec: Preprocessing, images: np.ndarray, reference: np.ndarray | None
                     ) -> tuple[np.ndarray, int]:
    """``(n, h, w, c)`` uint8 images transformed, same shape (channels repeated as a read-only
    view), and how many had no thorax box found."""
    channels = images.shape[3]
    parts = _map_batches(_transform_batch, spec, images, reference)
    gray = (np.concatenate([p[0] for p in parts]) if parts
            else np.zeros(images.shape[:3], np.uint8))
    missed = sum(p[1] for p in parts)
    out = gray[..., None]
    if channels != 1:
        out = np.broadcast_to(out, (*gray.shape, channels))
    return out, int(missed)


def derived_hashes(content_hashes: np.ndarray, digest: str) -> np.ndarray:
    """New content hashes for transformed images (an empty hash stays empty: the feature cache
    then hashes the transformed pixels)."""
    return np.array([hashlib.sha256(f"{h}|{digest}".encode()).hexdigest() if h else ""
                     for h in map(str, content_hashes)], dtype=str)


__all__ = [
    "INTENSITY_METHODS", "PREPROCESSING_VERSION", "Preprocessing", "clahe", "crop_to_box",
    "derived_hashes", "fit_reference", "image_quantiles", "match_histogram",
    "percentile_stretch", "thorax_box", "transform_images",
]
