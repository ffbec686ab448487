import subprocess
import sys

import pytest

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.plugins.registry import (
    UnknownModelError,
    create_model,
    expand_model_patterns,
    get_model_class,
    list_models,
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
