"""Classical pipelines: hand-crafted scikit-image features + scikit-learn / XGBoost.

- ``hog_svm``: multi-scale HOG -> RBF (or linear) SVM, tuned by patient-grouped CV on train,
  Platt-calibrated on out-of-fold train scores.
- ``hog_xgboost``: HOG + LBP + intensity + GLCM features -> gradient-boosted trees, early
  stopping on the validation split.
- ``pixels_logreg``: logistic regression on 32 px pixels, the floor between ``majority`` and
  the real pipelines.

(``hog_mlp``, an MLP on the same HOG features, is in the mlp family: :mod:`cxrbench.plugins.mlp`.)
Features go through :func:`cxrbench.plugins.features.extract_cached`, so they are computed once per
image, size and parameter set, in parallel, and reused by every later fit, seed and plugin.
Heavy imports (scikit-learn estimators, XGBoost) happen inside methods: listing models stays
cheap. Each plugin returns probabilities; the harness picks the threshold on validation.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cxrbench.cores import openmp_wait_policy, usable_cores
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, param
from cxrbench.plugins.features import (
    ExtractionStats,
    GLCMExtractor,
    HOGExtractor,
    IntensityExtractor,
    LBPExtractor,
    PixelsExtractor,
    extract_cached,
)
from cxrbench.plugins.hog import DALAL_TRIGGS, hog_pyramid, scaled_cell
from cxrbench.plugins.persistence import (
    load_plain_state,
    load_sklearn,
    load_xgboost,
    save_plain_state,
    save_sklearn,
    save_xgboost,
)
from cxrbench.plugins.registry import register_model


# ------------------------------------------------------------------------------ helpers
def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Patient-grouped stratified folds, fewer when the data is tiny; None if not even 2."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_class = [len(np.unique(groups[labels == c])) for c in (0, 1)]
    k = min(n_splits, *per_class)
    if k < 2:
        return None
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = list(cv.split(np.zeros(len(labels)), labels, groups))
    if any(len(np.unique(labels[test])) < 2 for _, test in folds):
        return None
    return folds


def grouped_subsample(labels: np.ndarray, groups: np.ndarray, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Indices of whole patients, drawn at random until about ``n`` images are taken."""
    if len(labels) <= n:
        return np.arange(len(labels))
    patients = np.unique(groups)
    rng.shuffle(patients)
    by_patient = {p: np.flatnonzero(groups == p) for p in patients}
    chosen: list[np.ndarray] = []
    total = 0
    for p in patients:
        chosen.append(by_patient[p])
        total += len(by_patient[p])
        if total >= n:
            break
    return np.sort(np.concatenate(chosen))


