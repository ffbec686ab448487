"""Grad-CAM (Selvaraju et al., ICCV 2017) for the Keras plugins.

The network is split at its last layer with a spatial output (the last convolution or pooling
block of a CNN; the whole backbone of a transfer model, used as one layer): its maps ``A_k``
are computed once, and the gradient of the score with respect to them gives each map's weight
(the spatial mean of its gradient); the CAM is ``ReLU(sum_k w_k A_k)``, resized to the input
and scaled to [0, 1] per image. The score is the final sigmoid unit's *logit* (the probability
saturates on confidently scored images, and its gradient with it), signed for the class the
model predicted at its threshold, so the map shows the evidence for that prediction.

The split needs the network to be a chain of layers (each feeding the next), which every deep
plugin here is; this is checked by comparing the chain's output with the model's on the same
batch, and a network that is not a chain gets no Grad-CAM (:class:`GradCamUnavailable`), only
occlusion. Images are prepared as the plugin prepares them for prediction (its standardisation
step, channels, size, scaling). For a plugin that crops to the thorax, the CAM covers the crop
and is placed back into the crop's box on the full image (zero outside: the model never saw it).

Keras 3 has no backend-neutral gradient, so :func:`_gradient` is the one backend switch
(TensorFlow, JAX, PyTorch); everything else is the Keras API.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class GradCamUnavailable(ValueError):
    """Grad-CAM cannot be computed for this model (it is not a Keras chain of layers)."""


def gradcam_maps(plugin: Any, images: np.ndarray, thresholds: float | np.ndarray
                 ) -> np.ndarray:
    """Grad-CAM maps ``(n, h, w)`` in [0, 1] of ``images`` ``(n, h, w, c)`` uint8 for a fitted
    Keras plugin; raises :class:`GradCamUnavailable` when the plugin is not one."""
    from cxrbench.plugins.contract import ImageSet, standardise_images
    from cxrbench.plugins.keras_common import KerasPlugin, load_batch

    if not isinstance(plugin, KerasPlugin) or getattr(plugin, "model_", None) is None:
        raise GradCamUnavailable(f"{plugin.card.name} is not a Keras network")
    n, h, w, _ = images.shape
    ids = np.asarray([str(i) for i in range(n)])
    seen, _ = standardise_images(plugin, ImageSet(images=images, labels=None, ids=ids,
                                                  content_hashes=ids, groups=ids))
    model = plugin.model_
    x = load_batch(seen.images, np.arange(n), plugin.card.channels, plugin._preprocess(),
                   size=int(model.input_shape[1]))
    layers = _chain(model, x)
    features, cut = _features(layers, x)
    p = np.asarray(_call(model, x), dtype=np.float64).reshape(-1)
    sign = np.where(p >= np.broadcast_to(thresholds, (n,)), 1.0, -1.0).astype(np.float32)
    grads = _gradient(lambda a: _logit(layers[cut + 1:], a), features, sign)
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cams = np.maximum((weights * features).sum(axis=-1), 0.0)
    out = np.stack([_resized(cam, int(model.input_shape[1])) for cam in cams])
    if getattr(plugin, "thorax_crop", False):
        out = _uncrop(out, images)
    if out.shape[1:] != (h, w):
        out = np.stack([_resized(cam, h, w) for cam in out])
    top = out.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
    return np.where(top > 0, out / np.where(top > 0, top, 1.0), 0.0)


def _to_numpy(tensor: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(tensor))


def _call(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's output in inference mode, computed eagerly as the chain is (compiled
    prediction can differ in the last digits, e.g. under bfloat16)."""
    with warnings.catch_warnings():
        # A saved functional model expects its inputs as a list of one; a bare array is the
        # same input, and Keras says so in a warning.
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        return _to_numpy(model(x, training=False))


