"""Saved models: model.json, verification before loading, and formats that run no code.

Every built-in plugin's save -> load round trip (to 1e-6) and tamper refusal is checked by the
conformance kit (tests/test_conformance.py, parametrized over the registry); this file checks
the artifact format itself.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from cxrbench.data import DECODER_VERSION
from cxrbench.plugins.artifacts import MODEL_FILE, load_model, read_model_info, save_model
from cxrbench.plugins.conformance import make_check_data
from cxrbench.plugins.persistence import (
    ArtifactError,
    load_plain_state,
    load_sklearn,
    save_plain_state,
    save_sklearn,
    skops_types,
)
from cxrbench.plugins.registry import create_model


@pytest.fixture(scope="module")
def data():
    return make_check_data(64, 1)


@pytest.fixture(scope="module")
def fitted(data):
    return create_model("pixels_logreg", seed=3, C=0.5).fit(data.train, data.val)


@pytest.fixture
def saved(fitted, tmp_path):
    folder = tmp_path / "m"
    save_model(fitted, folder, input_size=64, channels=1, threshold=0.42,
               threshold_rule="youden", metadata={"job_id": "pixels_logreg[x,seed=3]",
                                                  "training": {"data_hash": "abc"}})
    return folder


def test_model_json_describes_the_model_and_hashes_every_file(saved, fitted):
    info = read_model_info(saved)
    assert info["model"] == "pixels_logreg" and info["family"] == "classical"
    assert info["params"] == {"seed": 3, "pixels": 32, "C": 0.5, "intensity": "none",
                              "thorax_crop": False} and info["seed"] == 3
    assert (info["input_size"], info["channels"]) == (64, 1)
    assert info["decoder_version"] == DECODER_VERSION
    assert (info["threshold"], info["threshold_rule"]) == (0.42, "youden")
    assert info["job_id"] == "pixels_logreg[x,seed=3]" and info["training"]["data_hash"] == "abc"
    assert {"python", "cxrbench", "scikit-learn", "skops", "numpy"} <= set(info["versions"])
    assert set(info["files"]) == {"state.json", "pipeline.skops"}
    for name, entry in info["files"].items():
        assert entry["bytes"] == (saved / name).stat().st_size and len(entry["sha256"]) == 64
    assert info["fit_info"] == json.loads(json.dumps(fitted.fit_info_))


def test_load_gives_the_same_probabilities(saved, fitted, data):
    model = load_model(saved)
    assert model.threshold == 0.42 and model.input_size == 64
    np.testing.assert_allclose(model.plugin.predict_proba(data.test),
                               fitted.predict_proba(data.test), atol=1e-12)


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "state.json").write_text((f / "state.json").read_text() + " "),
     "state.json was modified after the model was saved"),
    (lambda f: (f / "pipeline.skops").unlink(), "lacks ['pipeline.skops']"),
    (lambda f: (f / "extra.npz").write_bytes(b"x"), "holds ['extra.npz'], which model.json"),
    (lambda f: (f / MODEL_FILE).write_text("{not json"), "model.json is not valid JSON"),
    (lambda f: (f / MODEL_FILE).unlink(), "has no model.json: it is not a saved cxrbench model"),
])
def test_a_changed_folder_is_refused_before_anything_is_read(saved, change, message):
    change(saved)
    with pytest.raises(ArtifactError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_model(saved)


def test_model_json_is_checked_against_the_hash_the_run_recorded(saved):
    from cxrbench.plugins.artifacts import model_json_sha256

    digest = model_json_sha256(saved)
    load_model(saved, expected_sha256=digest)
    info = json.loads((saved / MODEL_FILE).read_text())
    info["threshold"] = 0.01
    (saved / MODEL_FILE).write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="modified after the run saved it"):
        load_model(saved, expected_sha256=digest)


@pytest.mark.parametrize("files, message", [
    ({"../outside.txt": {"sha256": "0" * 64, "bytes": 1}}, "not a file inside the folder"),
    ({"/etc/passwd": {"sha256": "0" * 64, "bytes": 1}}, "not a file inside the folder"),
])
def test_file_lists_that_point_outside_the_folder_are_refused(saved, files, message):
    info = json.loads((saved / MODEL_FILE).read_text())
    info["files"] = files
    (saved / MODEL_FILE).write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match=message):
        load_model(saved)


def test_a_model_of_another_decoder_version_is_refused(saved):
    info = json.loads((saved / MODEL_FILE).read_text())
    info["decoder_version"] = DECODER_VERSION + 1
    (saved / MODEL_FILE).write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match=f"decoder version {DECODER_VERSION + 1}, and this "
                                            f"cxrbench decodes with version {DECODER_VERSION}"):
        load_model(saved)


def test_an_unregistered_model_name_is_refused(saved):
    info = json.loads((saved / MODEL_FILE).read_text())
    info["model"] = "no_such_model"
    (saved / MODEL_FILE).write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="'no_such_model', which is not registered here"):
        load_model(saved)


def test_skops_files_holding_an_unlisted_type_are_refused(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    path = save_sklearn(RandomForestClassifier(n_estimators=2).fit(X, y), tmp_path / "m.skops")
    assert "sklearn.ensemble._forest.RandomForestClassifier" in skops_types(path)
    with pytest.raises(ArtifactError, match="holds types this model does not use"):
        load_sklearn(path, ["sklearn.linear_model._logistic.LogisticRegression"])
    (tmp_path / "broken.skops").write_bytes(b"PK not a zip")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_sklearn(tmp_path / "broken.skops", [])


class _State:
    card = None

    def __init__(self, **attrs):
        vars(self).update(attrs)


def test_plain_state_keeps_arrays_and_plain_values_and_refuses_objects(tmp_path):
    source = _State(weights_=np.arange(6.0).reshape(2, 3), classes_=[0, 1], name_="x",
                    table_={0: 1.5}, count_=np.int64(3), hidden=1, _private_=2)
    save_plain_state(source, tmp_path)
    target = _State()
    load_plain_state(target, tmp_path)
    np.testing.assert_array_equal(target.weights_, source.weights_)
    assert (target.classes_, target.name_, target.table_, target.count_) == (
        [0, 1], "x", {"0": 1.5}, 3)
    assert not hasattr(target, "hidden") and not hasattr(target, "_private_")
    with pytest.raises(TypeError, match="fitted attribute 'model_' holds a object"):
        save_plain_state(_State(model_=object()), tmp_path / "other")


def test_plain_state_refuses_object_arrays_and_foreign_names(tmp_path):
    np.savez(tmp_path / "arrays.npz", weights_=np.array([{"a": 1}], dtype=object))
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(ArtifactError, match="cannot read .*arrays.npz"):
        load_plain_state(_State(), tmp_path)
    (tmp_path / "arrays.npz").unlink()
    (tmp_path / "state.json").write_text('{"__class__": 1}')
    with pytest.raises(ArtifactError, match="not a fitted attribute"):
        load_plain_state(_State(), tmp_path)


@pytest.mark.slow
def test_a_keras_file_with_a_lambda_layer_is_refused_in_safe_mode(tmp_path):
    """A .keras file can carry Python code in a Lambda layer; safe mode refuses to build it."""
    import keras

    from cxrbench.plugins.persistence import load_keras, save_keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = save_keras(keras.Model(inputs, outputs), tmp_path / "model.keras")
    assert zipfile.is_zipfile(path)
    with pytest.raises(ArtifactError, match="cannot read .*model.keras"):
        load_keras(path)
