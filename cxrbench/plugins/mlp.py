"""Multilayer perceptrons: the original study's dense baseline on pixels (Keras 3), and an MLP
on HOG features (scikit-learn)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, param
from cxrbench.plugins.features import ExtractionStats
from cxrbench.plugins.hog import DALAL_TRIGGS, hog_pyramid
from cxrbench.plugins.keras_common import KerasPlugin
from cxrbench.plugins.persistence import (
    load_plain_state,
    load_sklearn,
    save_plain_state,
    save_sklearn,
)
from cxrbench.plugins.registry import register_model


@register_model
class MLPBaseline(KerasPlugin):
    """Flattened 128 px grayscale pixels -> Dense 64 -> Dense 32 -> sigmoid (ReLU, Adam).

    A faithful baseline, not a tuned model: fixed epochs, the final weights are kept
    (``restore_best=False``), no early stopping (``patience=0``); validation AUC is still
    recorded each epoch.
    """

    card = ModelCard(
        name="mlp_baseline",
        family="mlp",
        framework="keras",
        description="Original study's MLP: flattened 128 px pixels -> Dense 64 -> 32 -> sigmoid.",
        input_size=128,
        channels=1,
        requires=("keras",),
        accelerator=True,
        reference="cxrbench issue: the original study's densely connected baseline",
    )

    hidden: tuple[int, ...] = param((64, 32), low=1)

    def _build(self, input_shape: tuple[int, int, int], steps_per_epoch: int) -> Any:
        import keras
        from keras import layers

        inputs = keras.Input(shape=input_shape)
        x = layers.Flatten()(inputs)
        for units in self.hidden:
            x = layers.Dense(int(units), activation="relu")(x)
        outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="mlp_baseline")
        self._compile(model, keras.optimizers.Adam(self.learning_rate))
        return model


@register_model
class HogMLP(Plugin):
    """A one-hidden-layer MLP (scikit-learn, Adam) on standardised two-scale HOG features.

    Trained one epoch at a time with ``partial_fit``; the epoch with the best validation log
    loss is kept and training stops after ``patience`` epochs without improvement (early
    stopping on the patient-grouped validation split, never test).
    """

    card = ModelCard(
        name="hog_mlp",
        family="mlp",
        framework="scikit-learn",
        description="MLP (one hidden layer, Adam) on standardised two-scale HOG features; "
                    "early stopping on validation.",
        input_size=128,
        channels=1,
        requires=("sklearn", "skimage"),
        reference=f"{DALAL_TRIGGS}; Rumelhart et al. 1986 (MLP)",
    )
    check_params: ClassVar[dict[str, Any]] = {"max_epochs": 5}  # conformance kit: fast

    hidden: tuple[int, ...] = param((256,), low=1)
    alpha: float = param(1e-3, low=0)
    learning_rate: float = param(1e-3, low=0, low_exclusive=True)
    batch_size: int = param(64, low=1)
    max_epochs: int = param(60, low=1)
    patience: int = param(8, low=0)
    cell: int = param(16, low=2)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.metrics import log_loss
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        stats = ExtractionStats()
        X = hog_pyramid(train, self.cell, self.card.input_size, stats)
        y = np.asarray(train.labels)
        self.scaler_ = StandardScaler().fit(X)
        X = self.scaler_.transform(X)
        use_val = val.labels is not None and len(np.unique(val.labels)) == 2
        if use_val:
            Xv = self.scaler_.transform(hog_pyramid(val, self.cell, self.card.input_size, stats))
            yv = np.asarray(val.labels)
        mlp = MLPClassifier(
            hidden_layer_sizes=tuple(self.hidden), alpha=self.alpha,
            learning_rate_init=self.learning_rate, batch_size=min(self.batch_size, len(y)),
            random_state=self.seed, shuffle=True,
        )
        best, best_loss, best_epoch, history = None, np.inf, -1, []
        rng = np.random.default_rng(self.seed)
        for epoch in range(self.max_epochs):
            order = rng.permutation(len(y))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                mlp.partial_fit(X[order], y[order], classes=np.array([0, 1]))
            if not use_val:
                continue
            loss = float(log_loss(yv, mlp.predict_proba(Xv)[:, 1], labels=[0, 1]))
            history.append(round(loss, 5))
            if loss < best_loss - 1e-4:
                best, best_loss, best_epoch = copy.deepcopy(mlp), loss, epoch
            elif epoch - best_epoch >= self.patience:
                break
        self.model_ = best if best is not None else mlp
        self.fit_info_ = {
            "epochs_run": len(history) if use_val else self.max_epochs,
            "best_epoch": best_epoch + 1 if use_val else self.max_epochs,
            "val_logloss": history,
            "n_features": int(X.shape[1]),
            "n_params": int(sum(w.size for w in self.model_.coefs_)
                            + sum(b.size for b in self.model_.intercepts_)),
            "features": stats.as_dict(),
        }

    def _predict(self, images: ImageSet) -> np.ndarray:
        X = self.scaler_.transform(hog_pyramid(images, self.cell, self.card.input_size))
        return self.model_.predict_proba(X)[:, 1]

    def _save(self, directory: Path) -> list[Path]:
        # Without the Adam optimiser's moments (two more arrays per weight matrix): they only
        # serve further training, and would triple the file.
        model = copy.copy(self.model_)
        vars(model).pop("_optimizer", None)
        return [*save_plain_state(self, directory, skip=("model_", "scaler_")),
                save_sklearn(self.scaler_, directory / "scaler.skops"),
                save_sklearn(model, directory / "mlp.skops")]

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)
        self.scaler_ = load_sklearn(directory / "scaler.skops",
                                    ["sklearn.preprocessing._data.StandardScaler"])
        self.model_ = load_sklearn(directory / "mlp.skops", [
            "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
            # Fitted state an MLP keeps (its label binarizer and random state): arrays and
            # numbers, read by skops without code.
            "sklearn.preprocessing._label.LabelBinarizer", "numpy.random.mtrand.RandomState"])
