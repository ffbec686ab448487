"""Feature extractors and the content-addressed feature cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from skimage.feature import hog

from cxrbench.plugins import features
from cxrbench.plugins.conformance import make_check_data
from cxrbench.plugins.contract import ImageSet
from cxrbench.plugins.features import (
    ExtractionStats,
    FeatureExtractor,
    GLCMExtractor,
    HOGExtractor,
    IntensityExtractor,
    LBPExtractor,
    PixelsExtractor,
    extract,
    extract_cached,
    feature_cache_dir,
    to_gray,
)


@pytest.fixture(scope="module")
def data():
    return make_check_data(size=32, n_train=80, n_val=8, n_test=8)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@dataclass(frozen=True)
class CountingExtractor(FeatureExtractor):
    """Mean and std of each image; counts how many images it was asked to transform."""

    name: ClassVar[str] = "counting"
    calls: ClassVar[list[int]] = []
    offset: float = 0.0

    def transform_one(self, image: np.ndarray) -> np.ndarray:
        CountingExtractor.calls.append(1)
        return np.array([image.mean() + self.offset, image.std()])


@pytest.fixture(autouse=True)
def _reset_counter():
    CountingExtractor.calls.clear()


ALL_EXTRACTORS = [
    HOGExtractor(cell=8), HOGExtractor(cell=4, resize=16), LBPExtractor(),
    LBPExtractor(resize=16), IntensityExtractor(), GLCMExtractor(resize=16), PixelsExtractor(8),
]


@pytest.mark.parametrize("extractor", ALL_EXTRACTORS, ids=repr)
def test_extractor_gives_finite_fixed_length_vectors(extractor, data):
    feats = extractor.transform(data.train.images[:6])
    assert feats.dtype == np.float32
    assert feats.shape[0] == 6 and feats.shape[1] > 0
    assert np.isfinite(feats).all()
    # deterministic, and independent of the batch an image is in
    np.testing.assert_array_equal(feats[2:3], extractor.transform(data.train.images[2:3]))


def test_hog_extractor_matches_skimage(data):
    image = data.train.images[0, ..., 0]
    expected = hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    got = HOGExtractor(cell=8).transform(data.train.images[:1])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_rgb_and_gray_give_the_same_features(data):
    gray = data.train.images[:4]
    rgb = np.repeat(gray, 3, axis=3)
    np.testing.assert_array_equal(to_gray(rgb), gray[..., 0])
    np.testing.assert_array_equal(HOGExtractor(cell=8).transform(rgb),
                                  HOGExtractor(cell=8).transform(gray))


def test_lbp_histograms_are_distributions(data):
    feats = LBPExtractor(points=8, radius=1, grid=2).transform(data.train.images[:3])
    per_tile = feats.reshape(3, 5, 10)  # whole image + 2 x 2 tiles, P + 2 bins each
    np.testing.assert_allclose(per_tile.sum(axis=2), 1.0, rtol=1e-5)


def test_cache_key_depends_on_params_and_image_shape():
    base = HOGExtractor(cell=8)
    assert base.cache_key(32, 1) == HOGExtractor(cell=8).cache_key(32, 1)
    assert base.cache_key(32, 1) != HOGExtractor(cell=16).cache_key(32, 1)
    assert base.cache_key(32, 1) != base.cache_key(64, 1)
    assert base.cache_key(32, 1) != base.cache_key(32, 3)
    assert base.cache_key(32, 1).startswith("hog-")
    assert base.cache_key(32, 1) != LBPExtractor().cache_key(32, 1)


def test_parallel_extraction_equals_a_plain_loop(data):
    images = data.train.images  # 80 images: above the in-process threshold, so workers run
    assert len(images) >= features._INLINE_MAX
    serial = extract(HOGExtractor(cell=8), images, n_jobs=1)
    parallel = extract(HOGExtractor(cell=8), images, n_jobs=2, batch_size=16)
    np.testing.assert_array_equal(serial, parallel)


def test_second_extraction_reads_the_cache_instead_of_computing(data, cache):
    stats = ExtractionStats()
    cold = extract_cached(CountingExtractor(), data.train, cache_dir=cache, n_jobs=1,
                          stats=stats)
    assert len(CountingExtractor.calls) == len(data.train)
    assert (stats.hits, stats.misses) == (0, len(data.train))
    CountingExtractor.calls.clear()
    warm = extract_cached(CountingExtractor(), data.train, cache_dir=cache, n_jobs=1,
                          stats=stats)
    assert CountingExtractor.calls == []
    assert (stats.hits, stats.misses) == (len(data.train), len(data.train))
    np.testing.assert_array_equal(cold, warm)


def test_only_missing_images_are_computed_and_rows_keep_their_order(data, cache):
    extract_cached(CountingExtractor(), data.train.subset(np.arange(0, 10)), cache_dir=cache,
                   n_jobs=1)
    CountingExtractor.calls.clear()
    order = np.array([12, 3, 11, 0, 15])  # 3 cached, 3 new (12, 11, 15), shuffled
    got = extract_cached(CountingExtractor(), data.train.subset(order), cache_dir=cache,
                         n_jobs=1)
    assert len(CountingExtractor.calls) == 3
    np.testing.assert_allclose(got, CountingExtractor().transform(data.train.images[order]))


def test_parameters_are_part_of_the_key(data, cache):
    a = extract_cached(CountingExtractor(offset=0.0), data.val, cache_dir=cache, n_jobs=1)
    b = extract_cached(CountingExtractor(offset=1.0), data.val, cache_dir=cache, n_jobs=1)
    np.testing.assert_allclose(b[:, 0], a[:, 0] + 1.0)
    assert len(list((cache / "features").iterdir())) == 2


def test_cache_lives_under_the_cache_dir_features_folder(data, cache, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(cache))
    assert feature_cache_dir() == cache / "features"
    extract_cached(CountingExtractor(), data.val, n_jobs=1)
    (folder,) = (cache / "features").iterdir()
    assert folder.name.startswith("counting-")
    assert (folder / "meta.json").exists()
    assert len(list(folder.glob("part-*.npz"))) == 1
    assert not list(folder.glob(".*tmp")), "temporary files must not be left behind"


def test_a_damaged_shard_is_ignored_and_recomputed(data, cache, caplog):
    extract_cached(CountingExtractor(), data.val, cache_dir=cache, n_jobs=1)
    (shard,) = (cache / "features").glob("*/part-*.npz")
    shard.write_bytes(b"not a zip file")
    CountingExtractor.calls.clear()
    got = extract_cached(CountingExtractor(), data.val, cache_dir=cache, n_jobs=1)
    assert len(CountingExtractor.calls) == len(data.val)
    assert "unreadable feature shard" in caplog.text
    np.testing.assert_allclose(got, CountingExtractor().transform(data.val.images))


def test_many_shards_are_compacted(data, cache, monkeypatch):
    monkeypatch.setattr(features, "_MAX_SHARDS", 3)
    for i in range(6):
        extract_cached(CountingExtractor(), data.train.subset(np.array([i])), cache_dir=cache,
                       n_jobs=1)
    shards = list((cache / "features").glob("*/part-*.npz"))
    assert len(shards) <= 3
    CountingExtractor.calls.clear()
    extract_cached(CountingExtractor(), data.train.subset(np.arange(6)), cache_dir=cache,
                   n_jobs=1)
    assert CountingExtractor.calls == [], "compaction lost cached rows"


def test_missing_content_hashes_fall_back_to_pixels(data, cache):
    blank = ImageSet(data.val.images, data.val.labels, data.val.ids,
                     np.array([""] * len(data.val)), data.val.groups)
    first = extract_cached(CountingExtractor(), blank, cache_dir=cache, n_jobs=1)
    CountingExtractor.calls.clear()
    again = extract_cached(CountingExtractor(), data.val.images, cache_dir=cache, n_jobs=1)
    assert CountingExtractor.calls == []  # a bare array is keyed by pixels too: same keys
    np.testing.assert_array_equal(first, again)


def test_memmapped_read_only_images(tmp_path, data, cache):
    path = tmp_path / "images.npy"
    np.save(path, data.train.images)
    mm = np.load(path, mmap_mode="r")
    got = extract_cached(HOGExtractor(cell=8), mm, cache_dir=cache, n_jobs=2)
    np.testing.assert_array_equal(got, extract(HOGExtractor(cell=8), data.train.images, n_jobs=1))


def test_empty_image_set(cache):
    empty = np.zeros((0, 16, 16, 1), dtype=np.uint8)
    assert extract_cached(HOGExtractor(cell=4), empty, cache_dir=cache).shape[0] == 0


def test_bad_shape_is_a_clear_error(cache):
    with pytest.raises(ValueError, match=r"\(n, h, w, channels\)"):
        extract_cached(HOGExtractor(), np.zeros((4, 16, 16), dtype=np.uint8), cache_dir=cache)
