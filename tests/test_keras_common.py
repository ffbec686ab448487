"""The shared Keras machinery: streaming batches, the validation-AUC monitor, backend info."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from cxrbench.plugins.contract import ImageSet

keras = pytest.importorskip("keras")

from cxrbench.plugins import keras_common as kc  # noqa: E402


def _memmap_set(tmp_path: Path, n: int = 40, size: int = 16, channels: int = 1) -> ImageSet:
    path = tmp_path / "images.npy"
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                     shape=(n, size, size, channels))
    data[:] = (np.arange(n) * 5 % 256).astype(np.uint8)[:, None, None, None]
    data.flush()
    images = np.load(path, mmap_mode="r")  # read-only, like the image cache
    ids = np.array([f"img{i}" for i in range(n)])
    return ImageSet(images, np.arange(n) % 2, ids, ids, ids)


def test_batches_scale_stream_and_weight(tmp_path: Path) -> None:
    images = _memmap_set(tmp_path, n=10)
    batches = kc.make_batches(images, batch_size=4, channels=3, preprocess=kc.scale_unit,
                              class_weight={0: 2.0, 1: 0.5})
    assert len(batches) == 3
    x, y, w = batches[0]
    assert x.dtype == np.float32 and x.shape == (4, 16, 16, 3)  # gray repeated to RGB
    np.testing.assert_allclose(x[:, 0, 0, 0], np.arange(4) * 5 / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    np.testing.assert_array_equal(w, [2.0, 0.5, 2.0, 0.5])
    assert batches[2][0].shape[0] == 2  # the last, partial batch
    assert batches.images is images.images  # a view of the memmap, never a copy


def test_batches_never_hold_a_float_copy_of_the_set(tmp_path: Path) -> None:
    images = _memmap_set(tmp_path, n=400, size=32)
    full_float_bytes = 400 * 32 * 32 * 4
    tracemalloc.start()
    batches = kc.make_batches(images, batch_size=16, channels=1, preprocess=kc.scale_unit,
                              shuffle=True, seed=0)
    for i in range(len(batches)):
        batches[i]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < full_float_bytes / 4, f"peak {peak} bytes: looks like a full copy"


def test_shuffle_is_seeded_and_changes_each_epoch(tmp_path: Path) -> None:
    images = _memmap_set(tmp_path, n=24)

    def epoch_ids(batches: object) -> list[int]:
        return [int(v) for i in range(len(batches)) for v in batches[i][0][:, 0, 0, 0]]

    a = kc.make_batches(images, batch_size=8, channels=1, preprocess=None, shuffle=True, seed=3)
    b = kc.make_batches(images, batch_size=8, channels=1, preprocess=None, shuffle=True, seed=3)
    first = epoch_ids(a)
    assert first == epoch_ids(b)
    assert sorted(first) == sorted(np.arange(24) * 5 % 256)  # every image exactly once
    a.on_epoch_end()
    assert epoch_ids(a) != first
    c = kc.make_batches(images, batch_size=8, channels=1, preprocess=None, shuffle=True, seed=4)
    assert epoch_ids(c) != first


def test_batches_resize_when_the_images_are_another_size(tmp_path: Path) -> None:
    images = _memmap_set(tmp_path, n=4, size=16)
    x = kc.make_batches(images, batch_size=4, channels=1, size=8, preprocess=None,
                        with_labels=False)[0][0]
    assert x.shape == (4, 8, 8, 1)
    np.testing.assert_allclose(x[:, 4, 4, 0], np.arange(4) * 5, atol=1e-3)  # flat images


def test_preprocessing_ranges() -> None:
    assert kc.value_range(kc.scale_unit) == pytest.approx((0.0, 1.0))
    pre = keras.applications.mobilenet_v2.preprocess_input  # what the transfer plugins use
    assert kc.value_range(lambda x: np.asarray(pre(x), np.float32)) == pytest.approx((-1.0, 1.0))


def test_balanced_class_weight() -> None:
    weights = kc.balanced_class_weight(np.array([0, 1, 1, 1]))
    assert weights == pytest.approx({0: 2.0, 1: 4 / 6})
    # Both classes then carry the same total weight.
    assert weights[0] * 1 == pytest.approx(weights[1] * 3)


def _tiny_model(sign: float) -> object:
    model = keras.Sequential([keras.Input((1, 1, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    _set_sign(model, sign)
    return model


def _set_sign(model: object, sign: float) -> None:
    kernel, bias = model.layers[-1].weights  # type: ignore[attr-defined]
    kernel.assign(np.full((1, 1), sign, np.float32))
    bias.assign(np.zeros(1, np.float32))


def test_monitor_records_stops_early_and_restores_the_best_epoch() -> None:
    values = np.arange(8, dtype=np.uint8).reshape(8, 1, 1, 1)
    ids = np.array([str(i) for i in range(8)])
    val = ImageSet(values, (np.arange(8) >= 4).astype(int), ids, ids, ids)
    model = _tiny_model(+1.0)  # higher pixel -> higher probability: AUC 1
    stream = io.StringIO()
    batches = kc.make_batches(val, batch_size=3, channels=1, preprocess=None)
    monitor = kc.make_monitor(val, batches, patience=2, label="tiny seed=0", stream=stream)
    monitor.set_model(model)
    monitor.start_phase("", 5)
    for epoch, sign in enumerate([+1.0, -1.0, -1.0]):
        monitor.on_epoch_begin(epoch)
        _set_sign(model, sign)
        monitor.on_epoch_end(epoch, {"loss": 0.5})
    assert [h["val_auc"] for h in monitor.history] == pytest.approx([1.0, 0.0, 0.0])
    assert model.stop_training is True
    assert monitor.history[0]["lr"] == pytest.approx(0.1)
    info: dict = {}
    kc.finish(model, monitor, info, restore_best=True)
    assert info["best_epoch"] == 1 and info["best_val_auc"] == pytest.approx(1.0)
    assert info["epochs_run"] == 3 and info["n_params"] == 2
    p = kc.predict(model, val.without_labels(), batch_size=4, channels=1, preprocess=None)
    assert np.all(np.diff(p) > 0)  # best (increasing) weights are back
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "epoch 1/5" in lines[0] and "val_auc 1.0000 *" in lines[0]


def test_finish_without_restore_keeps_the_last_weights() -> None:
    values = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)
    ids = np.array(list("abcd"))
    val = ImageSet(values, np.array([0, 0, 1, 1]), ids, ids, ids)
    model = _tiny_model(+1.0)
    monitor = kc.make_monitor(val, kc.make_batches(val, batch_size=4, channels=1,
                                                   preprocess=None),
                              patience=0, label="t", stream=io.StringIO())
    monitor.set_model(model)
    for epoch, sign in enumerate([+1.0, -1.0]):
        monitor.on_epoch_begin(epoch)
        _set_sign(model, sign)
        monitor.on_epoch_end(epoch, {"loss": 0.1})
    assert not getattr(model, "stop_training", False)  # patience 0: never stops early
    info: dict = {}
    kc.finish(model, monitor, info, restore_best=False)
    p = kc.predict(model, val.without_labels(), batch_size=4, channels=1, preprocess=None)
    assert np.all(np.diff(p) < 0) and info["restored_best"] is False


def test_backend_info_names_backend_and_device() -> None:
    info = kc.backend_info()
    assert info["backend"] == keras.backend.backend()
    assert info["device"] == "cpu" or info["device"].split(":")[0] in ("gpu", "cuda", "tpu")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16", "float32"])
def test_dtype_policy_is_restored(policy: str) -> None:
    before = keras.config.dtype_policy().name
    with kc.dtype_policy(policy):
        assert keras.config.dtype_policy().name == policy
    assert keras.config.dtype_policy().name == before


@pytest.mark.gpu
def test_keras_sees_the_gpu() -> None:
    if kc.backend_info()["device"] == "cpu":
        pytest.skip("no GPU visible to Keras (backend_info()['device'] == 'cpu')")
    x = keras.ops.ones((4, 4))
    assert "cpu" not in str(getattr(x, "device", "gpu")).lower()


def test_max_batches_caps_an_epoch_with_a_new_part_each_epoch(tmp_path: Path) -> None:
    images = _memmap_set(tmp_path, n=40)

    def epoch_ids(batches: object) -> list[int]:
        return [int(v) for i in range(len(batches)) for v in batches[i][0][:, 0, 0, 0]]

    batches = kc.make_batches(images, batch_size=8, channels=1, preprocess=None, shuffle=True,
                              seed=0, max_batches=2)
    assert len(batches) == 2
    first = epoch_ids(batches)
    batches.on_epoch_end()
    second = epoch_ids(batches)
    assert len(first) == len(second) == 16 and first != second
    assert len(kc.make_batches(images, batch_size=8, channels=1, preprocess=None)) == 5
