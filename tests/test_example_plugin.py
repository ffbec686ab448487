"""The example third-party plugin (tests/cxrbench-example-plugin), found via its entry point."""

from __future__ import annotations

import pytest
from sklearn.metrics import roc_auc_score

example = pytest.importorskip(
    "cxrbench_example_plugin",
    reason="example plugin not installed: pip install -e tests/cxrbench-example-plugin",
)

from cxrbench.plugins.conformance import check_plugin, make_check_data  # noqa: E402
from cxrbench.plugins.registry import create_model, get_model_class, list_models, model_source  # noqa: E402


def test_listed_through_its_entry_point():
    assert "example_brightness" in list_models()
    assert "example_brightness" in list_models("example_*")
    assert get_model_class("example_brightness") is example.BrightnessPlugin
    assert model_source("example_brightness") == "cxrbench_example_plugin:BrightnessPlugin"


def test_passes_the_conformance_kit():
    results = check_plugin("example_brightness")
    assert [r.status for r in results] == ["PASS"] * len(results), results


def test_fits_and_predicts(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE_DIR", str(tmp_path))
    data = make_check_data(size=64, n_train=60, n_val=20, n_test=40, seed=3)
    plugin = create_model("example_brightness", seed=0).fit(data.train, data.val)
    proba = plugin.predict_proba(data.test.without_labels())
    assert proba.shape == (40,)
    assert roc_auc_score(data.test.labels, proba) > 0.8  # opacities make the lungs brighter
    assert len(plugin.fit_info_["coefficients"]) == 7
