"""An example cxrbench plugin, installed through an entry point (see pyproject.toml).

``example_brightness`` summarises how bright the lung fields are (mean, spread and upper
percentiles inside two elliptical lung masks, relative to the whole image) and fits a logistic
regression on those few numbers. Opacities (consolidation) make the lungs whiter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.plugins.persistence import (
    load_plain_state,
    load_sklearn,
    save_plain_state,
    save_sklearn,
)

# Every type the saved pipeline may hold: loading refuses a file with any other.
PIPELINE_TYPES = ["sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
                  "sklearn.linear_model._logistic.LogisticRegression"]

__all__ = ["BrightnessPlugin", "lung_brightness_features"]


def _lung_mask(size: int) -> np.ndarray:
    """Two vertical ellipses where the lungs are on a frontal (PA/AP) film."""
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    left = ((xx - 0.3) / 0.17) ** 2 + ((yy - 0.48) / 0.32) ** 2 <= 1
    right = ((xx - 0.7) / 0.17) ** 2 + ((yy - 0.48) / 0.32) ** 2 <= 1
    return left | right


def lung_brightness_features(images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, h, w, c) uint8 -> (n, 7): lung mean, std, 75th and 90th percentile, image mean and
    std, and the lung-to-image brightness ratio. Streams in batches (images may be a memmap)."""
    mask = _lung_mask(images.shape[1])
    rows = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], dtype=np.float32).mean(axis=3) / 255
        lungs = batch[:, mask]
        whole_mean = batch.mean(axis=(1, 2))
        rows.append(np.column_stack([
            lungs.mean(axis=1), lungs.std(axis=1),
            np.percentile(lungs, 75, axis=1), np.percentile(lungs, 90, axis=1),
            whole_mean, batch.std(axis=(1, 2)),
            lungs.mean(axis=1) / np.maximum(whole_mean, 1e-3),
        ]))
    return np.concatenate(rows) if rows else np.zeros((0, 7))


class BrightnessPlugin(Plugin):
    """Logistic regression on lung-field brightness statistics."""

    card = ModelCard(
        name="example_brightness",
        family="classical",
        framework="scikit-learn",
        description="Example third-party plugin: lung-field brightness statistics -> "
                    "logistic regression.",
        input_size=64,
        channels=1,
        requires=("sklearn",),
        reference="cxrbench example plugin (tests/cxrbench-example-plugin)",
    )

    def __init__(self, *, C: float = 1.0, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.C = C

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X = lung_brightness_features(train.images)
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C))
        self.model_.fit(X, train.labels)
        self.fit_info_ = {"coefficients": self.model_[-1].coef_[0].round(4).tolist()}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return self.model_.predict_proba(lung_brightness_features(images.images))[:, 1]

    # Saving (`cxrbench run --save-models`): plain state by default; the scikit-learn pipeline
    # through skops, which loads without unpickling.
    def _save(self, directory: Path) -> list[Path]:
        return [*save_plain_state(self, directory, skip=("model_",)),
                save_sklearn(self.model_, directory / "pipeline.skops")]

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)
        self.model_ = load_sklearn(directory / "pipeline.skops", PIPELINE_TYPES)