def _chain(model: Any, x: np.ndarray) -> list[Any]:
    """The model's layers (input layers left out), checked to compute the model as a chain."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    h: Any = x
    try:
        for layer in layers:
            h = layer(h, training=False)
        same = np.allclose(_to_numpy(h), _call(model, x), atol=1e-4)
    except Exception as err:  # noqa: BLE001  # a layer with several inputs, a shape mismatch
        raise GradCamUnavailable(f"{model.name} is not a chain of layers ({err})") from None
    if not same:
        raise GradCamUnavailable(f"{model.name} is not a chain of layers: its layers in order "
                                 "do not compute its output")
    return layers


def _features(layers: list[Any], x: np.ndarray) -> tuple[np.ndarray, int]:
    """The output of the last layer with a spatial (n, h, w, c) output, and its index."""
    h: Any = x
    found: tuple[np.ndarray, int] | None = None
    for i, layer in enumerate(layers):
        h = layer(h, training=False)
        if len(h.shape) == 4 and h.shape[1] > 1 and h.shape[2] > 1:
            found = (np.asarray(_to_numpy(h), dtype=np.float32), i)
    if found is None:
        raise GradCamUnavailable("the network has no layer with a spatial output")
    return found


def _logit(head: list[Any], a: Any) -> Any:
    """The final unit's logit from the maps ``a``: the last Dense layer's pre-activation when
    it is a sigmoid unit, else the logit of the output probability."""
    import keras

    ops = keras.ops
    last = head[-1] if head else None
    sigmoid_dense = (isinstance(last, keras.layers.Dense)
                     and getattr(last.activation, "__name__", "") == "sigmoid")
    h = a
    for layer in head[:-1] if sigmoid_dense else head:
        h = layer(h, training=False)
    if sigmoid_dense:
        kernel = ops.cast(last.kernel, "float32")
        out = ops.matmul(ops.cast(h, "float32"), kernel)
        if last.use_bias:
            out = out + ops.cast(last.bias, "float32")
        return ops.reshape(out, (-1,))
    p = ops.clip(ops.reshape(ops.cast(h, "float32"), (-1,)), 1e-7, 1 - 1e-7)
    return ops.log(p) - ops.log(1 - p)


def _gradient(score: Any, features: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """d sum(sign * score(A)) / dA at ``features`` (images are independent in inference mode,
    so this is each image's own gradient). The only backend-specific code of the report."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        a = tf.convert_to_tensor(features)
        with tf.GradientTape() as tape:
            tape.watch(a)
            total = tf.reduce_sum(score(a) * sign)
        return np.asarray(tape.gradient(total, a), dtype=np.float32)
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda a: (score(a) * sign).sum())(features),
                          dtype=np.float32)
    if backend == "torch":
        import torch

        a = torch.tensor(features, requires_grad=True)
        (score(a) * torch.as_tensor(sign)).sum().backward()
        return a.grad.detach().cpu().numpy().astype(np.float32)
    raise GradCamUnavailable(f"Grad-CAM supports the tensorflow, jax and torch backends, not "
                             f"{backend!r}")


def _resized(cam: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width or height, height), Image.Resampling.BILINEAR),
                      dtype=np.float64)


def _uncrop(cams: np.ndarray, images: np.ndarray) -> np.ndarray:
    """CAMs over each image's thorax crop placed into that crop's box on the full image."""
    from cxrbench.plugins.preprocessing import thorax_box

    out = np.zeros((len(images), *images.shape[1:3]))
    for i, image in enumerate(images):
        gray = image[..., 0] if image.shape[-1] == 1 else \
            np.round(image.astype(np.float32).mean(axis=-1)).astype(np.uint8)  # as the crop
        (top, bottom, left, right), _ = thorax_box(gray)
        h, w = gray.shape
        y0, y1 = int(round(top * h)), max(int(round(top * h)) + 1, int(round(bottom * h)))
        x0, x1 = int(round(left * w)), max(int(round(left * w)) + 1, int(round(right * w)))
        out[i, y0:y1, x0:x1] = _resized(cams[i], y1 - y0, x1 - x0)
    return out
