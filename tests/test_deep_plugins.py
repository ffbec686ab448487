"""The deep plugins (mlp, cnn, transfer families): each trains one short epoch on a tiny set.

Parametrized over the registry, so a new deep plugin is tested without a new test. Sizes are
tiny (32 px, 16 training images): these check the wiring, not the accuracy; the real-data
numbers come from ``cxrbench run`` (see the plugin docstrings and the results).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from cxrbench.plugins.contract import ImageSet, Plugin
from cxrbench.plugins.keras_common import KerasPlugin
from cxrbench.plugins.registry import create_model, get_model_class, list_models

keras = pytest.importorskip("keras")

# Every registered plugin built on the shared Keras machinery (hog_mlp, an sklearn MLP on HOG
# features, is in the mlp family but not here).
DEEP = [name for name in list_models() if issubclass(get_model_class(name), KerasPlugin)]
SIZE = 32
# One short epoch, run eagerly (graph tracing costs 5x the training at this size); transfer
# plugins fine-tune from random weights (the ImageNet files are tested separately, when
# $CXRBENCH_WEIGHTS_DIR has them). test_graph_mode_training covers the default compiled path.
TINY: dict[str, Any] = {"epochs": 1, "batch_size": 8, "input_size": SIZE, "run_eagerly": True}
TINY_TRANSFER: dict[str, Any] = {**TINY, "head_epochs": 0, "weights": None}


def tiny_params(name: str, **extra: Any) -> dict[str, Any]:
    family = get_model_class(name).card.family
    return {**(TINY_TRANSFER if family == "transfer" else TINY), **extra}


def tiny_set(n: int, channels: int, seed: int, size: int = SIZE) -> ImageSet:
    """Noise, with a bright square on "pneumonia" images: learnable in one epoch."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 100, size=(n, size, size, channels)).astype(np.uint8)
    images[labels == 1, size // 4: size // 2, size // 4: size // 2] += 120
    images.setflags(write=False)  # plugins get read-only (memmap) arrays
    ids = np.array([f"s{seed}_{i}" for i in range(n)])
    return ImageSet(images, labels, ids, ids, ids)


def data(name: str) -> tuple[ImageSet, ImageSet, ImageSet]:
    channels = get_model_class(name).card.channels
    return tiny_set(16, channels, 0), tiny_set(8, channels, 1), tiny_set(8, channels, 2)


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Plugin, np.ndarray]]:
    """Every deep plugin fitted once (seed 0) and its test probabilities."""
    out = {}
    for name in DEEP:
        train, val, test = data(name)
        plugin = create_model(name, seed=0, **tiny_params(name)).fit(train, val)
        out[name] = (plugin, plugin.predict_proba(test.without_labels()))
    return out


def test_the_deep_families_are_registered() -> None:
    assert {"mlp_baseline", "cnn_seed", "cnn_strong", "transfer_mobilenetv2",
            "transfer_mobilenet", "transfer"} <= set(DEEP)


def test_listing_models_does_not_import_a_framework() -> None:
    code = ("import sys; from cxrbench.plugins.registry import list_models; list_models(); "
            "import cxrbench.plugins.keras_common, cxrbench.plugins.weights; "
            "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEP)
def test_fits_one_epoch_and_predicts_probabilities(
    name: str, fitted: dict[str, tuple[Plugin, np.ndarray]]
) -> None:
    plugin, proba = fitted[name]
    assert proba.shape == (8,) and np.all(np.isfinite(proba))
    assert np.all((proba >= 0) & (proba <= 1))
    info = plugin.fit_info_
    assert info["n_params"] > 0 and info["image_size"] == SIZE
    assert len(info["history"]) == info["epochs_run"] >= 1
    epoch = info["history"][0]
    assert set(epoch) >= {"epoch", "loss", "val_auc", "lr", "seconds"}
    assert np.isfinite(epoch["loss"]) and epoch["seconds"] > 0
    assert info["backend"] == keras.backend.backend() and info["device"]


@pytest.mark.parametrize("name", DEEP)
def test_params_round_trip_and_name_the_input_size(name: str) -> None:
    plugin = create_model(name, seed=3)
    params = plugin.get_params()
    assert {"epochs", "batch_size", "input_size", "learning_rate", "precision",
            "loader_workers", "seed"} <= set(params)
    assert params["input_size"] == plugin.card.input_size  # what the harness decodes at
    assert type(plugin)(**params).get_params() == params


@pytest.mark.slow
def test_same_seed_same_probabilities(fitted: dict[str, tuple[Plugin, np.ndarray]]) -> None:
    # cnn_strong is the hardest case: augmentation, dropout, shuffling, class weights.
    name = "cnn_strong"
    train, val, test = data(name)
    again = create_model(name, seed=0, **tiny_params(name)).fit(train, val)
    np.testing.assert_allclose(again.predict_proba(test), fitted[name][1], atol=1e-5)
    other = create_model(name, seed=1, **tiny_params(name)).fit(train, val)
    assert np.max(np.abs(other.predict_proba(test) - fitted[name][1])) > 1e-4


@pytest.mark.slow
def test_predict_resizes_other_image_sizes(
    fitted: dict[str, tuple[Plugin, np.ndarray]]
) -> None:
    plugin, _ = fitted["cnn_seed"]
    proba = plugin.predict_proba(tiny_set(5, 3, 7, size=48).without_labels())
    assert proba.shape == (5,) and np.all(np.isfinite(proba))


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEP)
def test_fitted_plugin_pickles(name: str, fitted: dict[str, tuple[Plugin, np.ndarray]]) -> None:
    plugin, proba = fitted[name]
    if not plugin.card.picklable:
        pytest.skip(f"{name} declares picklable=False")
    clone = pickle.loads(pickle.dumps(plugin))
    _, _, test = data(name)
    np.testing.assert_allclose(clone.predict_proba(test), proba, atol=1e-6)


