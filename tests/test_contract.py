"""The plugin contract: declared hyperparameters, their validation, clone, variants, the card.

Parametrized over the registry where it makes sense, so that a new plugin is checked here too.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import sys
import types

import numpy as np
import pytest

from cxrbench.plugins import conformance, registry
from cxrbench.plugins.contract import (
    BUILTIN_FAMILIES,
    ImageSet,
    ModelCard,
    ParameterError,
    Plugin,
    clone,
    declares_params,
    param,
    validate_params,
)
from cxrbench.plugins.keras_common import KerasPlugin
from cxrbench.plugins.registry import create_model, get_model_class, list_models

CARD = dict(family="baseline", framework="numpy", description="contract test plugin",
            input_size=16, channels=1, requires=("numpy",), reference="tests")
KERAS_SHARED = ("epochs", "batch_size", "input_size", "learning_rate", "patience",
                "restore_best", "class_weight", "precision", "jit_compile", "run_eagerly",
                "loader_workers", "steps_per_epoch")


class Toy(Plugin):
    """Brightness through a logistic curve; parameters of every kind the validator knows."""

    card = ModelCard(name="contract_toy", **CARD)

    depth: int = param(3, low=1)
    rate: float = param(0.1, low=0, high=1, low_exclusive=True)
    mode: str = param("fast", choices=("fast", "slow"))
    sizes: tuple[int, ...] = param((8, 16), low=2)
    limit: int | None = None
    jit: bool | str = param("auto", choices=(True, False, "auto"))
    verbose: bool = False

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.centre_ = float(np.mean(train.images))
        self.fit_info_ = {"centre": self.centre_}

    def _predict(self, images: ImageSet) -> np.ndarray:
        means = np.asarray(images.images, dtype=np.float64).mean(axis=(1, 2, 3))
        return 1.0 / (1.0 + np.exp(-(means - self.centre_) * self.rate))


class DeeperToy(Toy):
    """Changes two defaults (one typed, one not) and adds a parameter."""

    card = ModelCard(name="contract_deeper", **CARD)

    depth = 5
    mode: str = "slow"
    width: float = param(0.5, low=0)


class HandWritten(Plugin):
    """The README's older style: __init__ written by hand (third-party plugins keep it)."""

    card = ModelCard(name="contract_hand", **CARD)

    def __init__(self, *, C: float = 1.0, label: str | None = None, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.C = C
        self.label = label

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.fit_info_ = {}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return np.full(len(images), 0.5)


class HandWrittenChild(HandWritten):
    """Inherits the hand-written __init__: nothing is generated for it."""

    card = ModelCard(name="contract_hand_child", **CARD)


class TakesKwargs(HandWritten):
    card = ModelCard(name="contract_kwargs", **CARD)

    def __init__(self, *, C: float = 1.0, seed: int = 0, **extra: object) -> None:
        super().__init__(C=C, seed=seed)


def data() -> conformance.CheckData:
    return conformance.make_check_data(16)


# ------------------------------------------------------------------------------ declarations
def test_declared_parameters_make_a_keyword_only_init_that_only_stores_them():
    signature = inspect.signature(DeeperToy.__init__)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params)
    assert {p.name: p.default for p in params} == {
        "seed": 0, "intensity": "none", "thorax_crop": False, "depth": 5, "rate": 0.1,
        "mode": "slow", "sizes": (8, 16), "limit": None, "jit": "auto", "verbose": False,
        "width": 0.5}
    toy = DeeperToy(depth=7, sizes=(4,))
    assert vars(toy) == toy.get_params() and toy.depth == 7 and toy.sizes == (4,)
    with pytest.raises(TypeError):
        DeeperToy(7)  # positional
    with pytest.raises(TypeError):
        DeeperToy(dept=7)  # unknown keyword
    assert declares_params(DeeperToy) and not declares_params(HandWritten)


def test_a_changed_default_keeps_the_inherited_type_and_range():
    specs = DeeperToy.param_specs()
    assert (specs["depth"].type, specs["depth"].default, specs["depth"].low) == (int, 5, 1)
    assert specs["mode"].choices == ("fast", "slow") and specs["mode"].default == "slow"
    assert Toy.param_specs()["depth"].default == 3  # the base is left as it was
    with pytest.raises(ParameterError, match="an integer >= 1"):
        validate_params(DeeperToy, {"depth": 0})


