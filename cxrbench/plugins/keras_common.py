"""Shared Keras 3 machinery for the deep plugins (mlp, cnn, transfer).

Everything here uses the Keras 3 API only, so a plugin runs unchanged on
``KERAS_BACKEND=tensorflow`` (default), ``jax`` or ``torch``, on a GPU when the backend sees one.
Keras is imported inside functions, never at module level: importing this module (or a plugin
module) must not import TensorFlow, so that ``cxrbench models`` stays fast.

- :func:`make_batches` streams ``(x, y, sample_weight)`` batches from the uint8 (often
  memory-mapped) image array of an :class:`~cxrbench.plugins.contract.ImageSet`, converting
  one batch at a time: the data set is never copied to float32 as a whole.
- :func:`make_monitor` builds a ``ValAUCMonitor`` callback: validation ROC AUC after every
  epoch (sklearn), one progress line on stderr (epoch, loss, val AUC, lr, seconds), early
  stopping on it and a copy of the best weights; :func:`train_phase` runs ``model.fit`` with
  it (once per training phase) and :func:`finish` restores the best weights and writes the
  per-epoch history, best epoch, parameter count, backend and device into ``fit_info_``.
- :func:`predict` streams an ImageSet through a fitted model.
- :class:`KerasPlugin` ties these together: a deep plugin only builds its model.
- :func:`backend_info` (``{"backend", "device"}``), :func:`set_seed`, :func:`dtype_policy`
  (float32 or mixed precision, chosen by :mod:`cxrbench.plugins.precision`),
  :func:`execution_info` and :func:`chest_augmentation` (augmentation layers, no flips).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cxrbench.plugins.contract import ImageSet, Plugin, PluginError, param
from cxrbench.plugins.persistence import load_keras, load_plain_state, save_keras, save_plain_state
from cxrbench.plugins.precision import PRECISIONS, resolve_precision

KERAS_FILE = "model.keras"  # a saved deep plugin's network (architecture + weights, safe mode)

# A per-batch transform of float32 images (n, h, w, c), e.g. scaling to [0, 1].
Preprocess = Callable[[np.ndarray], np.ndarray]
# A per-batch augmentation of preprocessed float32 images, given the dataset's random generator.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def scale_unit(x: np.ndarray) -> np.ndarray:
    """uint8 pixel values -> [0, 1]."""
    return x * np.float32(1.0 / 255.0)


def value_range(preprocess: Preprocess, channels: int = 3) -> tuple[float, float]:
    """The range ``preprocess`` maps pixel values 0..255 to (for augmentation layers)."""
    lo = preprocess(np.zeros((1, 1, 1, channels), np.float32))
    hi = preprocess(np.full((1, 1, 1, channels), 255.0, np.float32))
    return float(min(lo.min(), hi.min())), float(max(lo.max(), hi.max()))


# --- backend, device, seeding ----------------------------------------------------------------
def backend_info() -> dict[str, str]:
    """``{"backend": "tensorflow"|"jax"|"torch", "device": "gpu:0 (2 visible)"|"cpu"}``.

    The device is where Keras places computation by default (the first accelerator if any).
    Imports Keras, hence the backend: call it only when a deep model is about to run.
    """
    import keras

    backend = keras.backend.backend()
    try:
        devices = [str(d).lower() for d in keras.distribution.list_devices()]
    except Exception:  # noqa: BLE001  # not every backend/version implements list_devices
        devices = []
    accelerators = [d for d in devices if not d.startswith("cpu")]
    if accelerators:
        kind = accelerators[0].split(":")[0]
        device = f"{accelerators[0]} ({len(accelerators)} {kind} visible)"
    else:
        device = "cpu"
    return {"backend": backend, "device": device}


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``).

    On CPU this makes training repeatable with the TensorFlow backend (checked by the tests to
    1e-5). GPU kernels (cuDNN convolutions' backward pass) may still differ run to run: full GPU
    determinism would need ``tf.config.experimental.enable_op_determinism()``, a TensorFlow call
    that Keras 3 does not expose, and the plugins stay backend-neutral.
    """
    import keras

    keras.utils.set_random_seed(int(seed))


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Build layers under the Keras dtype ``policy`` ("float32", "mixed_bfloat16",
    "mixed_float16"); restores the global policy afterwards.

    :func:`cxrbench.plugins.precision.resolve_precision` chooses the policy. Output layers must
    pass ``dtype="float32"`` so probabilities stay float32.
    """
    import keras

    previous = keras.config.dtype_policy()
    if policy == previous.name:
        yield
        return
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def n_params(model: Any) -> int:
    return int(model.count_params())


def balanced_class_weight(labels: np.ndarray) -> dict[int, float]:
    """``n / (2 n_c)`` per class: both classes contribute equally to the loss."""
    labels = np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2)
    return {c: float(len(labels) / (2.0 * counts[c])) for c in (0, 1) if counts[c]}


# --- streaming batches -----------------------------------------------------------------------
def _to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    have = x.shape[-1]
    if have == channels:
        return x
    if have == 1:
        return np.repeat(x, channels, axis=-1)
    if channels == 1:
        return x.mean(axis=-1, keepdims=True)
    raise PluginError(f"cannot convert images with {have} channels to {channels}")


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(
        keras.ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True)
    ), dtype=np.float32)


def load_batch(
    images: np.ndarray, index: np.ndarray, channels: int, preprocess: Preprocess | None,
    size: int | None = None,
) -> np.ndarray:
    """One float32 batch from the uint8 array: only these rows are read and converted.

    ``size`` resizes (bilinear) when the images are not ``size`` px, e.g. a conformance check
    handing the plugin another size than its ``input_size``; the harness avoids it by decoding
    at ``input_size``.
    """
    # Sorted reads are sequential on a memmap; the order is restored afterwards.
    order = np.argsort(index, kind="stable")
    batch = np.empty((len(index), *images.shape[1:]), dtype=np.uint8)
    batch[order] = images[index[order]]
    x = _to_channels(batch.astype(np.float32), channels)
    if size is not None and x.shape[1:3] != (size, size) and len(x):
        x = _resize(x, size)
    return preprocess(x) if preprocess is not None else x


@functools.cache
def _batches_class() -> type:
    import keras

    class ImageBatches(keras.utils.PyDataset):
        """Batches of one ImageSet; reshuffled each epoch from ``seed`` (repeatable)."""

        def __init__(
            self,
            images: np.ndarray,
            labels: np.ndarray | None,
            *,
            batch_size: int,
            channels: int,
            size: int | None,
            preprocess: Preprocess | None,
            augment: Augment | None,
            shuffle: bool,
            seed: int,
            class_weight: dict[int, float] | None,
            workers: int = 1,
            max_batches: int | None = None,
        ) -> None:
            # workers > 1: threads prepare the next batches while the model trains (Keras'
            # OrderedEnqueuer keeps them in order); a batch depends only on (seed, epoch,
            # index), so the batches are the same with any number of workers.
            super().__init__(workers=workers, use_multiprocessing=False,
                             max_queue_size=max(2, 2 * workers))
            self.images = images
            self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
            self.batch_size = int(batch_size)
            self.channels = channels
            self.size = size
            self.preprocess = preprocess
            self.augment = augment
            self.shuffle = shuffle
            self.seed = int(seed)
            self.class_weight = class_weight
            self.max_batches = max_batches
            self.epoch = 0
            self._order = self._make_order()

        def _make_order(self) -> np.ndarray:
            n = len(self.images)
            if not self.shuffle:
                return np.arange(n)
            return np.random.default_rng([self.seed, self.epoch]).permutation(n)

        def __len__(self) -> int:
            n = math.ceil(len(self.images) / self.batch_size)
            return n if self.max_batches is None else min(n, self.max_batches)

        def __getitem__(self, i: int) -> Any:
            index = self._order[i * self.batch_size:(i + 1) * self.batch_size]
            x = load_batch(self.images, index, self.channels, self.preprocess, self.size)
            if self.augment is not None:
                x = self.augment(x, np.random.default_rng([self.seed, 1, self.epoch, i]))
            if self.labels is None:
                return (x,)
            y = self.labels[index]
            if self.class_weight is None:
                return x, y
            w = np.where(y > 0.5, self.class_weight.get(1, 1.0), self.class_weight.get(0, 1.0))
            return x, y, w.astype(np.float32)

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._order = self._make_order()

    return ImageBatches


def make_batches(
    images: ImageSet,
    *,
    batch_size: int,
    channels: int,
    preprocess: Preprocess | None,
    size: int | None = None,
    augment: Augment | None = None,
    shuffle: bool = False,
    seed: int = 0,
    class_weight: dict[int, float] | None = None,
    with_labels: bool = True,
    workers: int = 1,
    max_batches: int | None = None,
) -> Any:
    """A ``keras.utils.PyDataset`` over ``images`` (uint8, memmap-friendly).

    Yields ``x`` (float32, ``channels`` channels, ``size`` px when given, after ``preprocess``
    and ``augment``), plus
    ``y`` and, with ``class_weight``, per-sample weights. ``shuffle`` draws a new permutation
    each epoch from ``(seed, epoch)``; ``augment`` gets a generator seeded by
    ``(seed, epoch, batch index)``. ``workers`` threads prefetch batches during training.
    ``max_batches`` caps an epoch (with ``shuffle``, each epoch is a new random part of it).
    """
    labels = images.labels if with_labels else None
    return _batches_class()(
        images.images, labels, batch_size=batch_size, channels=channels, size=size,
        preprocess=preprocess, augment=augment, shuffle=shuffle, seed=seed,
        class_weight=class_weight, workers=workers, max_batches=max_batches,
    )


# --- validation AUC, early stopping, history -------------------------------------------------
def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2 or not np.all(np.isfinite(p)):
        return float("nan")
    return float(roc_auc_score(y, p))


def current_lr(model: Any) -> float:
    import keras

    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # noqa: BLE001  # an exotic optimizer: history just lacks the lr
        return float("nan")


@functools.cache
def _monitor_class() -> type:
    import keras

    class ValAUCMonitor(keras.callbacks.Callback):
        """Validation ROC AUC each epoch -> history, a progress line, early stopping.

        Keeps a copy of the best weights (highest AUC; ties keep the earlier epoch);
        :meth:`restore_best` puts them back (:func:`finish` calls it). One monitor can span
        several ``fit`` calls (phases, such as head-only then fine-tuning): the best epoch over
        all phases wins.
        """

        def __init__(
            self, val: Any, val_labels: np.ndarray, *, patience: int, label: str,
            min_delta: float = 1e-4, stream: Any = None,
        ) -> None:
            super().__init__()
            self.val = val
            self.val_labels = np.asarray(val_labels).astype(int)
            self.patience = patience
            self.min_delta = min_delta
            self.label = label
            self.stream = stream
            self.history: list[dict[str, Any]] = []
            self.best_auc = -math.inf
            self.best_epoch: int | None = None
            self._best_weights: list[np.ndarray] | None = None
            self.phase = ""
            self.phase_epochs = 0
            self._wait = 0

        def start_phase(self, phase: str, epochs: int) -> None:
            self.phase, self.phase_epochs, self._wait = phase, epochs, 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            p = predict_dataset(self.model, self.val)
            auc = _roc_auc(self.val_labels, p)
            logs["val_auc"] = auc
            seconds = time.perf_counter() - self._t0
            entry = {
                "phase": self.phase, "epoch": len(self.history) + 1,
                "loss": float(logs.get("loss", float("nan"))), "val_auc": auc,
                "lr": current_lr(self.model), "seconds": round(seconds, 3),
            }
            self.history.append(entry)
            improved = math.isfinite(auc) and auc > self.best_auc + self.min_delta
            if improved or self._best_weights is None:
                self.best_auc = auc if math.isfinite(auc) else self.best_auc
                self.best_epoch = entry["epoch"]
                self._best_weights = [v.numpy().copy() for v in self.model.weights]
                self._wait = 0
            else:
                self._wait += 1
                if self.patience and self._wait >= self.patience:
                    self.model.stop_training = True
            print(
                f"[{self.label}] {self.phase + ' ' if self.phase else ''}epoch "
                f"{epoch + 1}/{self.phase_epochs} loss {entry['loss']:.4f} "
                f"val_auc {auc:.4f}{' *' if entry['epoch'] == self.best_epoch else ''} "
                f"lr {entry['lr']:.2g} {seconds:.1f}s",
                file=self.stream or sys.stderr, flush=True,
            )

        def restore_best(self) -> None:
            if self._best_weights is not None:
                for variable, value in zip(self.model.weights, self._best_weights, strict=True):
                    variable.assign(value)

    return ValAUCMonitor


def make_monitor(
    val: ImageSet, val_batches: Any, *, patience: int, label: str, stream: Any = None
) -> Any:
    """A :class:`ValAUCMonitor` callback for ``val`` (which must carry labels)."""
    if val.labels is None:
        raise PluginError(f"{label}: the validation set needs labels for early stopping")
    return _monitor_class()(val_batches, val.labels, patience=patience, label=label,
                            stream=stream)


def train_phase(
    model: Any, train_batches: Any, monitor: Any, *, epochs: int, phase: str = ""
) -> None:
    """``model.fit`` for up to ``epochs`` epochs with ``monitor`` (no restore: see finish)."""
    monitor.start_phase(phase, epochs)
    monitor.set_model(model)
    model.fit(train_batches, epochs=epochs, callbacks=[monitor], verbose=0)


def finish(model: Any, monitor: Any, fit_info: dict[str, Any], *, restore_best: bool) -> None:
    """Restore the best weights (if asked) and record history, best epoch, parameter count."""
    if restore_best:
        monitor.restore_best()
    fit_info["restored_best"] = bool(restore_best)
    fit_info["history"] = monitor.history
    fit_info["best_epoch"] = monitor.best_epoch
    fit_info["best_val_auc"] = monitor.best_auc if math.isfinite(monitor.best_auc) else None
    fit_info["epochs_run"] = len(monitor.history)
    fit_info["train_seconds"] = round(sum(h["seconds"] for h in monitor.history), 3)
    fit_info["n_params"] = n_params(model)
    fit_info.update(backend_info())


# --- prediction ------------------------------------------------------------------------------
def predict_dataset(model: Any, batches: Any) -> np.ndarray:
    """Probabilities for every batch of a PyDataset, in order (no shuffling)."""
    out = []
    for i in range(len(batches)):
        out.append(np.asarray(model.predict_on_batch(batches[i][0]), dtype=np.float64))
    return np.concatenate(out).reshape(-1) if out else np.zeros(0)


def predict(
    model: Any, images: ImageSet, *, batch_size: int, channels: int,
    preprocess: Preprocess | None,
) -> np.ndarray:
    """Stream ``images`` through ``model`` batch by batch; returns probabilities ``(n,)``."""
    size = model.input_shape[1]
    batches = make_batches(images, batch_size=batch_size, channels=channels, size=size,
                           preprocess=preprocess, with_labels=False)
    return predict_dataset(model, batches)


# --- augmentation ----------------------------------------------------------------------------
# Photometric augmentation presets (keyword arguments of chest_augmentation). "strong" widens
# brightness and contrast jitter and adds blur-to-sharpen and pixel noise: films from other
# scanners differ in exactly these (Singthongchai & Wangkhamhan, J. Imaging 2026).
PHOTOMETRIC: dict[str, dict[str, float]] = {
    "standard": {"brightness": 0.10, "contrast": 0.10},
    "strong": {"brightness": 0.30, "contrast": 0.30, "sharpness": 0.25, "noise": 0.02},
}


def chest_augmentation(
    value_range: tuple[float, float], *, seed: int, rotation_deg: float = 7.0,
    shift: float = 0.06, zoom: float = 0.10, brightness: float = 0.10, contrast: float = 0.10,
    sharpness: float = 0.0, noise: float = 0.0,
) -> list[Any]:
    """Keras augmentation layers suited to frontal chest films (active in training only).

    Small rotations, shifts and zooms, brightness and contrast jitter; optionally sharpness
    (a factor drawn in 0.5 +- ``sharpness``: below 0.5 blurs, above sharpens) and Gaussian
    pixel noise (``noise`` times the value range). No flips: a vertical flip is anatomically
    impossible, and even a horizontal one moves the heart to the right. ``value_range`` is the
    range of the (preprocessed) inputs, for the photometric layers.
    """
    import keras

    layers = keras.layers
    out: list[Any] = []
    if rotation_deg:
        out.append(layers.RandomRotation(rotation_deg / 360.0, fill_mode="nearest", seed=seed))
    if shift:
        out.append(layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed + 1))
    if zoom:
        out.append(layers.RandomZoom(zoom, fill_mode="nearest", seed=seed + 2))
    if brightness:
        out.append(layers.RandomBrightness(brightness, value_range=value_range, seed=seed + 3))
    if contrast:
        out.append(layers.RandomContrast(contrast, value_range=value_range, seed=seed + 4))
    if sharpness:
        out.append(layers.RandomSharpness((0.5 - sharpness, 0.5 + sharpness),
                                          value_range=value_range, seed=seed + 5))
    if noise:
        out.append(layers.GaussianNoise(noise * (value_range[1] - value_range[0]),
                                        seed=seed + 6))
    return out


# --- the base class of the deep plugins ------------------------------------------------------
class KerasPlugin(Plugin):
    """Training and prediction shared by every Keras plugin; subclasses build the model.

    Declares the hyperparameters every deep plugin has (subclasses change defaults with
    ``epochs = 14`` and add their own): ``epochs``, ``batch_size``, ``input_size``,
    ``learning_rate``, ``patience`` (epochs without a better validation AUC before stopping;
    0 = never stop early), ``restore_best`` (end with the best validation epoch's weights rather
    than the last), ``class_weight`` (``"balanced"`` or None), and how training is executed:
    ``precision`` (``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"``: see
    :mod:`cxrbench.plugins.precision`; float32 unless a plugin was measured to gain from
    ``"auto"``), ``jit_compile`` and
    ``run_eagerly`` (passed to ``model.compile``: ``"auto"`` lets Keras use XLA where it
    can, which with TensorFlow means GPUs only; ``run_eagerly=True`` skips graph tracing, which
    dominates on tiny inputs such as the tests'), and ``loader_workers`` (threads that prepare
    training batches ahead, default 2; 1 = in the training loop), ``steps_per_epoch`` (at most
    this many batches per epoch, a new random part of the training set each epoch, for training
    sets too large for whole epochs; None: every image each epoch). The defaults are a plain
    training loop:
    fixed epochs, no early stopping, the last weights. Subclasses implement :meth:`_build` and,
    for several training phases, :meth:`_train`; their cards set ``accelerator=True``.
    """

    predict_batch_size: ClassVar[int] = 64

    epochs: int = param(10, low=1)
    batch_size: int = param(32, low=1)
    input_size: int = param(128, low=8)
    learning_rate: float = param(1e-3, low=0, low_exclusive=True)
    patience: int = param(0, low=0)
    restore_best: bool = False
    class_weight: str | None = param(None, choices=("balanced",))
    precision: str = param("float32", choices=PRECISIONS)
    jit_compile: bool | str = param("auto", choices=(True, False, "auto"))
    run_eagerly: bool = False
    # 2: a thread prepares the next batches while the model trains; the batches, and so the
    # model, are the same as with 1 (measured: benchmarks/README.md 3.2)
    loader_workers: int = param(2, low=1, high=16)
    steps_per_epoch: int | None = param(None, low=1)

    def _preprocess(self) -> Preprocess:
        return scale_unit

    def _build(self, input_shape: tuple[int, int, int], steps_per_epoch: int) -> Any:
        """The compiled Keras model for ``input_shape`` (size, size, channels).

        ``steps_per_epoch`` (training batches per epoch) is there for learning-rate schedules.
        """
        raise NotImplementedError

    def _compile(self, model: Any, optimizer: Any) -> None:
        """Compile for binary cross-entropy with this plugin's execution settings."""
        eager = bool(self.run_eagerly)
        model.compile(optimizer=optimizer, loss="binary_crossentropy", run_eagerly=eager,
                      jit_compile=False if eager else self.jit_compile)

    def _train(self, model: Any, batches: Any, monitor: Any) -> None:
        train_phase(model, batches, monitor, epochs=int(self.epochs))

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        set_seed(self.seed)
        size, channels = int(self.input_size), self.card.channels
        assert train.labels is not None
        weights = balanced_class_weight(train.labels) if self.class_weight == "balanced" else None
        common = dict(channels=channels, size=size, preprocess=self._preprocess())
        train_batches = make_batches(train, batch_size=int(self.batch_size), shuffle=True,
                                     seed=self.seed, class_weight=weights,
                                     workers=int(self.loader_workers),
                                     max_batches=self.steps_per_epoch, **common)
        val_batches = make_batches(val, batch_size=self.predict_batch_size, **common)
        where = backend_info()
        policy, precision = resolve_precision(self.precision, **where)
        with dtype_policy(policy):
            model = self._build((size, size, channels), len(train_batches))
        monitor = make_monitor(val, val_batches, patience=int(self.patience),
                               label=f"{self.card.name} seed={self.seed}")
        self._train(model, train_batches, monitor)
        finish(model, monitor, self.fit_info_, restore_best=bool(self.restore_best))
        self.fit_info_.update(image_size=size, channels=channels, class_weight=weights,
                              steps_per_epoch=len(train_batches),
                              images_per_epoch=min(len(train),
                                                   len(train_batches) * int(self.batch_size)),
                              precision=precision,
                              execution=execution_info(model, int(self.loader_workers)))
        self.model_ = model

    def _predict(self, images: ImageSet) -> np.ndarray:
        return predict(self.model_, images, batch_size=self.predict_batch_size,
                       channels=self.card.channels, preprocess=self._preprocess())

    def _save(self, directory: Path) -> list[Path]:
        return [*save_plain_state(self, directory, skip=("model_",)),
                save_keras(self.model_, directory / KERAS_FILE)]

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)
        self.model_ = load_keras(directory / KERAS_FILE)

def execution_info(model: Any, loader_workers: int) -> dict[str, Any]:
    """How training ran: XLA or not (as Keras resolved ``"auto"``), eager or graph, loader
    threads, and the thread settings the backend read from the environment."""
    import os

    return {
        "jit_compile": bool(model.jit_compile),
        "run_eagerly": bool(model.run_eagerly),
        "loader_workers": loader_workers,
        "threads_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
    }


# Environment variables that set the backends' thread pools (read when the backend starts).
THREAD_ENV: tuple[str, ...] = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                               "OMP_NUM_THREADS")
