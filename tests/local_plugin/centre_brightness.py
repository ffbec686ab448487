"""A plugin in a plain file, for ``--plugins`` (README, "Local plugin files").

    cxrbench models --plugins tests/local_plugin/centre_brightness.py
    cxrbench run --plugins tests/local_plugin/centre_brightness.py \
        --models centre_brightness,pixels_logreg --seeds 0,1 --out out/

Pneumonia makes the lungs whiter on a radiograph; this floor scores an image by the mean
brightness of its central crop, rescaled by the range seen in training. Not a model to use:
a yardstick that any real model must beat.
"""

import numpy as np

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, param
from cxrbench.plugins.registry import register_model


@register_model
class CentreBrightness(Plugin):
    card = ModelCard(name="centre_brightness", family="baseline", framework="numpy",
                     description="Mean brightness of the central crop, rescaled.",
                     input_size=64, channels=1, reference="a brightness floor")

    crop: float = param(0.5, low=0, high=1, low_exclusive=True)  # share of each side kept

    def _brightness(self, images: ImageSet) -> np.ndarray:
        size = images.images.shape[1]
        margin = int(round(size * (1 - self.crop) / 2))
        centre = images.images[:, margin:size - margin, margin:size - margin, :]
        return np.concatenate([batch.mean(axis=(1, 2, 3)) for batch in
                               np.array_split(centre, max(1, len(centre) // 512))])

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        values = self._brightness(train)
        self.low_, self.high_ = float(values.min()), float(values.max())
        self.fit_info_ = {"brightness_range": [self.low_, self.high_]}

    def _predict(self, images: ImageSet) -> np.ndarray:
        span = max(self.high_ - self.low_, 1e-9)
        return np.clip((self._brightness(images) - self.low_) / span, 0, 1)
