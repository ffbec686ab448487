"""Floors every real model must beat."""

from __future__ import annotations

import numpy as np

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.plugins.registry import register_model


@register_model
class Majority(Plugin):
    """Predicts the training majority class for every image (probability 1 or 0): its accuracy
    is the test split's prevalence of the majority class, its ROC AUC 0.5."""

    card = ModelCard(
        name="majority",
        family="baseline",
        framework="numpy",
        description="Always the training majority class: the floor every model must beat.",
        input_size=32,
        channels=1,
        reference="The prevalence floor: Kermany et al., Cell 172(5), 2018 report 62.5 % "
        "pneumonia on their test split.",
    )

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        assert train.labels is not None
        self.majority_ = int(np.mean(train.labels) >= 0.5)
        self.fit_info_ = {"majority_class": self.majority_}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return np.full(len(images), float(self.majority_))
