"""Image standardisation (intensity step, thorax crop) and how plugins turn it on."""

from __future__ import annotations

import numpy as np
import pytest
from chest_helpers import chest

from cxrbench.plugins import preprocessing as pre
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, standardise_images
from cxrbench.plugins.features import ExtractionStats, HOGExtractor, extract_cached
from cxrbench.plugins.preprocessing import Preprocessing


def image_set(images: np.ndarray, labels: np.ndarray | None = None) -> ImageSet:
    n = len(images)
    ids = np.array([f"img{i}" for i in range(n)])
    return ImageSet(images, labels if labels is not None else np.arange(n) % 2, ids,
                    np.array([f"hash{i}" for i in range(n)]), ids)


# ------------------------------------------------------------------------------ thorax box
def test_thorax_box_frames_the_lungs_with_a_margin():
    box, found = pre.thorax_box(chest(top=0.2, bottom=0.75, left=0.18, right=0.82))
    top, bottom, left, right = box
    assert found
    # Inside the image, containing the lung fields, with about the 8 % margin around them.
    assert 0.05 <= top <= 0.2 and 0.75 <= bottom <= 0.9
    assert 0.02 <= left <= 0.18 and 0.82 <= right <= 0.98


def test_thorax_box_follows_lungs_that_sit_elsewhere():
    low = pre.thorax_box(chest(top=0.35, bottom=0.85))[0]
    high = pre.thorax_box(chest(top=0.1, bottom=0.6))[0]
    assert low[0] > high[0] + 0.1 and low[1] > high[1] + 0.1


def test_a_flat_image_keeps_the_whole_frame():
    box, found = pre.thorax_box(np.full((64, 64), 128, np.uint8))
    assert box == (0.0, 1.0, 0.0, 1.0) and not found


def test_crop_to_box_keeps_the_size_and_enlarges_the_box():
    img = chest()
    out = pre.crop_to_box(img, (0.25, 0.75, 0.25, 0.75))
    assert out.shape == img.shape and out.dtype == np.uint8
    # The centre of the crop is the centre of the image; a corner is the box's corner.
    assert abs(int(out[64, 64]) - int(img[64, 64])) < 30
    assert abs(int(out[0, 0]) - int(img[32, 32])) < 30


# ------------------------------------------------------------------------------ intensity
def test_percentile_stretch_spans_the_range():
    rng = np.random.default_rng(0)
    img = rng.integers(80, 120, (64, 64)).astype(np.uint8)
    out = pre.percentile_stretch(img)
    assert np.percentile(out, 1) <= 5 and np.percentile(out, 99) >= 250
    assert np.array_equal(pre.percentile_stretch(np.full((8, 8), 7, np.uint8)),
                          np.full((8, 8), 7, np.uint8))


def test_clahe_raises_local_contrast():
    rng = np.random.default_rng(1)
    img = (100 + rng.normal(0, 3, (64, 64))).clip(0, 255).astype(np.uint8)
    out = pre.clahe(img)
    assert out.shape == img.shape and out.dtype == np.uint8 and out.std() > 2 * img.std()


def test_histogram_matching_takes_the_reference_distribution():
    rng = np.random.default_rng(2)
    dark = rng.integers(0, 100, (64, 64)).astype(np.uint8)
    bright = rng.integers(150, 250, (64, 64)).astype(np.uint8)
    reference = pre.image_quantiles(bright)
    matched = pre.match_histogram(dark, reference)
    assert abs(np.median(matched) - np.median(bright)) < 6
    assert np.abs(pre.image_quantiles(matched) - reference).mean() < 6
    # Monotone: the order of gray levels is kept.
    order = np.argsort(dark.ravel(), kind="stable")
    assert np.all(np.diff(matched.ravel()[order].astype(int)) >= 0)


def test_reference_is_a_monotone_mean_of_training_quantiles():
    imgs = np.stack([chest(seed=s) for s in range(4)])[..., None]
    spec = Preprocessing(intensity="histmatch")
    ref = pre.fit_reference(spec, imgs)
    assert ref.shape == (256,) and np.all(np.diff(ref) >= 0)
    expected = np.mean([pre.image_quantiles(im[..., 0]) for im in imgs], axis=0)
    assert np.allclose(ref, np.maximum.accumulate(expected))
    assert pre.fit_reference(Preprocessing(intensity="clahe"), imgs) is None


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown intensity standardisation 'gamma'"):
        Preprocessing(intensity="gamma")


# ------------------------------------------------------------------------------ batches, hashes
def test_transform_keeps_shape_and_channels_and_counts_fallbacks():
    imgs = np.stack([chest(seed=0), np.full((128, 128), 90, np.uint8)])
    rgb = np.repeat(imgs[..., None], 3, axis=3)
    out, missed = pre.transform_images(Preprocessing("percentile", True), rgb, None)
    assert out.shape == rgb.shape and missed == 1
    assert np.array_equal(out[..., 0], out[..., 2])


