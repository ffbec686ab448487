"""Convolutional networks trained from scratch (Keras 3).

``cnn_seed`` reproduces the original study's small CNN as a reference point; ``cnn_strong`` is
the same idea done well: batch normalisation, augmentation suited to chest films, class
weights, a cosine learning-rate schedule, early stopping on validation ROC AUC.
"""

from __future__ import annotations

from typing import Any

from cxrbench.plugins.contract import ModelCard, param
from cxrbench.plugins.keras_common import KerasPlugin, chest_augmentation, value_range
from cxrbench.plugins.registry import register_model


@register_model
class CNNSeed(KerasPlugin):
    """The original study's CNN: Conv 64 -> pool -> Conv 32 -> pool -> sigmoid, SGD, 10 epochs.

    128x128x3 inputs scaled to [0, 1], 3x3 ReLU convolutions, 2x2 max pooling, one sigmoid unit
    on the flattened maps, plain SGD on binary cross-entropy, judged at a 0.5 threshold in the
    study (its reported figures are in the card's reference). The final weights are kept and
    there is no early stopping, as in the study.
    """

    card = ModelCard(
        name="cnn_seed",
        family="cnn",
        framework="keras",
        description="Original study's small CNN (Conv64-pool-Conv32-pool-sigmoid, SGD, 10 ep).",
        input_size=128,
        channels=3,
        requires=("keras",),
        accelerator=True,
        reference="original study: 83.2 % accuracy, 93 % sensitivity, 67 % specificity at 0.5",
    )

    learning_rate = 0.01
    # bfloat16 on CPUs with bfloat16 units: 2.5x less CPU per epoch, validation ROC AUC within
    # the seed-to-seed noise (benchmarks/README.md, "Deep training on CPU").
    precision = "auto"

    def _build(self, input_shape: tuple[int, int, int], steps_per_epoch: int) -> Any:
        import keras
        from keras import layers

        inputs = keras.Input(shape=input_shape)
        x = layers.Conv2D(64, 3, activation="relu")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(32, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="cnn_seed")
        self._compile(model, keras.optimizers.SGD(self.learning_rate))
        return model


@register_model
class CNNStrong(KerasPlugin):
    """A from-scratch CNN done well, sized to train in minutes on two CPU cores.

    Grayscale 128 px in [0, 1] -> augmentation (rotation, shift, zoom, brightness, contrast; no
    flips) -> a stride-2 stem and four blocks of two 3x3 convolutions with batch normalisation
    (``width``, 2x, 4x, 8x filters), max pooling between blocks -> global average pooling ->
    dropout -> sigmoid. AdamW with a cosine-decayed learning rate (short linear warm-up),
    balanced class weights, early stopping on validation ROC AUC with the best weights restored.
    """

    card = ModelCard(
        name="cnn_strong",
        family="cnn",
        framework="keras",
        description="From-scratch CNN with batch norm, chest-film augmentation, class weights, "
                    "cosine LR, early stopping on val AUC.",
        input_size=128,
        channels=1,
        requires=("keras",),
        accelerator=True,
        reference="Ioffe & Szegedy 2015 (batch norm); Loshchilov & Hutter 2019 (AdamW, "
                  "cosine schedule)",
    )

    epochs = 14
    learning_rate = 2e-3
    patience = 5
    restore_best = True
    class_weight = "balanced"
    weight_decay: float = param(1e-4, low=0)
    width: int = param(24, low=1)
    dropout: float = param(0.3, low=0, high=1, high_exclusive=True)
    augment: bool = True
    # bfloat16 on CPUs with bfloat16 units: fewer CPU seconds per epoch, validation ROC AUC
    # within the seed-to-seed noise (benchmarks/README.md, "Deep training on CPU").
    precision = "auto"

    def _build(self, input_shape: tuple[int, int, int], steps_per_epoch: int) -> Any:
        import keras
        from keras import layers

        def conv_bn(x: Any, filters: int, strides: int = 1) -> Any:
            x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            return layers.Activation("relu")(x)

        inputs = keras.Input(shape=input_shape)
        x = inputs
        if self.augment:
            for layer in chest_augmentation(value_range(self._preprocess(), input_shape[-1]),
                                            seed=self.seed):
                x = layer(x)
        w = int(self.width)
        x = conv_bn(x, w, strides=2)
        for i, filters in enumerate((w, 2 * w, 4 * w, 8 * w)):
            if i:
                x = layers.MaxPooling2D(2)(x)
            x = conv_bn(x, filters)
            x = conv_bn(x, filters)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(self.dropout, seed=self.seed)(x)
        outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="cnn_strong")
        self._compile(model, self._optimizer(steps_per_epoch))
        return model

    def _optimizer(self, steps_per_epoch: int) -> Any:
        import keras

        # Warm up for one epoch (at most a tenth of training), then cosine decay to 2 %.
        steps = max(2, steps_per_epoch * int(self.epochs))
        warmup = max(1, min(steps_per_epoch, steps // 10))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=self.learning_rate * 0.1, decay_steps=steps - warmup,
            alpha=0.02, warmup_target=self.learning_rate, warmup_steps=warmup,
        )
        return keras.optimizers.AdamW(schedule, weight_decay=self.weight_decay)