def test_reference_models_keep_the_studys_recipe() -> None:
    seed_cnn = create_model("cnn_seed")
    assert (seed_cnn.epochs, seed_cnn.card.input_size, seed_cnn.card.channels) == (10, 128, 3)
    assert seed_cnn.restore_best is False and seed_cnn.patience == 0
    model = seed_cnn._build((128, 128, 3), 1)
    assert [type(layer).__name__ for layer in model.layers[1:]] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert type(model.optimizer).__name__ == "SGD"
    mlp = create_model("mlp_baseline")._build((128, 128, 1), 1)
    assert [layer.units for layer in mlp.layers if hasattr(layer, "units")] == [64, 32, 1]


def test_strong_cnn_augmentation_never_flips() -> None:
    model = create_model("cnn_strong")._build((64, 64, 1), 1)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"RandomRotation", "RandomTranslation", "RandomZoom", "RandomBrightness",
            "RandomContrast", "BatchNormalization"} <= kinds
    assert "RandomFlip" not in kinds


def test_photometric_presets_add_sharpness_and_noise_only_when_strong() -> None:
    from cxrbench.plugins.keras_common import PHOTOMETRIC, chest_augmentation

    standard = chest_augmentation((0.0, 1.0), seed=0, **PHOTOMETRIC["standard"])
    default = chest_augmentation((0.0, 1.0), seed=0)
    assert [type(x).__name__ for x in standard] == [type(x).__name__ for x in default]
    strong = chest_augmentation((-1.0, 1.0), seed=0, **PHOTOMETRIC["strong"])
    kinds = [type(x).__name__ for x in strong]
    assert kinds[-2:] == ["RandomSharpness", "GaussianNoise"] and "RandomFlip" not in kinds
    assert strong[-1].stddev == pytest.approx(0.04)  # 2 % of the [-1, 1] range
    model = create_model("transfer", photometric="strong", weights=None)
    assert model.photometric == "strong"


def test_unknown_backbone_suggests_close_names() -> None:
    from cxrbench.plugins.contract import PluginError

    train, val, _ = data("transfer")
    plugin = create_model("transfer", backbone="MobileNetV4", alpha=None, **TINY_TRANSFER)
    with pytest.raises(PluginError, match="Did you mean: MobileNet"):
        plugin.fit(train, val)


@pytest.mark.slow
def test_any_keras_application_by_name() -> None:
    # MobileNetV3 rescales inside the model: its preprocess_input is the identity.
    train, val, test = data("transfer")
    plugin = create_model("transfer", backbone="MobileNetV3Small", alpha=None,
                          **TINY_TRANSFER).fit(train, val)
    assert plugin.fit_info_["backbone"] == "MobileNetV3Small"
    assert plugin.fit_info_["weights_source"] == "random"
    assert plugin.predict_proba(test).shape == (8,)


@pytest.mark.slow
def test_graph_mode_training() -> None:
    """The default path (compiled train step, XLA where Keras allows) on the cheapest model."""
    train, val, test = data("mlp_baseline")
    params = {**TINY, "run_eagerly": False}
    first = create_model("mlp_baseline", **params).fit(train, val).predict_proba(test)
    second = create_model("mlp_baseline", **params).fit(train, val).predict_proba(test)
    np.testing.assert_allclose(first, second, atol=1e-5)


