import os
import subprocess
import sys

import pytest

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.plugins.registry import (
    MissingRequirementsError,
    UnknownModelError,
    check_requirements,
    create_model,
    expand_model_patterns,
    get_model_class,
    list_models,
    missing_requirements,
    register_model,
)


def test_builtin_floor_is_registered():
    assert "majority" in list_models()
    assert get_model_class("majority").card.family == "baseline"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError) as info:
        get_model_class("majorty")
    message = str(info.value)
    assert "Did you mean: majority" in message
    assert "Available:" in message


def test_wildcards_and_exclusion():
    names = list_models("*")
    assert names == sorted(names, key=lambda n: n) or len(names) >= 1
    assert list_models("major*") == ["majority"]
    assert "majority" not in list_models("*", exclude="maj*")
    assert expand_model_patterns("major*,majority") == ["majority"]
    with pytest.raises(UnknownModelError):
        expand_model_patterns("nothing_like_this_*")


def test_duplicate_name_and_wrong_base_class_are_rejected():
    class Copy(Plugin):
        card = ModelCard(name="majority", family="baseline", framework="numpy", description="x")

    with pytest.raises(ValueError, match="already registered"):
        register_model(Copy)

    class NotAPlugin:
        card = None

    with pytest.raises(TypeError):
        register_model(NotAPlugin)  # type: ignore[arg-type]


def test_create_model_rejects_unknown_params():
    with pytest.raises(ValueError, match="majority has no parameter 'nonsense'"):
        create_model("majority", nonsense=1)


def test_listing_models_does_not_import_tensorflow():
    code = (
        "import sys; from cxrbench.plugins.registry import list_models; names = list_models(); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; "
        "print(len(names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 1


def test_plugin_contract_basics():
    import numpy as np

    model = create_model("majority", seed=3)
    assert model.get_params() == {"seed": 3, "intensity": "none", "thorax_crop": False}
    images = np.zeros((4, 8, 8, 1), np.uint8)
    ids = np.array(["a", "b", "c", "d"])
    data = ImageSet(images, np.array([0, 1, 1, 1]), ids, ids, ids)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict_proba(data)
    model.fit(data, data)
    assert model.predict_proba(data.without_labels()).tolist() == [1.0] * 4
    one_class = ImageSet(images, np.array([1, 1, 1, 1]), ids, ids, ids)
    with pytest.raises(ValueError, match="only class"):
        create_model("majority").fit(one_class, one_class)


# ------------------------------------------------- requirements (the default install has no Keras)
DEEP_MODULES = ("keras", "tensorflow")  # what the `deep` extra installs


@pytest.fixture
def without_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras and TensorFlow unimportable, as after `pip install cxrbench` without `[deep]`
    (None in sys.modules is how Python marks a module that must not be imported)."""
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    for module in DEEP_MODULES:
        monkeypatch.setitem(sys.modules, module, None)


def _card(*requires: str) -> ModelCard:
    return ModelCard(name="req", family="baseline", framework="numpy", description="d",
                     requires=requires)


def test_missing_requirements_names_each_module_not_importable_in_order(without_deep):
    card = _card("keras", "sklearn", "cxrbench_no_such_module", "no_such_parent.child")
    # Keras needs its backend's module too: TensorFlow by default.
    assert missing_requirements(card) == ["keras", "cxrbench_no_such_module",
                                          "no_such_parent.child", "tensorflow"]
    assert missing_requirements(_card("numpy", "sklearn", "skimage", "PIL")) == []


def test_keras_without_its_backend_is_missing_the_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setitem(sys.modules, "jax", None)
    assert "jax" in missing_requirements(_card("keras"))
    monkeypatch.setenv("KERAS_BACKEND", "numpy")  # a backend without a module of its own
    assert "jax" not in missing_requirements(_card("keras"))


def test_only_the_keras_plugins_need_the_deep_extra(without_deep):
    deep = [n for n in list_models() if "keras" in get_model_class(n).card.requires]
    assert {"cnn_seed", "mlp_baseline", "transfer"} <= set(deep)
    for name in set(list_models()) - set(deep):
        assert missing_requirements(get_model_class(name).card) == [], name
    check_requirements([n for n in list_models() if n not in deep])  # does not raise


def test_a_deep_plugin_without_the_deep_extra_is_a_clear_error(without_deep):
    with pytest.raises(MissingRequirementsError) as info:
        check_requirements(["majority", "cnn_seed", "transfer"])
    message = str(info.value)
    assert message.startswith("cnn_seed, transfer need keras, tensorflow, not installed here.")
    assert "pip install 'cxrbench[deep]'" in message
    assert isinstance(info.value, ValueError)  # the CLI maps it to exit 2 (bad usage)


def test_models_lists_every_plugin_without_the_deep_extra():
    """`cxrbench models` where Keras and TensorFlow cannot be imported lists what it lists
    with them, and says what to install."""
    def models(block: str) -> tuple[list[str], str]:
        code = (f"import sys; sys.modules.update({block}); "
                "from cxrbench.cli import main; sys.exit(main(['models']))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "KERAS_BACKEND": "tensorflow"})
        assert out.returncode == 0, out.stderr
        table = out.stdout.partition("\n\nnote: ")[0]
        return [line.split()[0] for line in table.splitlines()], out.stdout

    with_deep, _ = models("")
    without_deep, stdout = models("keras=None, tensorflow=None")
    assert without_deep == with_deep
    assert {"majority", "hog_svm", "cnn_seed", "transfer"} <= set(without_deep)
    assert "need keras, tensorflow, not installed here" in stdout
    assert "pip install 'cxrbench[deep]'" in stdout


def test_an_entry_point_that_cannot_be_imported_is_left_out_with_a_warning(monkeypatch):
    from importlib.metadata import EntryPoint

    from cxrbench.plugins import registry

    ghost = EntryPoint(name="ghost_plugin", value="no_such_module_for_cxrbench:Ghost",
                       group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ghost])
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.warns(UserWarning, match="'ghost_plugin' .* could not be imported and is left "
                                         "out: ModuleNotFoundError"):
        names = registry.list_models()
    assert "ghost_plugin" not in names and "hog_svm" in names