def test_a_method_may_not_hide_a_parameter_and_mutable_defaults_are_refused():
    with pytest.raises(TypeError, match="hides the hyperparameter 'depth'"):
        class Hiding(Toy):
            def depth(self) -> int:
                return 1

    with pytest.raises(ValueError, match="mutable default"):
        class Mutable(Toy):
            layers: list[int] = [1, 2]  # noqa: RUF012


def test_check_params_is_declared_on_plugin_and_is_not_a_parameter():
    assert Plugin.check_params == {}
    assert "check_params" not in Toy.param_specs()
    assert get_model_class("hog_mlp").check_params == {"max_epochs": 5}


@pytest.mark.parametrize("name", list_models())
def test_every_default_is_valid_under_its_own_declaration(name):
    """A wrong type or range in a declaration shows up as a default that fails its own check."""
    cls = get_model_class(name)
    specs = cls.param_specs()
    defaults = {k: s.default for k, s in specs.items()}
    assert validate_params(cls, defaults) == defaults
    assert create_model(name).get_params() == defaults
    assert "seed" in specs


@pytest.mark.parametrize("name", [n for n in list_models()
                                  if issubclass(get_model_class(n), KerasPlugin)])
def test_keras_plugins_restate_only_changed_defaults(name):
    """KerasPlugin declares the shared hyperparameters once; a subclass names one only to
    change its default."""
    base = KerasPlugin.param_specs()
    specs = get_model_class(name).param_specs()
    assert set(KERAS_SHARED) <= set(specs)
    for cls in get_model_class(name).__mro__:
        if cls is KerasPlugin or not issubclass(cls, KerasPlugin):
            continue
        for key in KERAS_SHARED:
            if key in vars(cls):
                assert vars(cls)[key] != base[key].default, (
                    f"{cls.__name__} restates {key} with KerasPlugin's own default")


def test_handwritten_init_still_works():
    plugin = HandWritten(C=2.0)
    assert plugin.get_params() == {"C": 2.0, "label": None, "seed": 0}
    specs = HandWritten.param_specs()
    assert specs["C"].type is float and specs["C"].low is None  # types from the annotations
    assert HandWrittenChild.param_specs().keys() == specs.keys()  # the inherited __init__
    assert HandWrittenChild(C=3.0).C == 3.0
    assert validate_params(HandWritten, {"C": 2, "label": None}) == {"C": 2.0, "label": None}
    with pytest.raises(ParameterError, match="a number"):
        validate_params(HandWritten, {"C": "high"})
    # **kwargs in the signature: names it does not list go through unchecked.
    assert validate_params(TakesKwargs, {"anything": 1}) == {"anything": 1}
    results = conformance.check_plugin(HandWritten)
    assert {r.status for r in results} == {"PASS"}, results


def test_fitted_declared_plugins_pickle():
    d = data()
    fitted = DeeperToy(rate=0.5).fit(d.train, d.val)
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.get_params() == fitted.get_params()
    np.testing.assert_array_equal(restored.predict_proba(d.test), fitted.predict_proba(d.test))


