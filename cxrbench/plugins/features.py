"""Image feature extractors (scikit-image) and a content-addressed, parallel feature cache.

Plugins write ``feats = extract_cached(HOGExtractor(cell=16), images)``: features are looked up
by (image content hash, extractor name, extractor parameters, image size and channels); only the
missing images are computed, in parallel worker processes (joblib/loky, one task per batch),
and stored so that a second run of the same plugins reads them instead of recomputing them.

Cache layout, under ``<cache dir>/features/`` (``cxrbench.data.default_cache_dir()``)::

    {extractor name}-{key}/meta.json           what the key stands for (name, params, size, ...)
    {extractor name}-{key}/part-{uuid}.npz     hashes (n,) str + features (n, d) float32

Each call that computes something adds one shard, written to a temporary name and moved into
place with ``os.replace``, so a reader never sees half a shard and concurrent writers never
clash (a feature computed twice is stored twice, harmlessly). Many small shards are merged into
one when there are more than ``_MAX_SHARDS``.

Extractors are frozen dataclasses: their fields are their parameters (and, with the image size
and channels, ``FEATURE_VERSION`` and the image decoder's version, the cache key), and they are
cheap to pickle into the worker processes. They see grayscale ``uint8`` images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cxrbench.cores import usable_cores
from cxrbench.files import atomic_output, atomic_write_bytes
from cxrbench.plugins.contract import ImageSet

log = logging.getLogger(__name__)

# Bump when an extractor's output changes for the same parameters: old cache entries are ignored.
FEATURE_VERSION = 1
_MAX_SHARDS = 16
_INLINE_MAX = 64  # fewer images than this are computed in-process: starting workers costs more


# ------------------------------------------------------------------------------ extractors
def to_gray(batch: np.ndarray) -> np.ndarray:
    """``(n, h, w, c)`` uint8 -> ``(n, h, w)`` uint8 (channel mean; the X-rays are gray)."""
    if batch.ndim != 4:
        raise ValueError(f"expected images shaped (n, h, w, channels), got {batch.shape}")
    if batch.shape[3] == 1:
        return np.asarray(batch[..., 0])
    return np.round(np.asarray(batch, dtype=np.float32).mean(axis=3)).astype(np.uint8)


def block_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Downsample a square image to ``size`` by averaging blocks (anti-aliased, deterministic)."""
    from skimage.transform import resize

    h, w = image.shape[:2]
    if h == size and w == size:
        return image.astype(np.float32)
    if h % size == 0 and w % size == 0:  # integer factor: a plain block mean, no resampling
        fh, fw = h // size, w // size
        return image.reshape(size, fh, size, fw).astype(np.float32).mean(axis=(1, 3))
    return resize(image.astype(np.float32), (size, size), order=1, anti_aliasing=True,
                  preserve_range=True).astype(np.float32)


@dataclass(frozen=True)
class FeatureExtractor:
    """Base class: subclasses set ``name`` and implement ``transform_one``.

    ``transform_one`` maps one ``(h, w)`` uint8 image to a 1-D feature vector; its fields are its
    parameters, so two extractors with equal fields compute equal features.
    """

    name: ClassVar[str] = "base"
    # False: computed in the calling process, batch by batch (e.g. a neural network, which
    # worker processes would each have to load; it uses the cores itself).
    parallel: ClassVar[bool] = True

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform(self, batch: np.ndarray) -> np.ndarray:
        """``(n, h, w, c)`` uint8 -> ``(n, d)`` float32."""
        gray = to_gray(batch)
        if len(gray) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([np.asarray(self.transform_one(im), dtype=np.float32) for im in gray])

    def cache_key(self, size: int, channels: int) -> str:
        """Directory name for these parameters and this image size: ``{name}-{16 hex}``."""
        spec = self.spec(size, channels)
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.name}-{digest}"

    def spec(self, size: int, channels: int) -> dict[str, Any]:
        """Everything the features of one image file depend on, besides its content hash."""
        from cxrbench.data.decode import DECODER_VERSION  # a new decoder means new pixels

        return {"name": self.name, "params": self.params(), "size": size, "channels": channels,
                "feature_version": FEATURE_VERSION, "decoder_version": DECODER_VERSION}


