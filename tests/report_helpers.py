"""Results dicts for report and statistics tests, made without running any model.

``fake_results`` simulates a benchmark: binormal scores per model (a known ROC AUC), patients
with one or two images, several seeds, optional failures, histories and a running status.
Real runs are made in the tests that need them (``real_run_results``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from cxrbench.plugins import registry
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.scoring.metrics import compute_metrics, confusion_counts
from cxrbench.scoring.thresholds import choose_threshold
from cxrbench.stats import summarize

TEST_PLUGIN = "test_intensity_sgd"
# The figures every report of a real run has (their element ids).
FIGURES = ("figure-roc", "figure-roc-zoom", "figure-pr", "figure-confusion",
           "figure-reliability", "figure-training", "figure-cost")


def _split(rng: np.random.Generator, n: int, prefix: str) -> dict[str, Any]:
    labels = (rng.random(n) < 0.62).astype(int)
    groups, ids, patient = [], [], 0
    for i in range(n):
        if i == 0 or rng.random() > 0.3:  # 30 % of images share the previous patient
            patient += 1
        groups.append(f"person{patient}")
        folder = "PNEUMONIA" if labels[i] else "NORMAL"
        ids.append(f"{prefix}/{folder}/person{patient}_img{i}.jpeg")
    return {"ids": ids, "labels": labels.tolist(), "groups": groups}


def fake_results(
    n_models: int = 3,
    n_seeds: int = 1,
    n_test: int = 120,
    *,
    failures: int = 0,
    status: str = "complete",
    histories: bool = False,
    seed: int = 0,
    synthetic: bool = False,
) -> dict[str, Any]:
    """A schema-valid results dict with ``n_models`` x ``n_seeds`` ok records (+ failures)."""
    rng = np.random.default_rng(seed)
    evaluation = {"val": _split(rng, n_test, "train"), "test": _split(rng, n_test, "test")}
    records = []
    for k in range(n_models):
        model = f"model_{k:02d}"
        auc = 0.6 + 0.35 * k / max(n_models - 1, 1)
        separation = np.sqrt(2) * norm.ppf(auc)
        for s in range(n_seeds):
            preds = {}
            for split in ("val", "test"):
                y = np.asarray(evaluation[split]["labels"])
                score = rng.normal(size=len(y)) + separation * y + 0.05 * s
                preds[split] = np.round(1 / (1 + np.exp(-(score - separation / 2))), 6)
            y_val = np.asarray(evaluation["val"]["labels"])
            y_test = np.asarray(evaluation["test"]["labels"])
            threshold = choose_threshold("youden", y_val, preds["val"])
            record = {
                "job_id": f"{model}[seed={s}]", "model": model,
                "family": ("classical", "cnn", "transfer")[k % 3], "framework": "numpy",
                "params": {}, "seed": s, "status": "ok", "error": None,
                "image_size": 64, "channels": 1, "threshold": threshold,
                "threshold_rule": "youden",
                "metrics": {"val": compute_metrics(y_val, preds["val"], threshold),
                            "test": compute_metrics(y_test, preds["test"], threshold)},
                "confusion": {"val": confusion_counts(y_val, preds["val"], threshold),
                              "test": confusion_counts(y_test, preds["test"], threshold)},
                "timing": {"fit_s": 0.5 * 3 ** k * (1 + 0.1 * s), "predict_s": 0.01 * (k + 1),
                           "predict_ms_per_image": 0.1 * (k + 1), "peak_rss_mb": 200.0 + 50 * k},
                "fit_info": {}, "n_params": 1000 * (k + 1) ** 3 if k % 3 else None,
                "predictions": {split: preds[split].tolist() for split in preds},
                "skipped_images": {"count": 0, "record_ids": []},
            }
            if histories and k % 3:
                epochs = 6 + k % 4
                record["fit_info"]["history"] = [
                    {"phase": "", "epoch": e + 1, "loss": 0.7 * 0.8 ** e + 0.02 * rng.random(),
                     "val_auc": auc - 0.2 * 0.6 ** e, "lr": 1e-3, "seconds": 1.0}
                    for e in range(epochs)
                ]
                record["fit_info"]["best_epoch"] = epochs - 1
            if k % 3 == 2:
                record["fit_info"].update(weights="imagenet", weights_source="weights_dir",
                                          weights_file="mobilenet.h5", weights_sha256="ab" * 32)
            records.append(record)
    for f in range(failures):
        records.append({
            "job_id": f"broken_{f}[seed=0]", "model": f"broken_{f}", "family": "cnn",
            "framework": "keras", "params": {}, "seed": 0, "status": "error" if f % 2 == 0
            else "timeout", "error": {"type": "RuntimeError", "message": f"boom {f} <&>",
                                      "traceback": "Traceback ...\nRuntimeError: boom"},
        })
    counts = {split: {"normal": int(np.sum(np.asarray(evaluation[split]["labels"]) == 0)),
                      "pneumonia": int(np.sum(evaluation[split]["labels"]))}
              for split in ("val", "test")}
    counts["train"] = {"normal": 300, "pneumonia": 700}
    return {
        "schema_version": 1,
        "tool": {"name": "cxrbench", "version": "0.1.0"},
        "run": {"models": sorted({r["model"] for r in records}), "seeds": list(range(n_seeds)),
                "threshold_rule": "youden", "suite": None, "executor": "inline",
                "status": status, "started": "2026-01-01T00:00:00+00:00",
                "finished": None if status == "running" else "2026-01-01T01:00:00+00:00"},
        "provenance": {"cxrbench_version": "0.1.0", "packages": {"numpy": np.__version__},
                       "git": {"commit": "0" * 40, "dirty": False, "error": None},
                       "python": "3.11", "platform": "Linux", "hostname": "test",
                       "cpu_count": 2, "backend": "tensorflow", "device": "cpu",
                       "date": "2026-01-01T00:00:00+00:00",
                       "data": {"path": "/nonexistent/cxr-data", "kind": "kaggle",
                                "data_hash": "d" * 64, "synthetic": synthetic,
                                "n_records": 2 * n_test + 1000, "unreadable": []},
                       "split_sha256": "s" * 64},
        "split": {"sha256": "s" * 64, "seed": 0, "val_fraction": 0.15,
                  "strategy": "official test; val carved from train by patient",
                  "counts": counts, "file": "split_plan.json"},
        "evaluation": evaluation,
        "records": records,
        "summary": summarize(records),
    }


def with_statistics(results: dict[str, Any], n_resamples: int = 300) -> dict[str, Any]:
    from cxrbench.stats import compute_statistics

    results = copy.deepcopy(results)
    results["statistics"] = compute_statistics(results, n_resamples=n_resamples)
    return results


class IntensitySGD(Plugin):
    """A fast real plugin for report tests: logistic regression by SGD on three intensity
    features (pneumonia opacities brighten the lungs), with a per-epoch history."""

    card = ModelCard(name=TEST_PLUGIN, family="classical", framework="scikit-learn",
                     description="test-only: SGD logistic regression on intensity statistics",
                     input_size=64, channels=1)

    def __init__(self, *, epochs: int = 8, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.epochs = epochs

    @staticmethod
    def _features(images: ImageSet) -> np.ndarray:
        x = images.images.reshape(len(images), -1).astype(np.float32) / 255
        return np.c_[x.mean(axis=1), x.std(axis=1), np.percentile(x, 90, axis=1)]

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        from sklearn.linear_model import SGDClassifier
        from sklearn.metrics import log_loss, roc_auc_score
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(self._features(train))
        x, x_val = self.scaler_.transform(self._features(train)), \
            self.scaler_.transform(self._features(val))
        self.model_ = SGDClassifier(loss="log_loss", alpha=1e-3, random_state=self.seed)
        history = []
        for epoch in range(1, self.epochs + 1):
            self.model_.partial_fit(x, train.labels, classes=[0, 1])
            history.append({"epoch": epoch,
                            "loss": float(log_loss(train.labels, self.model_.predict_proba(x))),
                            "val_auc": float(roc_auc_score(
                                val.labels, self.model_.predict_proba(x_val)[:, 1]))})
        best = max(history, key=lambda h: h["val_auc"])["epoch"]
        self.fit_info_ = {"history": history, "best_epoch": best, "n_params": 4}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return self.model_.predict_proba(self.scaler_.transform(self._features(images)))[:, 1]


@contextlib.contextmanager
def registered_test_plugin() -> Iterator[str]:
    """Register the test plugin for the duration of the block, leaving the registry as found."""
    registry.list_models()  # load the built-in plugins first
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._registry, TEST_PLUGIN, IntensitySGD)
        patch.setitem(registry._sources, TEST_PLUGIN, f"{__name__}:IntensitySGD")
        yield TEST_PLUGIN


def real_run_results(out: Path, models: list[str]) -> tuple[dict[str, Any], Path]:
    """A small real run on generated synthetic data (inline executor): results and data root."""
    from cxrbench.data import make_synthetic_dataset
    from cxrbench.results.io import read_results
    from cxrbench.run.config import ModelSpec, RunConfig
    from cxrbench.run.harness import run_benchmark

    data = make_synthetic_dataset(out / "data", n_train=(30, 30), n_test=(16, 16), size=64)
    config = RunConfig(data_path=data, models=[ModelSpec(m) for m in models], seeds=[0],
                       out_dir=out / "run", executor="inline", cache_dir=out / "cache",
                       report=False)
    return read_results(run_benchmark(config).results_path), data