@pytest.mark.parametrize("plugin_cls", [Toy, DeeperToy], ids=lambda c: c.__name__)
def test_declared_toys_pass_the_conformance_kit(plugin_cls):
    results = conformance.check_plugin(plugin_cls)
    assert {r.status for r in results} == {"PASS"}, results


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("key, given, expected", [
    ("rate", 1, 1.0),                 # an int for a float parameter
    ("depth", 4.0, 4),                # an integral float for an int one
    ("depth", np.int64(6), 6),
    ("sizes", [4, 8], (4, 8)),        # a JSON list for a tuple parameter
    ("limit", None, None),            # None where the annotation allows it
    ("limit", 5, 5),
    ("jit", True, True),
    ("jit", "auto", "auto"),
    ("mode", "slow", "slow"),
    ("verbose", True, True),
])
def test_values_are_converted_json_style(key, given, expected):
    converted = validate_params(Toy, {key: given})[key]
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize("key, given, allowed", [
    ("depth", 3.7, "an integer >= 1"),
    ("depth", True, "an integer >= 1"),            # bool is not an int
    ("depth", None, "an integer >= 1"),            # None only where annotated
    ("depth", 0, "an integer >= 1"),
    ("depth", "3", "an integer >= 1"),
    ("rate", 0, "a number in (0, 1]"),
    ("rate", 1.5, "a number in (0, 1]"),
    ("rate", False, "a number in (0, 1]"),
    ("mode", "medium", "one of: 'fast', 'slow'"),
    ("sizes", [4, 1], "a list of integers, each >= 2"),
    ("sizes", 4, "a list of integers, each >= 2"),
    ("sizes", [4, 2.5], "a list of integers, each >= 2"),
    ("limit", 2.5, "an integer, or None (null)"),
    ("jit", "yes", "one of: True, False, 'auto'"),
    ("verbose", 1, "true or false"),
])
def test_bad_values_name_the_model_parameter_value_and_what_is_allowed(key, given, allowed):
    with pytest.raises(ParameterError) as info:
        validate_params(Toy, {key: given})
    err = info.value
    assert isinstance(err, ValueError)
    assert str(err) == (f"contract_toy: invalid value {given!r} for parameter {key!r}; "
                        f"allowed: {allowed}")
    assert (err.model, err.parameter, err.value, err.allowed) == ("contract_toy", key, given,
                                                                  allowed)


def test_unknown_names_list_close_matches_and_every_valid_name():
    with pytest.raises(ParameterError) as info:
        validate_params(Toy, {"dept": 2})
    message = str(info.value)
    assert message.startswith("contract_toy has no parameter 'dept'. Did you mean: depth?")
    assert message.endswith("Valid parameters: depth, intensity, jit, limit, mode, rate, "
                            "seed, sizes, thorax_crop, verbose")
    with pytest.raises(ParameterError, match="has no parameter 'dept'"):
        Toy().set_params(dept=2)


def test_validate_returns_only_the_given_parameters():
    assert validate_params(Toy, {}) == {}
    assert validate_params(Toy, {"seed": 3, "rate": 1}) == {"seed": 3, "rate": 1.0}


def test_create_model_validates_and_converts():
    with pytest.raises(ParameterError, match="pixels_logreg: invalid value 3.7 for parameter "
                                             "'pixels'; allowed: an integer >= 1"):
        create_model("pixels_logreg", pixels=3.7)
    assert create_model("hog_svm", cells=[16]).cells == (16,)
    with pytest.raises(ParameterError, match="one of: 'rbf', 'linear'"):
        create_model("hog_svm", kernels=["poly"])
    with pytest.raises(ParameterError, match="an integer >= 0"):
        create_model("majority", seed=-1)


# ------------------------------------------------------------------------------ clone
def test_clone_is_unfitted_with_equal_but_unshared_parameters():
    d = data()
    fitted = HandWritten(label="x", C=[1.0, 2.0]).fit(d.train, d.val)  # type: ignore[arg-type]
    copy = clone(fitted)
    assert type(copy) is HandWritten and copy.get_params() == fitted.get_params()
    assert copy.C is not fitted.C  # deep-copied, like scikit-learn's clone
    assert not hasattr(copy, "is_fitted_") and not hasattr(copy, "fit_info_")
    assert not hasattr(conformance, "fresh")


# ------------------------------------------------------------------------------ variants
@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry for the test, and this module's variant classes removed after."""
    registry._ensure_loaded()
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_sources", dict(registry._sources))
    before = set(vars(sys.modules[__name__]))
    yield
    for name in set(vars(sys.modules[__name__])) - before:
        delattr(sys.modules[__name__], name)


def test_register_variant_registers_a_picklable_subclass_with_other_defaults(scratch_registry):
    cls = registry.register_variant("contract_toy_deep", Toy, module=__name__, depth=9,
                                    sizes=[4], description="Toy, deeper.")
    assert get_model_class("contract_toy_deep") is cls and issubclass(cls, Toy)
    assert cls.__name__ == "ContractToyDeep" and sys.modules[__name__].ContractToyDeep is cls
    assert registry.model_source("contract_toy_deep") == f"{__name__}:ContractToyDeep"
    assert cls.card == dataclasses.replace(Toy.card, name="contract_toy_deep",
                                           description="Toy, deeper.")
    params = cls().get_params()
    assert params == {**Toy().get_params(), "depth": 9, "sizes": (4,)}
    assert cls.param_specs()["depth"].low == 1  # the range stays
    d = data()
    fitted = create_model("contract_toy_deep", depth=2).fit(d.train, d.val)
    assert pickle.loads(pickle.dumps(fitted)).get_params() == {**params, "depth": 2}
    assert {r.status for r in conformance.check_plugin(cls)} == {"PASS"}


