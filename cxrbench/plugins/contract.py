"""The plugin contract: what a model must provide to be benchmarked.

A plugin is a class with a ``card`` (metadata, readable without importing heavy frameworks),
an ``__init__`` that only stores keyword hyperparameters and a seed, ``fit(train, val)`` and
``predict_proba(images)``. The harness, never the plugin, computes metrics and timings.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

Family = Literal["baseline", "classical", "mlp", "cnn", "transfer"]


@dataclass(frozen=True)
class ModelCard:
    """Metadata about a plugin, filterable without loading any weights.

    ``input_size`` and ``channels`` tell the harness which decoded images (square, uint8) to hand
    the plugin; ``requires`` names the importable modules it needs (checked before a run).
    ``known_failures`` maps a conformance-check name to the reason it is expected to fail.
    """

    name: str
    family: Family
    framework: str
    description: str
    input_size: int = 128
    channels: Literal[1, 3] = 1
    requires: tuple[str, ...] = ()
    deterministic: bool = True
    picklable: bool = True
    reference: str = ""
    known_failures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageSet:
    """Images handed to a plugin: a read-only view, never a copy the plugin must own.

    ``images`` is ``(n, size, size, channels)`` uint8, often a memory-mapped cache array, so
    plugins must stream over it in batches instead of converting all of it to float at once.
    ``labels`` are 0 (normal) / 1 (pneumonia), or None for images whose labels are withheld.
    ``content_hashes`` identify each image's file content (keys for feature caches);
    ``groups`` are patient ids, for grouped cross-validation inside a plugin. ``cache_dir`` is
    the cxrbench cache folder the run uses (feature caches of these images go under it); None
    means the default folder (``cxrbench.data.default_cache_dir()``).
    """

    images: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray
    content_hashes: np.ndarray
    groups: np.ndarray
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4:
            raise ValueError(f"images must be (n, h, w, c), got shape {self.images.shape}")
        for name in ("ids", "content_hashes", "groups"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} images")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"labels has {len(self.labels)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def without_labels(self) -> ImageSet:
        """The same images with labels withheld (what ``predict_proba`` receives)."""
        return replace(self, labels=None)

    def subset(self, index: np.ndarray) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        return replace(self, images=self.images[index], labels=labels, ids=self.ids[index],
                       content_hashes=self.content_hashes[index], groups=self.groups[index])


class NotFittedError(RuntimeError):
    """``predict_proba`` was called before ``fit``."""


class PluginError(ValueError):
    """A plugin was given input it cannot work with (e.g. one class only)."""


class Plugin:
    """Base class for plugins. Subclasses set ``card`` and implement ``_fit``/``_predict``.

    ``__init__`` stores keyword hyperparameters only (scikit-learn convention), so that
    ``type(p)(**p.get_params())`` rebuilds an identical unfitted plugin. Fitted state ends in
    ``_``. ``fit_info_`` is a JSON-serialisable dict the harness copies into the results
    (chosen hyperparameters, training history, weights hash, parameter count).
    """

    card: ClassVar[ModelCard]

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    # --- parameters --------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Plugin:
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {key!r}; valid: {sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    # --- the contract ------------------------------------------------------------------------
    def fit(self, train: ImageSet, val: ImageSet) -> Plugin:
        """Fit on ``train``; ``val`` may be used for early stopping, never ``test``."""
        if train.labels is None:
            raise PluginError(f"{self.card.name}: fit needs labelled training images")
        classes = np.unique(train.labels)
        if len(classes) < 2:
            raise PluginError(
                f"{self.card.name}: training data has only class {classes.tolist()}; "
                "a binary classifier needs both NORMAL and PNEUMONIA images"
            )
        self.fit_info_: dict[str, Any] = {}
        self._fit(train, val)
        self.is_fitted_ = True
        return self

    def predict_proba(self, images: ImageSet) -> np.ndarray:
        """Probability of pneumonia for each image, shape ``(n,)``, in [0, 1]."""
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                f"{self.card.name} is not fitted yet: call fit(train, val) before predict_proba"
            )
        return np.asarray(self._predict(images), dtype=np.float64).reshape(-1)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        raise NotImplementedError

    def _predict(self, images: ImageSet) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
