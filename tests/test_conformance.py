"""Every registered plugin passes the conformance kit; broken plugins are caught.

Parametrized over the registry itself: a new plugin (built in, or an installed entry point) is
checked without writing a test. Deep plugins are checked on 32 px images and marked slow.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from cxrbench.plugins.conformance import check_plugin, parametrize_with_checks, resolve_plugin
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.plugins.registry import list_models
from cxrbench.plugins.weights import available_offline

SMALL_INPUT = 32


def is_deep(plugin: Plugin) -> bool:
    return plugin.card.accelerator


@pytest.fixture(autouse=True, scope="module")
def _isolated_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CXRBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def conformance_instance(name: str) -> Plugin:
    """The registered plugin with the kit's fast parameters, small images for deep ones."""
    plugin = resolve_plugin(name)
    if is_deep(plugin):
        plugin = resolve_plugin(name, SMALL_INPUT)
    params = plugin.get_params()
    if "weights" in params and not available_offline(
            params["weights"], backbone=params.get("backbone"), alpha=params.get("alpha")):
        # Pretrained weights do not change the contract; offline without them, start random.
        plugin.set_params(weights=None)
    return plugin


@parametrize_with_checks(
    [conformance_instance(name) for name in list_models()],
    input_size=lambda p: SMALL_INPUT if is_deep(p) else None,
    marks=lambda p: [pytest.mark.slow] if is_deep(p) else [],
)
def test_registered_plugin_conforms(plugin, check):
    check(plugin)


# ------------------------------------------------------------------ deliberately broken plugins
CARD = dict(family="baseline", framework="numpy", description="broken on purpose (tests)",
            input_size=16, channels=1, requires=("numpy",), reference="tests")


class _Brightness(Plugin):
    """A working plugin: mean brightness through a fixed logistic curve, centred on train."""

    card = ModelCard(name="ok_brightness", **CARD)

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__(seed=seed)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.centre_ = float(np.mean(train.images))
        self.fit_info_ = {"centre": self.centre_}

    def _predict(self, images: ImageSet) -> np.ndarray:
        means = np.asarray(images.images, dtype=np.float64).mean(axis=(1, 2, 3))
        return 1.0 / (1.0 + np.exp(-(means - self.centre_) / 5.0))


class NaNOutput(_Brightness):
    card = ModelCard(name="broken_nan", **CARD)

    def _predict(self, images: ImageSet) -> np.ndarray:
        p = super()._predict(images)
        p[0] = np.nan
        return p


class WrongShape(_Brightness):
    card = ModelCard(name="broken_shape", **CARD)

    def _predict(self, images: ImageSet) -> np.ndarray:
        p = super()._predict(images)
        return np.stack([1 - p, p], axis=1)  # both columns, like sklearn's predict_proba


class IgnoresSeed(_Brightness):
    card = ModelCard(name="broken_seed", **CARD)

    def _predict(self, images: ImageSet) -> np.ndarray:
        noise = np.random.default_rng().uniform(-0.01, 0.01, len(images))  # unseeded
        return np.clip(super()._predict(images) + noise, 0, 1)


class Scores(_Brightness):
    card = ModelCard(name="broken_scores", **CARD)

    def _predict(self, images: ImageSet) -> np.ndarray:
        return super()._predict(images) * 10 - 5  # decision values, not probabilities