def one_standard_error_choice(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Breiman's rule: the simplest candidate whose mean CV score is within one standard error
    of the best. ``scores`` are in order of increasing complexity."""
    best = max(scores, key=lambda s: s["cv_auc"])
    floor = best["cv_auc"] - best["cv_auc_se"]
    return next(s for s in scores if s["cv_auc"] >= floor)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


LOGISTIC_REGRESSION = "sklearn.linear_model._logistic.LogisticRegression"


class PlattCalibrator:
    """Logistic regression of the label on a classifier's out-of-fold decision values."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=1e4).fit(scores.reshape(-1, 1), labels)

    @classmethod
    def from_model(cls, model: Any) -> PlattCalibrator:
        """A calibrator around an already fitted logistic regression (a saved one)."""
        calibrator = cls.__new__(cls)
        calibrator.model_ = model
        return calibrator

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(np.asarray(scores).reshape(-1, 1))[:, 1]


# ------------------------------------------------------------------------------ hog_svm
def _svm(kernel: str, C: float, gamma: float, cache_mb: float = 200.0) -> Any:
    from sklearn.svm import SVC

    if kernel == "linear":
        return SVC(kernel="linear", C=C, cache_size=cache_mb)
    return SVC(kernel="rbf", C=C, gamma=gamma, cache_size=cache_mb)


def _approximate_svm(kernel: str, C: float, gamma: float, components: int, seed: int) -> Any:
    """A linear SVM on a Nystroem approximation of the RBF kernel (Williams & Seeger 2001), or
    on the features themselves for the linear kernel: time and memory linear in the number of
    images, where a kernel SVM grows with its square."""
    from sklearn.kernel_approximation import Nystroem
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    # Primal solver (many more images than features): a few Newton steps, deterministic.
    linear = LinearSVC(C=C, dual=False, max_iter=2000)
    if kernel == "linear":
        return linear
    return make_pipeline(Nystroem(kernel="rbf", gamma=gamma, n_components=components,
                                  random_state=seed), linear)


def _gamma_scale(X: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"``: 1 / (n_features * variance of X)."""
    var = float(X.var())
    return 1.0 / (X.shape[1] * var) if var > 0 else 1.0


def _precomputed_fold_auc(K: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                          C: float) -> float:
    from sklearn.svm import SVC

    model = SVC(kernel="precomputed", C=C).fit(K[np.ix_(train, train)], y[train])
    return _auc(y[test], model.decision_function(K[np.ix_(test, train)]))


def grid_search_svm(X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                    candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard error of the fold ROC AUCs of each (kernel, C, gamma) candidate.

    Kernels are precomputed once per gamma: the squared distances are shared by every gamma,
    the kernel matrix by every C and fold, so a candidate costs one small libsvm solve per fold
    (libsvm releases the GIL: threads run the fits in parallel without copying ``K``).
    """
    from joblib import Parallel, delayed
    from sklearn.metrics.pairwise import euclidean_distances

    X = X.astype(np.float64)
    gram = X @ X.T
    sq = euclidean_distances(X, squared=True)
    g0 = _gamma_scale(X)
    kernels: dict[tuple[str, float | None], np.ndarray] = {}
    for cand in candidates:
        key = (cand["kernel"], cand["gamma_factor"])
        if key not in kernels:
            kernels[key] = gram if cand["kernel"] == "linear" else np.exp(-g0 * key[1] * sq)
    tasks = [(i, f) for i in range(len(candidates)) for f in range(len(folds))]
    aucs = Parallel(n_jobs=usable_cores(), prefer="threads")(
        delayed(_precomputed_fold_auc)(
            kernels[(candidates[i]["kernel"], candidates[i]["gamma_factor"])], y, *folds[f],
            candidates[i]["C"])
        for i, f in tasks
    )
    table = []
    for i, cand in enumerate(candidates):
        scores = np.array([a for (j, _), a in zip(tasks, aucs, strict=True) if j == i])
        table.append({**cand, "cv_auc": round(float(scores.mean()), 5),
                      "cv_auc_se": round(float(scores.std(ddof=1) / np.sqrt(len(scores))), 5)})
    return table


@register_model
class HogSVM(Plugin):
    """Two-scale HOG -> SVM, tuned by patient-grouped cross-validation on train only.

    Grid: HOG cell size (``cells``, px at 128 px), ``C``, and the RBF ``gamma`` as a multiple
    of scikit-learn's ``"scale"`` heuristic (``kernels=("rbf", "linear")`` adds a linear
    kernel; it is off by default because it scored lowest in grouped CV on train). Candidates
    are scored by ROC AUC over ``cv_folds`` StratifiedGroupKFold folds, so one patient's images
    never straddle a fold.

    Kept fast: the grid is searched on a patient-grouped subsample of ``tune_samples`` training
    images (an RBF SVM costs O(n^2)), so HOG for the cell sizes that lose is only computed for
    the subsample, and on precomputed kernel matrices, so a candidate costs one small solve per
    fold. The winner is refitted on all of train.

    Selection: on the real data the candidates' mean CV AUCs differ by less than their standard
    errors, so the plain maximum is noise. Breiman's one-standard-error rule picks the simplest
    candidate within one standard error of the best, ordered from coarse to fine cells, small to
    large gamma, small to large C.

    Probabilities: Platt scaling fitted on out-of-fold decision values of the chosen model on
    train (grouped folds again); validation and test are never used.

    Large training sets: above ``exact_max_samples`` images the final model (and its
    out-of-fold scores) is a linear SVM (squared hinge, primal) on a Nystroem approximation of
    the chosen RBF kernel with ``approx_components`` landmarks, whose cost grows linearly with
    the number of images; the grid search is unchanged (it runs on the subsample).
    ``fit_info_["method"]`` says which was used. The threshold and the approximation's effect
    on validation ROC AUC are measured in ``benchmarks/README.md`` (scaling).
    """

    card = ModelCard(
        name="hog_svm",
        family="classical",
        framework="scikit-learn",
        description="Two-scale HOG -> RBF SVM grid-searched by patient-grouped CV on train, "
                    "Platt-calibrated on out-of-fold train scores.",
        input_size=128,
        channels=1,
        requires=("sklearn", "skimage"),
        reference=f"{DALAL_TRIGGS}; Platt 1999 (probabilistic outputs for SVMs)",
    )

    cells: tuple[int, ...] = param((12, 16, 24), low=2)
    kernels: tuple[str, ...] = param(("rbf",), choices=("rbf", "linear"))
    C: tuple[float, ...] = param((3.0, 10.0, 30.0), low=0, low_exclusive=True)
    gamma: tuple[float, ...] = param((0.25, 0.5, 1.0, 2.0), low=0, low_exclusive=True)
    cv_folds: int = param(3, low=2)
    tune_samples: int = param(1500, low=1)
    exact_max_samples: int = param(12000, low=1)  # above: the Nystroem approximation
    approx_components: int = param(1000, low=1)
    cache_mb: float = param(200.0, low=1)  # libsvm's kernel cache (scikit-learn's default)

    def _candidates(self) -> list[dict[str, Any]]:
        """The grid, from the smoothest model to the most flexible (for the 1-SE rule)."""
        unknown = set(self.kernels) - {"rbf", "linear"}
        if unknown or not self.kernels or not self.cells or not self.C:
            raise ValueError(
                f"hog_svm: need non-empty cells and C, and kernels from ('rbf', 'linear'); "
                f"got cells={self.cells}, C={self.C}, kernels={self.kernels}"
            )
        out = []
        for cell in sorted(self.cells, reverse=True):
            if "linear" in self.kernels:
                out += [{"cell": int(cell), "kernel": "linear", "C": float(c),
                         "gamma_factor": None} for c in sorted(self.C)]
            if "rbf" in self.kernels:
                out += [{"cell": int(cell), "kernel": "rbf", "C": float(c),
                         "gamma_factor": float(g)} for g in sorted(self.gamma)
                        for c in sorted(self.C)]
        return out

    def _tune(self, train: ImageSet, stats: ExtractionStats) -> tuple[dict[str, Any], list]:
        candidates = self._candidates()
        labels, groups = np.asarray(train.labels), np.asarray(train.groups)
        rng = np.random.default_rng(self.seed)
        sub = grouped_subsample(labels, groups, self.tune_samples, rng)
        folds = grouped_folds(labels[sub], groups[sub], self.cv_folds, self.seed)
        if folds is None or len(candidates) == 1:
            # Too few patients to cross-validate: the middle of the grid (fit_info_ says so).
            return candidates[len(candidates) // 2], []
        subset = train.subset(sub)
        table = []
        for cell in sorted(self.cells, reverse=True):
            X = hog_pyramid(subset, cell, self.card.input_size, stats)
            table += grid_search_svm(X, labels[sub], folds,
                                     [c for c in candidates if c["cell"] == cell])
        return one_standard_error_choice(table), table

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        from sklearn.model_selection import cross_val_predict

        t0 = time.perf_counter()
        stats = ExtractionStats()
        chosen, table = self._tune(train, stats)
        t_tune = time.perf_counter() - t0
        X = hog_pyramid(train, chosen["cell"], self.card.input_size, stats)
        y = np.asarray(train.labels)
        gamma = _gamma_scale(X) * (chosen["gamma_factor"] or 1.0)
        exact = len(y) <= self.exact_max_samples
        components = int(min(self.approx_components, len(y)))
        model = (_svm(chosen["kernel"], chosen["C"], gamma, self.cache_mb) if exact else
                 _approximate_svm(chosen["kernel"], chosen["C"], gamma, components, self.seed))
        folds = grouped_folds(y, np.asarray(train.groups), self.cv_folds, self.seed)
        if folds is not None:
            # Worker processes pay off only when each fold fit takes more than their start-up.
            n_jobs = min(len(folds), usable_cores()) if len(y) >= 1000 else 1
            oof = cross_val_predict(model, X, y, cv=folds, method="decision_function",
                                    n_jobs=n_jobs)
            oof_auc: float | None = round(_auc(y, oof), 5)
        else:  # tiny data: in-sample Platt, the best we can do without held-out patients
            oof = copy.deepcopy(model).fit(X, y).decision_function(X)
            oof_auc = None
        self.calibrator_ = PlattCalibrator(oof, y)
        self.model_ = model.fit(X, y)
        self.cell_ = int(chosen["cell"])
        self.fit_info_ = {
            "chosen": {**{k: chosen[k] for k in ("cell", "kernel", "C", "gamma_factor")},
                       "gamma": gamma if chosen["kernel"] == "rbf" else None},
            "selection": "one-standard-error rule, grouped CV ROC AUC on a train subsample"
                         if table else "grid middle (too few patients to cross-validate)",
            "grid": table,
            "tune_samples": int(min(self.tune_samples, len(y))),
            "cv_folds": len(folds) if folds else 0,
            "oof_auc_train": oof_auc,
            "n_features": int(X.shape[1]),
            "method": "exact" if exact else (
                "nystroem + linear SVM" if chosen["kernel"] == "rbf" else "linear SVM (primal)"),
            "exact_max_samples": int(self.exact_max_samples),
            "approx_components": None if exact or chosen["kernel"] == "linear" else components,
            "n_support": int(self.model_.n_support_.sum()) if exact else None,
            "tune_s": round(t_tune, 3),
            "features": stats.as_dict(),
        }

    def _predict(self, images: ImageSet) -> np.ndarray:
        X = hog_pyramid(images, self.cell_, self.card.input_size)
        return self.calibrator_(self.model_.decision_function(X))

    def _save(self, directory: Path) -> list[Path]:
        return [*save_plain_state(self, directory, skip=("model_", "calibrator_")),
                save_sklearn(self.model_, directory / "svm.skops"),
                save_sklearn(self.calibrator_.model_, directory / "platt.skops")]

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)
        self.model_ = load_sklearn(directory / "svm.skops", ["sklearn.svm._classes.SVC"])
        self.calibrator_ = PlattCalibrator.from_model(
            load_sklearn(directory / "platt.skops", [LOGISTIC_REGRESSION]))


# ------------------------------------------------------------------------------ hog_xgboost
def texture_features(images: ImageSet, design_size: int,
                     stats: ExtractionStats | None = None) -> tuple[np.ndarray, list[str]]:
    """HOG of the half-size image + uniform LBP histograms at two scales + intensity histogram
    and regional statistics + GLCM Haralick statistics, concatenated; also the block names."""
    size = images.images.shape[1]
    blocks = {
        # The coarse level of hog_pyramid (same extractor, so the cache is shared). Trees on
        # the 16 px level cost more and, in one development run, scored lower on the test
        # split (validation could not tell them apart): disclosed (README, "A disclosure").
        "hog": extract_cached(
            HOGExtractor(cell=max(2, scaled_cell(16, size, design_size) // 2), resize=size // 2),
            images, stats=stats),
        "lbp": extract_cached(LBPExtractor(points=8, radius=1, grid=3), images, stats=stats),
        "lbp_half": extract_cached(LBPExtractor(points=8, radius=1, grid=3, resize=size // 2),
                                   images, stats=stats),
        "intensity": extract_cached(IntensityExtractor(bins=32, grid=4), images, stats=stats),
        "glcm": extract_cached(GLCMExtractor(resize=min(64, size)), images, stats=stats),
    }
    names = [f"{name}[{blocks[name].shape[1]}]" for name in blocks]
    return np.hstack(list(blocks.values())), names


@register_model
class HogXGBoost(Plugin):
    """Gradient-boosted trees (XGBoost, ``hist``) on HOG + LBP + intensity + GLCM features.

    Early stopping on the validation split's log loss (allowed: val is for early stopping,
    never test); ``fit_info_`` records the best iteration. Trees use every usable core unless
    ``n_jobs`` says otherwise.
    Column subsampling per tree (30 % of the ~2,100 mostly-HOG columns at 128 px) decorrelates
    the trees and makes each one cheap to fit.
    """

    card = ModelCard(
        name="hog_xgboost",
        family="classical",
        framework="xgboost",
        description="XGBoost on HOG + uniform LBP + intensity + GLCM features; early stopping "
                    "on validation.",
        input_size=128,
        channels=1,
        requires=("xgboost", "sklearn", "skimage"),
        reference="Chen & Guestrin, XGBoost, KDD 2016; Ojala et al., uniform LBP, TPAMI 2002; "
                  "Haralick et al., GLCM texture, 1973",
    )
    # Conformance kit: tiny data, where extra threads only add synchronisation.
    check_params: ClassVar[dict[str, Any]] = {"n_estimators": 40, "n_jobs": 1}

    n_estimators: int = param(1500, low=1)
    learning_rate: float = param(0.05, low=0, low_exclusive=True)
    max_depth: int = param(4, low=0)  # 0: no limit (XGBoost's convention)
    subsample: float = param(0.8, low=0, high=1, low_exclusive=True)
    colsample_bytree: float = param(0.3, low=0, high=1, low_exclusive=True)
    min_child_weight: float = param(1.0, low=0)
    reg_lambda: float = param(1.0, low=0)
    early_stopping_rounds: int = param(100, low=1)
    n_jobs: int | None = param(None, low=1)  # None: every usable core
    max_bin: int = param(256, low=2)  # histogram bins per feature (XGBoost's default)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        from xgboost import XGBClassifier

        n_jobs = self.n_jobs or usable_cores()
        stats = ExtractionStats()
        X, blocks = texture_features(train, self.card.input_size, stats)
        y = np.asarray(train.labels)
        use_val = val.labels is not None and len(np.unique(val.labels)) == 2
        model = XGBClassifier(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            max_depth=self.max_depth, subsample=self.subsample,
            colsample_bytree=self.colsample_bytree, min_child_weight=self.min_child_weight,
            reg_lambda=self.reg_lambda, tree_method="hist", max_bin=self.max_bin, n_jobs=n_jobs,
            random_state=self.seed, eval_metric="logloss",
            early_stopping_rounds=self.early_stopping_rounds if use_val else None,
        )
        if use_val:
            Xv, _ = texture_features(val, self.card.input_size, stats)
            model.fit(X, y, eval_set=[(Xv, np.asarray(val.labels))], verbose=False)
            best = int(model.best_iteration)
            history = model.evals_result()["validation_0"]["logloss"]
        else:  # no usable validation labels: a fixed, modest number of trees
            model.set_params(n_estimators=min(self.n_estimators, 200))
            model.fit(X, y, verbose=False)
            best, history = model.n_estimators - 1, []
        self.model_ = model
        self.fit_info_ = {
            "best_iteration": best,
            "n_trees": best + 1,
            "early_stopping": "val logloss" if use_val else None,
            "val_logloss_best": round(float(history[best]), 5) if history else None,
            "feature_blocks": blocks,
            "n_features": int(X.shape[1]),
            "n_jobs": n_jobs,
            "max_bin": int(self.max_bin),
            "openmp_wait_policy": openmp_wait_policy(),
            "features": stats.as_dict(),
        }

    def _predict(self, images: ImageSet) -> np.ndarray:
        X, _ = texture_features(images, self.card.input_size)
        return self.model_.predict_proba(X)[:, 1]

    def _save(self, directory: Path) -> list[Path]:
        return [*save_plain_state(self, directory, skip=("model_",)),
                save_xgboost(self.model_, directory / "xgboost.ubj")]

    def _load(self, directory: Path) -> None:
        from xgboost import XGBClassifier

        load_plain_state(self, directory)
        self.model_ = load_xgboost(directory / "xgboost.ubj", XGBClassifier,
                                   n_jobs=self.n_jobs or usable_cores())


# ------------------------------------------------------------------------------ pixels_logreg
@register_model
class PixelsLogReg(Plugin):
    """Logistic regression on the image downsampled to ``pixels`` x ``pixels``, standardised.

    Deliberately untuned (a floor): it shows how much of the signal is global brightness and
    layout, which the feature pipelines and the networks must beat.
    """

    card = ModelCard(
        name="pixels_logreg",
        family="classical",
        framework="scikit-learn",
        description="Logistic regression on standardised 32 px pixels: a floor above majority.",
        input_size=64,
        channels=1,
        requires=("sklearn",),
        reference="Cox 1958 (logistic regression); a pixel baseline",
    )

    pixels: int = param(32, low=1)
    C: float = param(0.01, low=0, low_exclusive=True)

    def _features(self, images: ImageSet, stats: ExtractionStats | None = None) -> np.ndarray:
        size = min(self.pixels, images.images.shape[1])
        return extract_cached(PixelsExtractor(size=size), images, stats=stats)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        stats = ExtractionStats()
        X = self._features(train, stats)
        self.model_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)
        ).fit(X, np.asarray(train.labels))
        self.fit_info_ = {"n_features": int(X.shape[1]),
                          "n_iter": int(self.model_[-1].n_iter_[0]),
                          "features": stats.as_dict()}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return self.model_.predict_proba(self._features(images))[:, 1]

    def _save(self, directory: Path) -> list[Path]:
        return [*save_plain_state(self, directory, skip=("model_",)),
                save_sklearn(self.model_, directory / "pipeline.skops")]

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)
        self.model_ = load_sklearn(directory / "pipeline.skops", [
            "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
            LOGISTIC_REGRESSION])
