"""Transfer learning from ImageNet backbones (Keras 3 ``keras.applications``).

Three ways to use a backbone:

- ``transfer_mobilenetv2`` (MobileNetV2, alpha 0.35) and ``transfer_mobilenet`` (MobileNet v1,
  alpha 0.25): small backbones whose ImageNet weights work offline (found in
  ``$CXRBENCH_WEIGHTS_DIR``, see :mod:`cxrbench.plugins.weights`).
- ``transfer`` with ``backbone="EfficientNetB0"`` (any ``keras.applications`` class name) and
  ``weights="imagenet"``: Keras downloads the weights on first use (needs a network).
  ``cxrbench run --models transfer --params backbone=ResNet50`` style overrides go here.
- :func:`make_transfer_plugin` builds a named plugin class for one backbone, to register it:
  ``register_model(make_transfer_plugin("transfer_effb0", "EfficientNetB0"))``.

Training: the backbone is frozen while a new head (global average pooling, dropout, one sigmoid
unit) trains for ``head_epochs`` at ``learning_rate``; then the whole backbone (or its last
``fine_tune_layers`` layers) is unfrozen and fine-tuned for ``epochs`` at
``fine_tune_learning_rate`` with cosine decay. Batch-normalisation layers stay in inference mode
(running ImageNet statistics, not updated), the usual recipe for small data sets. Inputs are RGB
with the backbone's own ``preprocess_input`` (MobileNets: [-1, 1]). Early stopping on
validation ROC AUC spans both phases; the best weights are restored.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from cxrbench.plugins.contract import ModelCard, PluginError
from cxrbench.plugins.keras_common import (
    KerasPlugin,
    Preprocess,
    chest_augmentation,
    train_phase,
    value_range,
)
from cxrbench.plugins.registry import register_model
from cxrbench.plugins.weights import resolve_weights

TRANSFER_REFERENCE = ("Kermany et al., Cell 172(5), 2018 (transfer learning on these images); "
                      "Howard et al. 2017 (MobileNet); Sandler et al. 2018 (MobileNetV2)")


def application(name: str) -> tuple[Callable[..., Any], Callable[[np.ndarray], np.ndarray]]:
    """The ``keras.applications`` constructor called ``name`` and its ``preprocess_input``."""
    import keras

    apps = keras.applications
    constructor = getattr(apps, name, None) if name[:1].isupper() else None
    if constructor is None:
        known = [n for n in dir(apps) if n[:1].isupper()]
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
        reference=TRANSFER_REFERENCE,
    )

    def __init__(
        self, *, backbone: str = "MobileNetV2", alpha: float | None = 0.35,
        weights: str | None = "imagenet", epochs: int = 6, head_epochs: int = 2,
        batch_size: int = 32, input_size: int = 128, learning_rate: float = 1e-3,
        fine_tune_learning_rate: float = 3e-4, fine_tune_layers: int | None = None,
        dropout: float = 0.2, augment: bool = True, patience: int = 3,
        restore_best: bool = True, class_weight: str | None = "balanced",
        mixed_precision: bool = False, jit_compile: bool | str = "auto", run_eagerly: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.backbone = backbone
        self.alpha = alpha
        self.weights = weights
        self.epochs = epochs
        self.head_epochs = head_epochs
        self.batch_size = batch_size
        self.input_size = input_size
        self.learning_rate = learning_rate
        self.fine_tune_learning_rate = fine_tune_learning_rate
        self.fine_tune_layers = fine_tune_layers
        self.dropout = dropout
        self.augment = augment
        self.patience = patience
        self.restore_best = restore_best
        self.class_weight = class_weight
        self.mixed_precision = mixed_precision
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly

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
            for layer in chest_augmentation(value_range(self._preprocess()), seed=self.seed):
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


def make_transfer_plugin(
    name: str, backbone: str, alpha: float | None = None, *, input_size: int = 128,
    description: str | None = None, class_name: str | None = None, **defaults: Any,
) -> type[Transfer]:
    """A :class:`Transfer` subclass with its own name and defaults (register it yourself).

    ``defaults`` change other hyperparameters' defaults (e.g. ``epochs=4``); the returned
    class's ``__init__`` signature shows them, so ``get_params()`` reports them. Assign the
    class to a module-level name equal to ``class_name`` so that fitted plugins pickle.
    """
    defaults = {"backbone": backbone, "alpha": alpha, "input_size": input_size, **defaults}
    base_signature = inspect.signature(Transfer.__init__)
    unknown = set(defaults) - set(base_signature.parameters)
    if unknown:
        raise TypeError(f"make_transfer_plugin: unknown hyperparameters {sorted(unknown)}")
    signature = base_signature.replace(parameters=[
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in base_signature.parameters.values()
    ])

    def __init__(self: Transfer, **params: Any) -> None:
        Transfer.__init__(self, **{**defaults, **params})

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    width = "" if alpha is None else f" alpha {alpha}"
    card = ModelCard(
        name=name, family="transfer", framework="keras",
        description=description or f"ImageNet {backbone}{width}, new head, head-first then "
                                   "fine-tuned.",
        input_size=input_size, channels=3, requires=("keras",), reference=TRANSFER_REFERENCE,
    )
    class_name = class_name or "".join(part.capitalize() for part in name.split("_"))
    caller = inspect.currentframe()
    module = caller.f_back.f_globals.get("__name__", __name__) if caller and caller.f_back \
        else __name__
    __init__.__qualname__ = f"{class_name}.__init__"
    return type(class_name, (Transfer,), {"card": card, "__init__": __init__,
                                          "__module__": module, "__qualname__": class_name})


register_model(Transfer)
TransferMobileNetV2 = register_model(make_transfer_plugin(
    "transfer_mobilenetv2", "MobileNetV2", 0.35, class_name="TransferMobileNetV2",
    description="ImageNet MobileNetV2 (alpha 0.35, 410k params) at 128 px, new head, "
                "head-first then fine-tuned.",
))
TransferMobileNet = register_model(make_transfer_plugin(
    "transfer_mobilenet", "MobileNet", 0.25, class_name="TransferMobileNet",
    description="ImageNet MobileNet v1 (alpha 0.25, 219k params) at 128 px, new head, "
                "head-first then fine-tuned.",
))