def test_worker_processes_give_the_same_images(monkeypatch):
    imgs = np.stack([chest(size=48, seed=s) for s in range(40)])[..., None]
    spec = Preprocessing("clahe", True)
    serial, _ = pre.transform_images(spec, imgs, None)
    monkeypatch.setattr(pre, "_PARALLEL_MIN", 8)
    monkeypatch.setattr(pre, "usable_cores", lambda: 2)
    parallel, _ = pre.transform_images(spec, imgs, None)
    assert np.array_equal(serial, parallel)


def test_derived_hashes_depend_on_settings_and_reference():
    hashes = np.array(["a", "b", ""])
    clahe = pre.derived_hashes(hashes, Preprocessing("clahe").digest(None))
    assert clahe[2] == "" and len(set(clahe[:2])) == 2 and not set(clahe) & {"a", "b"}
    again = pre.derived_hashes(hashes, Preprocessing("clahe").digest(None))
    assert np.array_equal(clahe, again)
    cropped = pre.derived_hashes(hashes, Preprocessing("clahe", True).digest(None))
    assert not set(cropped[:2]) & set(clahe[:2])
    ref1, ref2 = np.linspace(0, 255, 256), np.linspace(10, 245, 256)
    spec = Preprocessing("histmatch")
    assert spec.digest(ref1) != spec.digest(ref2)


# ------------------------------------------------------------------------------ in a plugin
class Recorder(Plugin):
    """Remembers what it was given; predicts brightness."""

    card = ModelCard(name="preprocessing_recorder", family="baseline", framework="numpy",
                     description="test", input_size=64, channels=1, reference="tests")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.seen_ = {"train": train, "val": val}
        self.fit_info_ = {"own": 1}  # replaces the dict, as many plugins do

    def _predict(self, images: ImageSet) -> np.ndarray:
        self.seen_["predict"] = images
        return np.asarray(images.images, float).mean(axis=(1, 2, 3)) / 255

    # Names a plugin may well use for its own helpers (the Keras plugins have _preprocess):
    # the contract's standardisation must not call them.
    def _preprocess(self) -> None:
        raise AssertionError("the contract called the plugin's own _preprocess")

    _standardise = _standardise_fit = _standardisation = _preprocess


def sets(n: int = 6) -> tuple[ImageSet, ImageSet]:
    imgs = np.stack([chest(size=64, seed=s) for s in range(n)])[..., None]
    imgs.setflags(write=False)
    return image_set(imgs), image_set(imgs[:4].copy())


def test_off_by_default_hands_over_the_same_images():
    train, val = sets()
    plugin = Recorder().fit(train, val)
    assert plugin.seen_["train"] is train and plugin.seen_["val"] is val
    assert "preprocessing" not in plugin.fit_info_
    assert not hasattr(plugin, "intensity_reference_")


@pytest.mark.parametrize("intensity", ["percentile", "clahe", "histmatch"])
def test_every_method_reaches_fit_and_predict_with_new_hashes(intensity):
    train, val = sets()
    plugin = Recorder(intensity=intensity, thorax_crop=True).fit(train, val)
    seen = plugin.seen_["train"]
    assert seen.images.shape == train.images.shape
    assert not np.array_equal(seen.images, train.images)
    assert not set(seen.content_hashes) & set(train.content_hashes)
    info = plugin.fit_info_["preprocessing"]
    assert plugin.fit_info_["own"] == 1
    assert info["intensity"] == intensity and info["thorax_crop"] is True
    assert set(info["crop_fallback"]) == {"train", "val"}
    plugin.predict_proba(val.without_labels())
    assert np.array_equal(plugin.seen_["predict"].images, plugin.seen_["val"].images)


def test_histmatch_reference_comes_from_training_images_only():
    train, val = sets()
    a = Recorder(intensity="histmatch").fit(train, val)
    other_val = image_set(np.full((4, 64, 64, 1), 250, np.uint8))
    b = Recorder(intensity="histmatch").fit(train, other_val)
    assert np.array_equal(a.intensity_reference_, b.intensity_reference_)
    assert np.allclose(a.intensity_reference_,
                       pre.fit_reference(Preprocessing("histmatch"), train.images))


def test_feature_cache_never_serves_original_features_for_standardised_images(tmp_path):
    train, _ = sets()
    train = ImageSet(train.images, train.labels, train.ids, train.content_hashes, train.groups,
                     cache_dir=tmp_path)
    extractor = HOGExtractor(cell=16)
    original = extract_cached(extractor, train)
    standardised, _ = standardise_images(Recorder(intensity="clahe"), train)
    stats = ExtractionStats()
    feats = extract_cached(extractor, standardised, stats=stats)
    assert stats.hits == 0 and stats.misses == len(train)
    assert not np.allclose(feats, original)
    stats = ExtractionStats()
    again, _ = standardise_images(Recorder(intensity="clahe"), train)
    extract_cached(extractor, again, stats=stats)
    assert stats.hits == len(train)  # the same settings find their own features again


def test_a_suite_value_is_checked():
    from cxrbench.plugins.contract import ParameterError
    from cxrbench.plugins.registry import create_model

    assert create_model("hog_svm", intensity="clahe", thorax_crop=True).intensity == "clahe"
    with pytest.raises(ParameterError, match="intensity"):
        create_model("hog_svm", intensity="gamma")
