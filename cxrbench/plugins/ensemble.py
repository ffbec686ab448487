"""Ensembles: the average of several plugins' probabilities, each member fitted here.

An ensemble fits every member (registered plugins, at their own defaults, with the ensemble's
seed) on the same training and validation images, so its fit time, as the harness measures it,
is the sum of its members' (``fit_info['members']`` lists each one's). Members that want
another input size or channel count than the ensemble's get the images resized (Pillow,
bilinear with antialiasing) under content hashes of their own, so no feature cache confuses
them with images decoded at that size.

Each member's probability is already calibrated on training data by its own recipe (logistic
regression; Platt scaling on out-of-fold scores; a sigmoid trained with log loss) and the
ensemble averages them: ``weighting="equal"``, or ``"val_logloss"``: non-negative weights
summing to one that minimise the log loss on validation (which the threshold then also uses:
an optimistic choice, offered for comparison). Soft voting as in Kuncheva, *Combining Pattern
Classifiers*, 2nd ed., Wiley 2014, ch. 5.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, PluginError, param
from cxrbench.plugins.persistence import ArtifactError, load_plain_state, save_plain_state
from cxrbench.plugins.preprocessing import derived_hashes
from cxrbench.plugins.registry import create_model, get_card, register_model

WEIGHTINGS = ("equal", "val_logloss")


def member_shape(name: str, params: dict[str, Any] | None = None) -> tuple[int, int]:
    """(input size, channels) a member wants: its ``input_size`` parameter, else its card's."""
    from cxrbench.plugins.registry import get_model_class

    cls = get_model_class(name)
    specs = cls.param_specs()
    size = (params or {}).get("input_size",
                              specs["input_size"].default if "input_size" in specs
                              else get_card(name).input_size)
    return int(size), int(get_card(name).channels)


def _resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(gray), size, size), dtype=np.uint8)
    for i, g in enumerate(gray):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(g)).resize(
            (size, size), Image.Resampling.BILINEAR, reducing_gap=None))
    return out


def adapt_images(images: ImageSet, size: int, channels: int) -> ImageSet:
    """``images`` at ``size`` px and ``channels`` channels (a view when they already are)."""
    from dataclasses import replace

    have_size, have_channels = images.images.shape[1], images.images.shape[3]
    if have_size == size and have_channels == channels:
        return images
    gray = (np.asarray(images.images[..., 0]) if have_channels == 1 else
            np.round(np.asarray(images.images, np.float32).mean(axis=3)).astype(np.uint8))
    hashes = images.content_hashes
    if have_size != size:
        gray = _resize_gray(gray, size)
        hashes = derived_hashes(hashes, f"resized-bilinear:{have_size}->{size}")
    pixels = gray[..., None]
    if channels != 1:
        pixels = np.broadcast_to(pixels, (*gray.shape, channels))
    return replace(images, images=pixels, content_hashes=hashes)


def _val_logloss_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights on the simplex minimising the log loss of ``P @ w`` (softmax parametrisation)."""
    from scipy.optimize import minimize

    eps = 1e-6

    def loss(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        p = np.clip(P @ w, eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    theta = minimize(loss, np.zeros(P.shape[1]), method="Nelder-Mead",
                     options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 2000}).x
    w = np.exp(theta - theta.max())
    return w / w.sum()


@register_model
class Ensemble(Plugin):
    """Soft-voting ensemble of registered plugins (see the module docstring)."""

    card = ModelCard(
        name="ensemble",
        family="ensemble",
        framework="cxrbench",
        description="Average of the members' calibrated probabilities; each member fitted "
                    "inside, so its cost is the sum of theirs.",
        input_size=224,
        channels=1,
        requires=("sklearn",),
        reference="Kuncheva, Combining Pattern Classifiers, 2nd ed., Wiley 2014 (soft voting)",
    )
    check_params: ClassVar[dict[str, Any]] = {
        "members": ("pixels_logreg", "majority"), "input_size": 32}

    members: tuple[str, ...] = ("pixels_logreg", "hog_svm")
    weighting: str = param("equal", choices=WEIGHTINGS)
    input_size: int = param(224, low=8)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        if len(self.members) < 2 or len(set(self.members)) != len(self.members):
            raise PluginError(f"{self.card.name}: members must name two or more different "
                              f"plugins, got {list(self.members)}")
        if self.card.name in self.members or "ensemble" in self.members:
            raise PluginError(f"{self.card.name}: an ensemble cannot contain itself")
        self.members_: list[Plugin] = []
        info: list[dict[str, Any]] = []
        val_probs = []
        for name in self.members:
            member = create_model(name, seed=self.seed)
            size, channels = member_shape(name, member.get_params())
            start = time.perf_counter()
            member.fit(adapt_images(train, size, channels), adapt_images(val, size, channels))
            fit_s = time.perf_counter() - start
            p_val = member.predict_proba(adapt_images(val.without_labels(), size, channels))
            val_probs.append(p_val)
            self.members_.append(member)
            member_info = getattr(member, "fit_info_", {}) or {}
            info.append({"model": name, "input_size": size, "channels": channels,
                         "fit_s": round(fit_s, 3), "n_params": member_info.get("n_params"),
                         "val_auc": _auc(val.labels, p_val)})
        P = np.column_stack(val_probs)
        if self.weighting == "val_logloss" and val.labels is not None \
                and len(np.unique(val.labels)) == 2:
            weights = _val_logloss_weights(P, np.asarray(val.labels, dtype=float))
        else:
            weights = np.full(len(self.members), 1.0 / len(self.members))
        self.weights_ = weights
        n_params = [m["n_params"] for m in info]
        self.fit_info_ = {
            "members": info,
            "weights": [round(float(w), 5) for w in weights],
            "weighting": self.weighting,
            "member_fit_s_sum": round(sum(m["fit_s"] for m in info), 3),
            "n_params": int(sum(n_params)) if all(n is not None for n in n_params) else None,
        }

    def _predict(self, images: ImageSet) -> np.ndarray:
        probs = []
        for member in self.members_:
            size, channels = member_shape(member.card.name, member.get_params())
            probs.append(member.predict_proba(adapt_images(images, size, channels)))
        return np.clip(np.column_stack(probs) @ self.weights_, 0.0, 1.0)


    # Saved as the plain state (weights, fit_info) plus one sub-folder per member, each in
    # that member's own safe format; members are rebuilt by name and seed, as in _fit.
    def _save(self, directory: Path) -> list[Path]:
        written = save_plain_state(self, directory, skip=("members_",))
        for i, member in enumerate(self.members_):
            written += member.save(directory / f"member_{i}")
        return written

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)
        members = []
        for i, name in enumerate(self.members):
            folder = directory / f"member_{i}"
            if not folder.is_dir():
                raise ArtifactError(f"{folder} is missing: the ensemble's member {name!r} "
                                    "was not saved with it")
            members.append(create_model(name, seed=self.seed).load(folder))
        self.members_ = members


def _auc(labels: np.ndarray | None, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if labels is None or len(np.unique(labels)) < 2:
        return None
    return round(float(roc_auc_score(labels, p)), 5)
