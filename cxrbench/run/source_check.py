"""The source check: how easily a simple classifier tells training images from another set's.

As in Zech et al. (PLoS Med 2018), where CNNs recognised the hospital a film came from: when
the images of an evaluation set are easy to tell from the training images by their look alone
(exposure, contrast, borders, text, file format), a model's score there mixes the disease with
the source. An AUC near 0.5 says this simple classifier sees no difference (a stronger one
might); near 1.0 says the sources differ visibly.

The method (also written into every result as ``method``), chosen to cost seconds:

- images decoded by the same decoder at the input shape of one of the run's saved models
  (grayscale preferred, then the smallest): both sides are already in the image cache, the
  run's images from the run and the set's from scoring it, so nothing is decoded again;
  colour images are averaged to gray;
- per image 16 x 16 block means (256 values), a 32-bin intensity histogram, mean and standard
  deviation: global appearance, no anatomy;
- both sides sampled class-balanced, by whole patients: at most ``per_class`` images of each
  label from the training split and from the evaluation set, so the disease cannot tell the
  sources apart (pneumonia prevalence differs between sets);
- standardised logistic regression (C = 0.1, liblinear), 5-fold cross-validation grouped by patient;
  the ROC AUC of the out-of-fold scores (training = 0, evaluation set = 1), with a 95 %
  patient-bootstrap interval (1000 resamples, seed 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PER_CLASS = 300  # images per label and side, at most
FOLDS = 5
C = 0.1
RESAMPLES = 1000
SEED = 0
METHOD = (f"logistic regression (C={C}, liblinear, standardised) on grayscale appearance features "
          "(16x16 block means, 32-bin histogram, mean, std) of the images as a saved model sees "
          "them (its input size; grayscale preferred); training images (0) vs "
          f"the set's images (1), each side class-balanced by patient (at most {PER_CLASS} "
          f"per label); ROC AUC of {FOLDS}-fold patient-grouped out-of-fold scores; 95 % "
          f"patient-bootstrap interval ({RESAMPLES} resamples, seed {SEED})")


def check_shape(shapes: list[tuple[int, int]]) -> tuple[int, int]:
    """The (size, channels) the check reads: grayscale first, then the smallest size."""
    return min(shapes, key=lambda shape: (shape[1] != 1, shape[0]))


def appearance_features(images: np.ndarray) -> np.ndarray:
    """``(n, size, size, channels)`` uint8 -> ``(n, 290)`` float features (16 x 16 block means,
    32-bin histogram, mean and standard deviation of the gray values)."""
    x = np.asarray(images, dtype=np.float32).mean(axis=3) / 255.0
    n, size = x.shape[0], x.shape[1]
    block = size // 16
    blocks = x[:, : block * 16, : block * 16].reshape(n, 16, block, 16, block).mean(axis=(2, 4))
    hist = np.stack([np.histogram(img, bins=32, range=(0.0, 1.0))[0] for img in x]) / (
        size * size)
    moments = np.stack([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)
    return np.hstack([blocks.reshape(n, -1), hist, moments]).astype(np.float64)


def balanced_sample(labels: np.ndarray, groups: np.ndarray, per_class: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Indices of whole patients per label, drawn at random until ``per_class`` images each."""
    chosen: list[np.ndarray] = []
    for label in (0, 1):
        index = np.flatnonzero(labels == label)
        patients = np.unique(groups[index])
        rng.shuffle(patients)
        taken = 0
        for patient in patients:
            mine = index[groups[index] == patient]
            chosen.append(mine)
            taken += len(mine)
            if taken >= per_class:
                break
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)


def sample_for_check(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The images of one side the check uses: class-balanced whole patients (seeded)."""
    rng = np.random.default_rng(SEED)
    return balanced_sample(np.asarray(labels), np.asarray(groups, dtype=str), PER_CLASS, rng)


def source_auc(train_images: np.ndarray, train_groups: np.ndarray, eval_images: np.ndarray,
               eval_groups: np.ndarray) -> dict[str, Any]:
    """ROC AUC (with interval) of telling ``eval`` images from ``train`` ones, both already
    sampled with :func:`sample_for_check` and decoded at the same shape; see the module."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cxrbench.stats import patient_weights, percentile_interval, resample_metrics

    X = np.vstack([appearance_features(train_images), appearance_features(eval_images)])
    y = np.r_[np.zeros(len(train_images), dtype=int), np.ones(len(eval_images), dtype=int)]
    # Patient ids of the two sides may coincide by name ("IM-0001"): keep them apart.
    groups = np.r_[np.char.add("train:", np.asarray(train_groups, dtype=str)),
                   np.char.add("eval:", np.asarray(eval_groups, dtype=str))]
    n_groups = [len(np.unique(groups[y == side])) for side in (0, 1)]
    folds = min(FOLDS, *n_groups)
    if folds < 2:
        raise ValueError("too few patients on one side for a cross-validated source check")
    scores = np.zeros(len(y))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for fit_index, score_index in cv.split(X, y, groups):
        # liblinear: the same fit as lbfgs here (out-of-fold AUC equal to 1e-4 on the real
        # data), in far fewer steps on these strongly correlated features.
        model = make_pipeline(StandardScaler(),
                              LogisticRegression(C=C, solver="liblinear", max_iter=2000))
        model.fit(X[fit_index], y[fit_index])
        scores[score_index] = model.predict_proba(X[score_index])[:, 1]
    weights = patient_weights(groups, RESAMPLES, SEED)
    samples = resample_metrics(y, scores, 0.5, weights)["roc_auc"]
    estimate = float(resample_metrics(y, scores, 0.5, np.ones((1, len(y))))["roc_auc"][0])
    low, high = percentile_interval(samples)
    return {"status": "ok", "roc_auc": estimate, "low": low, "high": high,
            "n_train": int(len(train_images)), "n_eval": int(len(eval_images)),
            "folds": int(folds), "image_size": int(train_images.shape[1]),
            "channels": int(train_images.shape[3]), "method": METHOD}