@dataclass(frozen=True)
class HOGExtractor(FeatureExtractor):
    """Histogram of oriented gradients (Dalal & Triggs 2005), ``skimage.feature.hog``.

    ``resize`` (pixels) downsamples first, so one plugin input size serves several HOG scales.
    """

    name: ClassVar[str] = "hog"
    cell: int = 16
    orientations: int = 9
    block: int = 2
    resize: int | None = None

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        from skimage.feature import hog

        img = image if self.resize is None else block_mean(image, self.resize)
        return hog(img, orientations=self.orientations,
                   pixels_per_cell=(self.cell, self.cell),
                   cells_per_block=(self.block, self.block), block_norm="L2-Hys",
                   feature_vector=True)


@dataclass(frozen=True)
class LBPExtractor(FeatureExtractor):
    """Uniform local binary pattern histograms (Ojala et al. 2002) on a ``grid`` x ``grid``
    tiling plus the whole image: texture, with coarse position (lung fields vs mediastinum).
    ``resize`` downsamples first: a coarser texture scale, 4x cheaper than a larger radius."""

    name: ClassVar[str] = "lbp"
    points: int = 8
    radius: int = 1
    grid: int = 3
    resize: int | None = None

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        from skimage.feature import local_binary_pattern

        img = image if self.resize is None else np.round(block_mean(image, self.resize))
        codes = local_binary_pattern(img.astype(np.uint8), self.points, self.radius,
                                     method="uniform")
        n_bins = self.points + 2
        tiles = [codes] + _tiles(codes, self.grid)
        return np.concatenate([
            np.bincount(t.astype(np.int64).ravel(), minlength=n_bins)[:n_bins] / t.size
            for t in tiles
        ])


@dataclass(frozen=True)
class IntensityExtractor(FeatureExtractor):
    """Gray-level histogram (``bins``) plus mean, std and deciles on a ``grid`` x ``grid``
    tiling: exposure and where the opaque (white) regions are."""

    name: ClassVar[str] = "intensity"
    bins: int = 32
    grid: int = 4

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        hist = np.bincount((image.astype(np.int64).ravel() * self.bins) // 256,
                           minlength=self.bins) / image.size
        pixels = image.astype(np.float32) / 255.0
        stats = [np.percentile(pixels, np.arange(10, 100, 10)), [pixels.mean(), pixels.std()]]
        for tile in _tiles(pixels, self.grid):
            stats.append([tile.mean(), tile.std()])
        return np.concatenate([hist, *map(np.asarray, stats)])


@dataclass(frozen=True)
class GLCMExtractor(FeatureExtractor):
    """Haralick texture statistics from gray-level co-occurrence matrices
    (``skimage.feature.graycomatrix``), averaged over 4 directions, per distance, on the image
    downsampled to ``resize`` and quantised to ``levels`` gray levels."""

    name: ClassVar[str] = "glcm"
    distances: tuple[int, ...] = (1, 2, 4)
    levels: int = 32
    resize: int = 64
    props: tuple[str, ...] = ("contrast", "dissimilarity", "homogeneity", "energy",
                              "correlation")

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        from skimage.feature import graycomatrix, graycoprops

        small = block_mean(image, self.resize)
        quantised = np.clip(small * self.levels / 256.0, 0, self.levels - 1).astype(np.uint8)
        angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
        glcm = graycomatrix(quantised, distances=list(self.distances), angles=angles,
                            levels=self.levels, symmetric=True, normed=True)
        # (distances, angles) per property -> mean and range over angles, per distance
        out = []
        for prop in self.props:
            values = graycoprops(glcm, prop)
            out.extend([values.mean(axis=1), np.ptp(values, axis=1)])
        return np.nan_to_num(np.concatenate(out))


@dataclass(frozen=True)
class PixelsExtractor(FeatureExtractor):
    """The image itself, downsampled to ``size`` x ``size`` and scaled to [0, 1]."""

    name: ClassVar[str] = "pixels"
    size: int = 32

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        return (block_mean(image, self.size) / 255.0).ravel()


