"""The densely connected baseline of the original study (Keras 3)."""

from __future__ import annotations

from typing import Any

from cxrbench.plugins.contract import ModelCard
from cxrbench.plugins.keras_common import KerasPlugin
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
        reference="cxrbench issue: the original study's densely connected baseline",
    )

    def __init__(
        self, *, epochs: int = 10, batch_size: int = 32, input_size: int = 128,
        learning_rate: float = 1e-3, hidden: tuple[int, ...] = (64, 32), patience: int = 0,
        restore_best: bool = False, class_weight: str | None = None,
        mixed_precision: bool = False, jit_compile: bool | str = "auto", run_eagerly: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.epochs = epochs
        self.batch_size = batch_size
        self.input_size = input_size
        self.learning_rate = learning_rate
        self.hidden = hidden
        self.patience = patience
        self.restore_best = restore_best
        self.class_weight = class_weight
        self.mixed_precision = mixed_precision
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly

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