def test_transfer_variants_are_registered_with_their_defaults(monkeypatch) -> None:
    from cxrbench.plugins import registry
    from cxrbench.plugins.transfer import Transfer

    for name, backbone, alpha in (("transfer_mobilenetv2", "MobileNetV2", 0.35),
                                  ("transfer_mobilenet", "MobileNet", 0.25)):
        cls = get_model_class(name)
        assert issubclass(cls, Transfer) and cls.card.name == name and cls.card.accelerator
        params = create_model(name, seed=2).get_params()
        assert (params["backbone"], params["alpha"], params["seed"]) == (backbone, alpha, 2)
        assert {k: v for k, v in params.items() if k not in ("backbone", "alpha", "seed")} == {
            k: v for k, v in Transfer().get_params().items()
            if k not in ("backbone", "alpha", "seed")}
    # A new backbone is one call; the class lives in the given module, so it pickles.
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_sources", dict(registry._sources))
    cls = registry.register_variant("transfer_test_b0", Transfer, module=__name__,
                                    backbone="EfficientNetB0", alpha=None, input_size=96,
                                    epochs=3)
    try:
        assert get_model_class("transfer_test_b0") is cls and cls.card.input_size == 96
        params = cls(seed=2).get_params()
        assert (params["backbone"], params["alpha"], params["input_size"], params["epochs"]) == (
            "EfficientNetB0", None, 96, 3)
        assert cls(epochs=5).epochs == 5
        assert type(pickle.loads(pickle.dumps(cls()))) is cls
    finally:
        delattr(sys.modules[__name__], cls.__name__)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["transfer_mobilenetv2", "transfer_mobilenet"])
def test_imagenet_weights_load_from_the_weights_dir(name: str) -> None:
    from cxrbench.plugins.weights import weights_dir

    folder = weights_dir()
    if folder is None:
        pytest.skip("CXRBENCH_WEIGHTS_DIR not set: offline ImageNet weights test")
    train, val, test = data(name)
    pretrained = create_model(name, **{**TINY_TRANSFER, "weights": "imagenet",
                                       "head_epochs": 1, "epochs": 1}).fit(train, val)
    random = create_model(name, **TINY_TRANSFER).fit(train, val)
    info = pretrained.fit_info_
    assert info["weights_source"] == "weights_dir" and len(info["weights_sha256"]) == 64
    assert [h["phase"] for h in info["history"]] == ["head", "fine-tune"]
    sums = dict(reversed(line.split()) for line in
                (folder / "SHA256SUMS").read_text().splitlines())
    assert sums[info["weights_file"]] == info["weights_sha256"]
    # The loaded backbone is not a random initialisation.
    assert np.all(np.isfinite(pretrained.predict_proba(test)))
    first_conv = [w for w in pretrained.model_.weights if len(w.shape) == 4][0]
    random_conv = [w for w in random.model_.weights if len(w.shape) == 4][0]
    assert not np.allclose(first_conv.numpy(), random_conv.numpy(), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_still_gives_float_probabilities(precision: str) -> None:
    train, val, test = data("mlp_baseline")
    plugin = create_model("mlp_baseline", precision=precision, **TINY).fit(train, val)
    proba = plugin.predict_proba(test)
    assert proba.dtype == np.float64 and np.all(np.isfinite(proba))
    assert keras.config.dtype_policy().name == "float32"
    assert plugin.fit_info_["precision"]["used"] == precision
    assert plugin.model_.layers[1].compute_dtype == precision


@pytest.mark.slow
def test_bfloat16_trains_the_augmented_and_transfer_models() -> None:
    """Augmentation layers, batch norm and a pretrained-style backbone under bfloat16."""
    for name in ("cnn_strong", "transfer_mobilenet"):
        train, val, test = data(name)
        plugin = create_model(name, **tiny_params(name, precision="bfloat16")).fit(train, val)
        assert np.all(np.isfinite(plugin.predict_proba(test)))
        assert plugin.fit_info_["precision"]["policy"] == "mixed_bfloat16"


@pytest.mark.slow
def test_execution_settings_are_recorded_and_loader_threads_change_nothing() -> None:
    train, val, test = data("cnn_seed")
    plain = create_model("cnn_seed", precision="float32", loader_workers=1,
                         **TINY).fit(train, val)
    threaded = create_model("cnn_seed", precision="float32", **TINY).fit(train, val)
    np.testing.assert_allclose(plain.predict_proba(test), threaded.predict_proba(test),
                               atol=1e-6)
    info = threaded.fit_info_
    assert info["execution"]["loader_workers"] == 2  # the default
    assert plain.fit_info_["execution"]["loader_workers"] == 1
    assert info["execution"]["jit_compile"] is False  # "auto": no XLA on a CPU
    assert info["precision"]["requested"] == "float32" and info["precision"]["used"] == "float32"


@pytest.mark.gpu
def test_trains_on_the_gpu_without_a_flag() -> None:
    from cxrbench.plugins.keras_common import backend_info

    if backend_info()["device"] == "cpu":
        pytest.skip("no GPU visible to Keras: GPU test")
    train, val, _ = data("cnn_seed")
    plugin = create_model("cnn_seed", **TINY).fit(train, val)
    assert plugin.fit_info_["device"] != "cpu"