def test_register_variant_checks_its_defaults_and_arguments(scratch_registry):
    with pytest.raises(ParameterError, match="has no parameter 'dpth'. Did you mean: depth?"):
        registry.register_variant("contract_bad", Toy, module=__name__, dpth=2)
    with pytest.raises(ParameterError, match="invalid value 0 for parameter 'depth'"):
        registry.register_variant("contract_bad", Toy, module=__name__, depth=0)
    with pytest.raises(TypeError, match="hand-written __init__"):
        registry.register_variant("contract_bad", HandWritten, module=__name__, C=2.0)
    with pytest.raises(ValueError, match="module 'not_imported_anywhere' is not imported"):
        registry.register_variant("contract_bad", Toy, module="not_imported_anywhere")
    assert "contract_bad" not in registry._registry
    cls = registry.register_variant("contract_toy_big", Toy, module=__name__, depth=4)
    assert "variant: depth=4" in cls.card.description
    with pytest.raises(ValueError, match="cannot name the class"):
        registry.register_variant("contract-toy-big", Toy, module=__name__, depth=5)
    with pytest.raises(ValueError, match="'contract_toy' is already registered"):
        registry.register_model(Toy)
        registry.register_variant("contract_toy", Toy, module=__name__, depth=5)
    assert not hasattr(sys.modules[__name__], "ContractToy")


# ------------------------------------------------------------------------------ the card
def test_builtin_families_are_documented_and_family_is_an_open_name():
    assert {get_model_class(n).card.family for n in list_models()} <= set(BUILTIN_FAMILIES)
    assert all(text for text in BUILTIN_FAMILIES.values())

    class Radiomics(Toy):
        card = ModelCard(name="contract_radiomics", **{**CARD, "family": "radiomics"})

    class Bad(Toy):
        card = ModelCard(name="contract_bad_family", **{**CARD, "family": "Deep Nets"})

    assert conformance.check_plugin(Radiomics, checks=["check_card_complete"])[0].status == "PASS"
    (result,) = conformance.check_plugin(Bad, checks=["check_card_complete"])
    assert result.status == "FAIL" and "must be a lower-case identifier" in result.message


@pytest.mark.parametrize("name", list_models())
def test_accelerator_is_set_by_the_keras_plugins(name):
    cls = get_model_class(name)
    assert cls.card.accelerator is issubclass(cls, KerasPlugin)


def test_the_dask_executor_reads_accelerator_from_the_card(monkeypatch):
    pytest.importorskip("distributed")
    from cxrbench.run.executors.dask import wants_accelerator

    registry._ensure_loaded()
    for name, family, accelerator in (("contract_gpu_classical", "classical", True),
                                      ("contract_cpu_cnn", "cnn", False)):
        card = ModelCard(name=name, **{**CARD, "family": family, "accelerator": accelerator})
        cls = types.new_class(name, (Toy,), exec_body=lambda ns, card=card: ns.update(card=card))
        monkeypatch.setitem(registry._registry, name, cls)
        monkeypatch.setitem(registry._sources, name, f"{__name__}:{name}")
        assert wants_accelerator(name) is accelerator
    assert wants_accelerator("cnn_seed") and not wants_accelerator("hog_mlp")


def test_seed_keeps_the_contract_declaration_under_a_handwritten_init():
    with pytest.raises(ParameterError, match="contract_hand: invalid value -1 for parameter "
                                             "'seed'; allowed: an integer >= 0"):
        validate_params(HandWritten, {"seed": -1})


@pytest.mark.parametrize("name", [n for n in list_models()
                                  if registry.model_source(n).startswith("cxrbench.plugins.")])
def test_each_builtin_plugin_lives_in_its_family_module(name):
    module = registry.model_source(name).partition(":")[0]
    assert module == f"cxrbench.plugins.{get_model_class(name).card.family}"