def _tiles(image: np.ndarray, grid: int) -> list[np.ndarray]:
    if grid <= 1:
        return []
    rows = np.array_split(np.arange(image.shape[0]), grid)
    cols = np.array_split(np.arange(image.shape[1]), grid)
    return [image[r[0]:r[-1] + 1, c[0]:c[-1] + 1] for r in rows for c in cols]


# ------------------------------------------------------------------------------ extraction
@dataclass
class ExtractionStats:
    """What ``extract_cached`` did, accumulated over calls (plugins copy it into fit_info_)."""

    hits: int = 0
    misses: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"cache_hits": self.hits, "cache_misses": self.misses,
                "seconds": round(self.seconds, 4),
                "compute_seconds": round(self.compute_seconds, 4)}


def _transform_batch(extractor: FeatureExtractor, batch: np.ndarray) -> np.ndarray:
    return extractor.transform(batch)


def extract(extractor: FeatureExtractor, images: ImageSet | np.ndarray, *,
            n_jobs: int | None = None, batch_size: int | None = None) -> np.ndarray:
    """Features of every image, ``(n, d)`` float32, computed now (no cache).

    ``n_jobs`` worker processes (default: all usable cores) each take one batch at a time, so
    only a batch of a memory-mapped image array is ever in memory; ``n_jobs=1`` is a plain loop.
    """
    array = images.images if isinstance(images, ImageSet) else images
    n = len(array)
    n_jobs = usable_cores() if n_jobs is None else max(1, int(n_jobs))
    if not extractor.parallel:  # it batches (and reports progress) itself
        parts = [extractor.transform(array)]
    elif n_jobs == 1 or n < _INLINE_MAX:
        step = batch_size or 256
        parts = [extractor.transform(np.asarray(array[i:i + step])) for i in range(0, n, step)]
    else:
        from joblib import Parallel, delayed

        # ~4 batches per worker balance the load; capped so that a batch stays a few MB.
        step = batch_size or int(np.clip(np.ceil(n / (4 * n_jobs)), 8, 256))
        parts = Parallel(n_jobs=n_jobs, backend="loky")(
            delayed(_transform_batch)(extractor, np.asarray(array[i:i + step]))
            for i in range(0, n, step)
        )
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def feature_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache dir>/features``; the cache dir defaults to ``cxrbench.data.default_cache_dir()``."""
    if cache_dir is None:
        from cxrbench.data import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / "features"


class FeatureStore:
    """The shards of one extractor at one image size: hash -> feature vector."""

    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        self.directory = directory
        self.spec = spec

    def read(self, wanted: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Features of the ``wanted`` hashes found in the shards and a boolean "found" mask."""
        found = np.zeros(len(wanted), dtype=bool)
        out: np.ndarray | None = None
        position: dict[str, list[int]] = {}
        for i, h in enumerate(wanted):
            position.setdefault(h, []).append(i)
        for shard in sorted(self.directory.glob("part-*.npz")):
            if found.all():
                break
            hashes, feats = _read_shard(shard)
            if hashes is None:
                continue
            rows, targets = [], []
            for row, h in enumerate(hashes.tolist()):
                for i in position.get(h, ()):
                    if not found[i]:
                        rows.append(row)
                        targets.append(i)
            if not rows:
                continue
            if out is None:
                out = np.zeros((len(wanted), feats.shape[1]), dtype=np.float32)
            elif feats.shape[1] != out.shape[1]:
                log.warning("ignoring feature shard %s: width %d, expected %d",
                            shard, feats.shape[1], out.shape[1])
                continue
            out[targets] = feats[rows]
            found[targets] = True
        return out, found

    def write(self, hashes: Sequence[str], feats: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / "meta.json"
        if not meta.exists():
            atomic_write_bytes(meta, json.dumps(self.spec, indent=1, sort_keys=True).encode())
        _write_shard(self.directory / f"part-{uuid.uuid4().hex}.npz", hashes, feats)
        shards = sorted(self.directory.glob("part-*.npz"))
        if len(shards) > _MAX_SHARDS:
            self._compact(shards)

    def _compact(self, shards: list[Path]) -> None:
        """Merge shards into one: write the merged shard first, then delete the merged ones."""
        seen: dict[str, np.ndarray] = {}
        merged_from = []
        for shard in shards:
            hashes, feats = _read_shard(shard)
            if hashes is None:
                continue
            merged_from.append(shard)
            for h, f in zip(hashes.tolist(), feats, strict=True):
                seen.setdefault(h, f)
        if not seen:
            return
        _write_shard(self.directory / f"part-{uuid.uuid4().hex}.npz", list(seen),
                     np.stack(list(seen.values())))
        for shard in merged_from:
            shard.unlink(missing_ok=True)


def _write_shard(path: Path, hashes: Sequence[str], feats: np.ndarray) -> None:
    with atomic_output(path) as handle:
        np.savez(handle, hashes=np.asarray(hashes, dtype=str),
                 features=np.asarray(feats, dtype=np.float32))


def _read_shard(path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["hashes"], data["features"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        # Deleted by a concurrent compaction, or damaged: it is only a cache, so recompute.
        log.warning("ignoring unreadable feature shard %s: %s", path, err)
        return None, np.zeros((0, 0), dtype=np.float32)


def _image_hashes(images: ImageSet | np.ndarray) -> list[str]:
    if isinstance(images, ImageSet):
        hashes = [str(h) for h in images.content_hashes]
        if all(hashes):
            return hashes
        # A missing content hash falls back to the pixels: slower to hash, never wrong.
        return [h or hashlib.sha256(np.ascontiguousarray(im)).hexdigest()
                for h, im in zip(hashes, images.images, strict=True)]
    return [hashlib.sha256(np.ascontiguousarray(im)).hexdigest() for im in images]


def extract_cached(extractor: FeatureExtractor, images: ImageSet | np.ndarray, *,
                   cache_dir: str | Path | None = None, n_jobs: int | None = None,
                   stats: ExtractionStats | None = None) -> np.ndarray:
    """Features of every image, ``(n, d)`` float32, read from the feature cache when present.

    The cache lives under ``cache_dir``, else the ImageSet's own ``cache_dir``, else the default
    cache folder. An ``ImageSet`` is keyed by its ``content_hashes`` (the file's sha256: the same
    file decoded at the same size gives the same pixels); a bare array by the sha256 of each
    image's pixels.
    Missing ones are computed with ``extract`` (parallel) and added to the cache. ``stats``, if
    given, accumulates hits, misses and seconds spent.
    """
    start = time.perf_counter()
    if cache_dir is None and isinstance(images, ImageSet):
        cache_dir = images.cache_dir
    array = images.images if isinstance(images, ImageSet) else images
    if array.ndim != 4:
        raise ValueError(f"expected images shaped (n, h, w, channels), got {array.shape}")
    size, channels = int(array.shape[1]), int(array.shape[3])
    store = FeatureStore(feature_cache_dir(cache_dir) / extractor.cache_key(size, channels),
                         extractor.spec(size, channels))
    hashes = _image_hashes(images)
    feats, found = store.read(hashes)
    missing = np.flatnonzero(~found)
    compute_s = 0.0
    if len(missing):
        t0 = time.perf_counter()
        # Contiguous misses (the usual cold case) stay a view of a memmap, not a copy.
        contiguous = missing[-1] - missing[0] + 1 == len(missing)
        subset = array[missing[0]:missing[-1] + 1] if contiguous else array[missing]
        computed = extract(extractor, subset, n_jobs=n_jobs)
        compute_s = time.perf_counter() - t0
        if feats is None or feats.shape[1] != computed.shape[1]:
            feats = np.zeros((len(array), computed.shape[1]), dtype=np.float32)
            if found.any():  # stale width in the cache: recompute everything instead
                computed = extract(extractor, array, n_jobs=n_jobs)
                missing = np.arange(len(array))
        feats[missing] = computed
        try:
            store.write([hashes[i] for i in missing], computed)
        except OSError as err:  # a read-only or full disk must not fail a benchmark run
            log.warning("could not write the feature cache in %s: %s", store.directory, err)
    elif feats is None:
        feats = np.zeros((0, 0), dtype=np.float32)
    if stats is not None:
        stats.hits += int(found.sum())
        stats.misses += len(missing)
        stats.compute_seconds += compute_s
        stats.seconds += time.perf_counter() - start
    return feats
