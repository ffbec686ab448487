"""Frozen-backbone embeddings as cached features: an ImageNet network computes them once.

:class:`BackboneExtractor` is a :class:`~cxrbench.plugins.features.FeatureExtractor` whose
features are the global-average-pooled last feature map of a frozen ``keras.applications`` (or
ported) backbone, so they go through :func:`~cxrbench.plugins.features.extract_cached` like
HOG: keyed by each image's content hash (standardised images have hashes of their own), the
backbone, its weights file's sha256, the image size and channels. The first plugin that asks
computes them; every later fit, seed and head reads them.

The network runs in the calling process (``parallel = False``: worker processes would each
load it), in batches, with a progress line on stderr about every 1,000 images. Keras is
imported on first use only.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from cxrbench.plugins.features import FeatureExtractor

_PROGRESS_EVERY = 1024


@functools.lru_cache(maxsize=4)
def pooled_backbone(backbone: str, alpha: float | None, weights_path: str | None,
                    size: int) -> tuple[Any, Any]:
    """(Keras model: image -> pooled features, its ``preprocess_input``), built once per
    process. Without a weights file the backbone starts from Keras' initialisers under seed 0
    (repeatable, and recorded in the cache key as ``weights_sha256=None``)."""
    import keras

    from cxrbench.plugins.transfer import application

    constructor, preprocess = application(backbone)
    kwargs: dict[str, Any] = {"include_top": False, "input_shape": (size, size, 3),
                              "weights": None}
    if alpha is not None:
        kwargs["alpha"] = alpha
    if weights_path is None:
        keras.utils.set_random_seed(0)
    base = constructor(**kwargs)
    if weights_path is not None:
        base.load_weights(weights_path)
    pooled = keras.Model(base.input, keras.layers.GlobalAveragePooling2D()(base.output))
    return pooled, preprocess


@dataclass(frozen=True)
class BackboneExtractor(FeatureExtractor):
    """Global-average-pooled features of a frozen backbone at the images' own size."""

    name: ClassVar[str] = "embedding"
    parallel: ClassVar[bool] = False

    backbone: str = "EfficientNetLite0"
    alpha: float | None = None
    weights_sha256: str | None = None  # the identity of the weights (None: random init)
    weights_path: str | None = field(default=None, compare=False)  # where to read them
    batch_size: int = field(default=64, compare=False)

    def params(self) -> dict[str, Any]:
        """The cache key's part: the weights' sha256, not where the file lies."""
        out = asdict(self)
        del out["weights_path"], out["batch_size"]
        return out

    def transform(self, batch: np.ndarray) -> np.ndarray:
        """``(n, h, w, c)`` uint8 -> ``(n, d)`` float32 pooled features."""
        n, size = len(batch), int(batch.shape[1])
        if n == 0:
            return np.zeros((0, 0), dtype=np.float32)
        model, preprocess = pooled_backbone(self.backbone, self.alpha, self.weights_path, size)
        out = []
        start = time.perf_counter()
        for i in range(0, n, self.batch_size):
            x = np.asarray(batch[i:i + self.batch_size], dtype=np.float32)
            if x.shape[3] == 1:
                x = np.repeat(x, 3, axis=3)
            feats = model.predict_on_batch(np.asarray(preprocess(x), dtype=np.float32))
            out.append(np.asarray(feats, dtype=np.float32))
            done = i + len(x)
            if n >= _PROGRESS_EVERY and (done // _PROGRESS_EVERY > i // _PROGRESS_EVERY
                                         or done == n):
                print(f"[embedding {self.backbone} {size}px] {done}/{n} images, "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        return np.concatenate(out)
