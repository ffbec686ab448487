"""Saliency maps (occlusion, Grad-CAM) and the share outside the central thorax region, on
constructed images and models whose answer is known (fast: no training)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.report.saliency import (
    FALLBACK_BOX,
    ThoraxRegion,
    display_scale,
    occlusion_maps,
    outside_share,
    patch_positions,
    thorax_region,
)

SIZE = 32
CORNER = (slice(0, 8), slice(24, 32))  # the top-right corner: outside any thorax box


def _noise(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 120, size=(n, SIZE, SIZE, channels)).astype(np.uint8)


def _corner_score(images: np.ndarray) -> np.ndarray:
    """A 'model' that only looks at the top-right corner: brighter there, more pneumonia."""
    corner = images[:, CORNER[0], CORNER[1]].astype(float).mean(axis=(1, 2, 3))
    return 1 / (1 + np.exp(-(corner - 120) / 10))


def test_occlusion_finds_the_region_a_model_depends_on():
    images = _noise(3)
    images[:, CORNER[0], CORNER[1]] = 230  # the planted signal: called pneumonia
    calls = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return _corner_score(batch)

    maps, p = occlusion_maps(predict, images, 0.5)
    assert calls == [3 * 50]  # all copies of the images in one call (49 occluded + original)
    np.testing.assert_allclose(p, _corner_score(images))
    for saliency in maps:
        peak = np.unravel_index(np.argmax(saliency), saliency.shape)
        assert peak[0] < 8 and peak[1] >= 24, peak
        assert saliency[20:, :12].max() == 0  # occluding far away changes nothing
        region = ThoraxRegion((0.25, 1.0, 0.0, 0.75), True)  # leaves the corner outside
        # Nearly all outside: patches overlapping the corner reach a little beyond it.
        assert outside_share(saliency, region) > 0.95


def test_occlusion_is_evidence_for_the_predicted_class():
    """An image called normal (dark corner): hiding the corner with the image's mean raises
    p, which is evidence for 'normal': positive there too."""
    images = _noise(1)
    images[:, CORNER[0], CORNER[1]] = 10
    maps, p = occlusion_maps(_corner_score, images, 0.5)
    assert p[0] < 0.5
    assert maps[0][CORNER].mean() > 0 and maps[0].min() >= -1e-12


def test_occlusion_groups_copies_by_the_memory_bound():
    calls = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return _corner_score(batch)

    occlusion_maps(predict, _noise(5), 0.5, max_copies=100)
    assert calls == [100, 100, 50]


def test_patch_positions_cover_every_pixel():
    for size, patch in ((32, 8), (224, 56), (50, 13)):
        starts = patch_positions(size, patch)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s:s + patch] = True
        assert covered.all() and starts[0] == 0 and starts[-1] == size - patch


def test_outside_share_on_constructed_maps():
    region = ThoraxRegion((0.25, 0.75, 0.25, 0.75), True)  # the central 16 x 16 of 32 x 32
    inside = np.zeros((SIZE, SIZE))
    inside[8:24, 8:24] = 1
    assert outside_share(inside, region) == 0.0
    assert outside_share(1 - inside, region) == 1.0
    assert outside_share(np.ones((SIZE, SIZE)), region) == pytest.approx(region.outside_area)
    assert region.outside_area == pytest.approx(0.75)
    mixed = inside * 3 - (1 - inside)  # negative (contrary) evidence outside is not counted
    assert outside_share(mixed, region) == 0.0
    half = inside.copy()
    half[0, :4] = 64 / 4  # as much mass on 4 border pixels as on the 256 inside
    assert outside_share(half, region) == pytest.approx(64 / (64 + 256))
    assert outside_share(np.zeros((SIZE, SIZE)), region) is None
    assert outside_share(-np.ones((SIZE, SIZE)), region) is None


def test_thorax_region_falls_back_to_the_fixed_box_where_thorax_box_fails():
    flat = np.full((64, 64), 128, np.uint8)  # no lungs to find
    region = thorax_region(flat)
    assert not region.found and region.box == FALLBACK_BOX
    assert region.outside_area == pytest.approx(1 - 0.8 * 0.8)


def test_thorax_region_is_the_thorax_crop_box_on_a_chest_like_image():
    from chest_helpers import chest  # a synthetic film with lungs and a spine

    from cxrbench.plugins.preprocessing import thorax_box

    gray = chest(128)
    box, found = thorax_box(gray)
    region = thorax_region(gray)
    assert found and region.found and region.box == box


def test_display_scale():
    m = np.array([[-2.0, 0.0], [1.0, 4.0]])
    np.testing.assert_allclose(display_scale(m), [[0, 0], [0.25, 1]])
    assert not display_scale(-m * 0).any()


def test_overlay_is_a_png_of_the_asked_size():
    import base64
    import io

    from PIL import Image

    from cxrbench.report.saliency_figures import overlay_data_uri

    gray = np.full((SIZE, SIZE), 100, np.uint8)
    heat = np.zeros((SIZE, SIZE))
    heat[:8, :8] = 1
    uri = overlay_data_uri(gray, heat, (0.1, 0.9, 0.1, 0.9), size=64)
    assert uri.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    pixels = np.asarray(image)
    assert image.size == (64, 64)
    # Where the map is 0 the film shows through unchanged (gray); where it is 1, coloured.
    assert tuple(pixels[40, 30]) == (100, 100, 100)
    corner = pixels[2:10, 2:10].reshape(-1, 3).astype(int)
    assert (corner.max(axis=1) - corner.min(axis=1)).max() > 50


def test_the_cli_help_states_the_sample_default():
    import argparse

    from cxrbench.cli import report
    from cxrbench.report.saliency_context import DEFAULT_SAMPLE

    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["report"]
    action = next(a for a in sub._actions if a.dest == "saliency_sample")
    assert f"(default: {DEFAULT_SAMPLE})" in action.help


# --- Grad-CAM on hand-built Keras networks ---------------------------------------------------
keras = pytest.importorskip("keras")


def _keras_plugin(model: Any, channels: int = 1) -> Plugin:
    from cxrbench.plugins.keras_common import KerasPlugin

    class HandBuilt(KerasPlugin):
        card = ModelCard(name="hand_built", family="cnn", framework="keras",
                         description="test-only", input_size=SIZE, channels=channels)

    plugin = HandBuilt(input_size=SIZE)
    plugin.model_ = model
    plugin.is_fitted_ = True
    return plugin


def _brightness_network(bias: float, policy: str = "float32") -> Any:
    """Conv 1x1 (identity) -> global average -> sigmoid(10 * mean - bias): Grad-CAM's map is
    the image itself, so it peaks where the image is bright. Saved and loaded as a run saves
    it (a functional model's inputs then are a list of one)."""
    from keras import layers

    from cxrbench.plugins.persistence import load_keras, save_keras

    inputs = keras.Input((SIZE, SIZE, 1))
    conv = layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", dtype=policy)
    x = layers.GlobalAveragePooling2D(dtype=policy)(conv(inputs))
    outputs = layers.Dense(1, activation="sigmoid", kernel_initializer=keras.initializers
                           .Constant(10.0), bias_initializer=keras.initializers
                           .Constant(-bias), dtype=policy)(x)
    with tempfile.TemporaryDirectory() as folder:
        path = save_keras(keras.Model(inputs, outputs), Path(folder) / "m.keras")
        return load_keras(path)


# bfloat16: what cnn_seed and cnn_strong train in on CPUs with avx512_bf16 (precision="auto").
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_gradcam_peaks_where_the_network_finds_its_evidence(policy):
    from cxrbench.report.gradcam import gradcam_maps

    images = np.zeros((2, SIZE, SIZE, 1), np.uint8)
    images[:, CORNER[0], CORNER[1]] = 255
    plugin = _keras_plugin(_brightness_network(0.0, policy))  # p > 0.5: called pneumonia
    maps = gradcam_maps(plugin, images, 0.5)
    assert maps.shape == (2, SIZE, SIZE) and maps.max() == pytest.approx(1.0)
    for cam in maps:
        assert cam[CORNER].mean() > 0.9 and cam[16:, :16].max() < 0.05
    # Called normal (the bias pushes p under the threshold): the bright corner is evidence
    # *against* normal, so the map for the predicted class is empty there.
    normal = _keras_plugin(_brightness_network(50.0, policy))
    assert plugin.predict_proba(_images(images)).min() > 0.5
    assert normal.predict_proba(_images(images)).max() < 0.5
    assert gradcam_maps(normal, images, 0.5).max() == 0


def _images(images: np.ndarray) -> ImageSet:
    ids = np.asarray([str(i) for i in range(len(images))])
    return ImageSet(images, None, ids, ids, ids)


def test_gradcam_refuses_what_it_cannot_explain():
    from keras import layers

    from cxrbench.report.gradcam import GradCamUnavailable, gradcam_maps

    images = _noise(2)

    class NotKeras(Plugin):
        card = ModelCard(name="not_keras", family="baseline", framework="numpy",
                         description="test-only", input_size=SIZE, channels=1)

    with pytest.raises(GradCamUnavailable, match="not a Keras network"):
        gradcam_maps(NotKeras(), images, 0.5)
    inputs = keras.Input((SIZE, SIZE, 1))
    a = layers.Conv2D(2, 3, padding="same")(inputs)
    b = layers.Conv2D(2, 1)(inputs)
    x = layers.GlobalAveragePooling2D()(layers.Add()([a, b]))
    branched = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    with pytest.raises(GradCamUnavailable, match="not a chain"):
        gradcam_maps(_keras_plugin(branched), images, 0.5)
    flat = keras.Sequential([keras.Input((SIZE, SIZE, 1)), layers.Flatten(),
                             layers.Dense(1, activation="sigmoid")])
    with pytest.raises(GradCamUnavailable, match="no layer with a spatial output"):
        gradcam_maps(_keras_plugin(flat), images, 0.5)