class WorkInInit(_Brightness):
    card = ModelCard(name="broken_init", **CARD)

    def __init__(self, *, scale: float = 1.0, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.scale = float(scale) * 2
        self.weights = np.zeros(3)


class NoReference(_Brightness):
    card = ModelCard(name="broken_card", **{**CARD, "reference": "", "framework": ""})


class Unpicklable(_Brightness):
    card = ModelCard(name="broken_pickle", **CARD)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        super()._fit(train, val)
        self.transform_ = lambda x: x  # lambdas cannot be pickled


class PickleSave(_Brightness):
    """Saves its state as a pickle: loads fine, and would run code from a shared file."""

    card = ModelCard(name="broken_pickle_save", **CARD)

    def _save(self, directory):
        import pickle

        path = directory / "state.pkl"
        path.write_bytes(pickle.dumps({"centre_": self.centre_}))
        return [path]

    def _load(self, directory):
        import pickle

        self.centre_ = pickle.loads((directory / "state.pkl").read_bytes())["centre_"]


class ForgetfulSave(_Brightness):
    """Saves only part of its fitted state: the loaded model predicts something else."""

    card = ModelCard(name="broken_forgetful_save", **CARD)

    def _save(self, directory):
        from cxrbench.plugins.persistence import save_plain_state

        return save_plain_state(self, directory, skip=("centre_",))

    def _load(self, directory):
        from cxrbench.plugins.persistence import load_plain_state

        load_plain_state(self, directory)
        self.centre_ = 0.0


class OverridesFit(_Brightness):
    """Skips the contract's guards: trains on anything."""

    card = ModelCard(name="broken_fit", **CARD)

    def fit(self, train: ImageSet, val: ImageSet) -> Plugin:
        self.fit_info_ = {}
        self._fit(train, val)
        self.is_fitted_ = True
        return self


class OverridesPredictProba(_Brightness):
    """Does not override fit, but replaces the template's predict_proba."""

    card = ModelCard(name="broken_predict", **CARD)

    def predict_proba(self, images: ImageSet) -> np.ndarray:
        return super().predict_proba(images)


def result_of(plugin_cls: type[Plugin], check: str):
    (result,) = check_plugin(plugin_cls, checks=[check])
    return result


def test_a_working_plugin_passes_every_check():
    results = check_plugin(_Brightness)
    assert [r.status for r in results] == ["PASS"] * len(results), results


@pytest.mark.parametrize("plugin_cls, check, message", [
    (NaNOutput, "check_predict_proba", "non-finite values (NaN or inf)"),
    (WrongShape, "check_predict_proba", "one probability of pneumonia per image"),
    (IgnoresSeed, "check_same_seed_same_output", "two fits with seed=0 gave different"),
    (Scores, "check_predict_proba", "outside [0, 1]"),
    (WorkInInit, "check_init_stores_params", "sets attributes ['weights']"),
    (NoReference, "check_card_complete", "framework is empty; reference is empty"),
    (Unpicklable, "check_pickle_round_trip", "cannot be pickled"),
    (Unpicklable, "check_save_load_round_trip", "fitted attribute 'transform_' holds a function"),
    (PickleSave, "check_save_load_round_trip", "its save writes a pickle (state.pkl)"),
    (ForgetfulSave, "check_save_load_round_trip", "the loaded model predicts differently"),
    (OverridesFit, "check_one_class_raises", "overrides Plugin.fit;"),
    (OverridesPredictProba, "check_one_class_raises", "overrides Plugin.predict_proba;"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_broken_plugins_fail_the_matching_check_with_a_clear_message(plugin_cls, check, message):
    result = result_of(plugin_cls, check)
    assert result.status == "FAIL"
    assert message in result.message
    assert result.message.startswith(plugin_cls.card.name)


@pytest.mark.parametrize("plugin_cls, failing", [
    (NaNOutput, {"check_predict_proba"}),
    (WrongShape, {"check_predict_proba"}),
    (IgnoresSeed, {"check_same_seed_same_output"}),
    # A lambda can be neither pickled nor saved (nor, then, tampered with).
    (Unpicklable, {"check_pickle_round_trip", "check_save_load_round_trip",
                   "check_tampered_model_refused"}),
    (PickleSave, {"check_save_load_round_trip"}),
    (ForgetfulSave, {"check_save_load_round_trip"}),
])
def test_broken_plugins_fail_only_where_they_are_broken(plugin_cls, failing):
    results = {r.check: r.status for r in check_plugin(plugin_cls)}
    assert {c for c, s in results.items() if s == "FAIL"} == failing


def test_wrong_shape_message_says_what_was_returned():
    result = result_of(WrongShape, "check_predict_proba")
    assert "shape (24,) for 12 images" in result.message
    assert "take column 1" in result.message


def test_one_class_check_says_what_to_implement_instead():
    message = result_of(OverridesFit, "check_one_class_raises").message
    assert "implement _fit and _predict instead" in message


# ------------------------------------------------------------------ importing the plugin module
def _plugin_in_module(module: str, tmp_path=None, monkeypatch=None,
                     source: str | None = None) -> type[Plugin]:
    """A plugin class that says it comes from ``module``; with ``source``, that module is a file
    another interpreter can import (this process never runs it: its imports stay out of here)."""
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
    return types.new_class("Light", (_Brightness,), exec_body=lambda ns: ns.update(
        __module__=module, card=ModelCard(name=module, **CARD)))


def test_module_importing_no_framework_passes(tmp_path, monkeypatch):
    cls = _plugin_in_module("kit_light_module", tmp_path, monkeypatch, "import json\n")
    assert result_of(cls, "check_import_without_frameworks").status == "PASS"


def test_module_importing_a_framework_at_top_level_fails(tmp_path, monkeypatch):
    # What the check detects is the framework's module in sys.modules after the import; a
    # stand-in registered under the name costs nothing (the slow test below imports Keras).
    source = "import sys, types\nsys.modules['torch'] = types.ModuleType('torch')\n"
    cls = _plugin_in_module("kit_heavy_module", tmp_path, monkeypatch, source)
    result = result_of(cls, "check_import_without_frameworks")
    assert result.status == "FAIL"
    assert "importing its module 'kit_heavy_module' imports torch" in result.message
    assert "inside methods" in result.message
    assert "torch" not in sys.modules or sys.modules["torch"].__spec__ is not None


@pytest.mark.slow
def test_module_importing_keras_at_top_level_fails(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    cls = _plugin_in_module("kit_keras_module", tmp_path, monkeypatch, "import keras\n")
    result = result_of(cls, "check_import_without_frameworks")
    assert result.status == "FAIL" and "keras" in result.message.partition(" imports ")[2]


def test_module_another_interpreter_cannot_import_fails():
    cls = _plugin_in_module("kit_ghost_module")  # e.g. a class made at run time, not on disk
    result = result_of(cls, "check_import_without_frameworks")
    assert result.status == "FAIL"
    assert "importing its module 'kit_ghost_module' in a fresh interpreter failed" in \
        result.message and "ModuleNotFoundError" in result.message
