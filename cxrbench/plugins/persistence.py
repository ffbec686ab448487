"""Fitted state on disk in formats that load without executing code (no pickle anywhere).

- Plain state (:func:`save_plain_state` / :func:`load_plain_state`): a plugin's fitted
  attributes (names ending in ``_``) that are numpy arrays go into ``arrays.npz`` (read back
  with ``allow_pickle=False``: object arrays are refused on both sides), plain JSON values
  (numbers, strings, booleans, None, lists and dicts of them) into ``state.json``. This is the
  contract's default, enough for plugins whose state is arrays and numbers.
- scikit-learn objects through skops (:func:`save_sklearn` / :func:`load_sklearn`): loading
  names the types it trusts explicitly, and skops refuses a file holding any other type.
- XGBoost models in XGBoost's own UBJSON format (:func:`save_xgboost` / :func:`load_xgboost`).
- Keras models as ``.keras`` files, loaded with ``safe_mode=True`` (:func:`save_keras` /
  :func:`load_keras`): a file that would deserialise a Python lambda is refused.

Every reader raises :class:`ArtifactError` (a ValueError) naming the file and what is wrong.
Nothing here checks content hashes: :mod:`cxrbench.plugins.artifacts` does that before any of
these readers runs.
"""

from __future__ import annotations

import contextlib
import json
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"
# Types any skops file may hold besides the estimators a plugin names: containers and numbers.
SKOPS_BASE_TYPES: tuple[str, ...] = (
    "builtins.dict", "builtins.list", "builtins.str", "builtins.tuple", "builtins.int",
    "builtins.float", "builtins.bool", "builtins.NoneType", "numpy.ndarray", "numpy.dtype",
    "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32",
)


class ArtifactError(ValueError):
    """A saved model cannot be read as it is (missing, modified, foreign, or unsafe)."""


def fitted_attributes(plugin: Any) -> dict[str, Any]:
    """The fitted state: public attributes ending in ``_`` (``is_fitted_`` excluded)."""
    return {name: value for name, value in vars(plugin).items()
            if name.endswith("_") and not name.startswith("_") and name != "is_fitted_"}


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON (numpy scalars become numbers, tuples lists, dict keys strings);
    raises TypeError naming the type that is not plain."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str | int | float | bool) for k in value):
        # Keys become strings, as json.dumps makes them (e.g. a class-weight table {0: w}).
        return {json.dumps(k) if not isinstance(k, str) else k: plain_json(v)
                for k, v in value.items()}
    raise TypeError(type(value).__name__)


def save_plain_state(plugin: Any, directory: Path, *, skip: Iterable[str] = ()) -> list[Path]:
    """Write the fitted attributes (except ``skip``) as ``state.json`` + ``arrays.npz``.

    Raises TypeError naming the first attribute that is neither a numeric numpy array nor a
    plain value: such state needs the plugin's own ``_save`` / ``_load``.
    """
    skipped = set(skip)
    state: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    name = getattr(getattr(plugin, "card", None), "name", type(plugin).__name__)
    for attr, value in fitted_attributes(plugin).items():
        if attr in skipped:
            continue
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[attr] = value
            continue
        try:
            state[attr] = plain_json(value)
        except TypeError as err:
            raise TypeError(
                f"{name}: fitted attribute {attr!r} holds a {err}, which the default save "
                "cannot store (it keeps numeric numpy arrays and plain JSON values); implement "
                "_save/_load for it (see cxrbench.plugins.persistence: skops, XGBoost JSON, "
                "Keras .keras)") from None
    written = [directory / STATE_FILE]
    (directory / STATE_FILE).write_text(json.dumps(state, allow_nan=True, indent=1),
                                        encoding="utf-8")
    if arrays:
        with open(directory / ARRAYS_FILE, "wb") as handle:
            np.savez(handle, **arrays)
        written.append(directory / ARRAYS_FILE)
    return written


def load_plain_state(plugin: Any, directory: Path) -> None:
    """Set the attributes written by :func:`save_plain_state` back on ``plugin``."""
    state_path = directory / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{state_path} is missing; the model folder is incomplete") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{state_path} is not valid JSON: {err}") from None
    if not isinstance(state, dict):
        raise ArtifactError(f"{state_path} must hold a JSON object")
    for attr, value in state.items():
        _check_attribute_name(attr, state_path)
        setattr(plugin, attr, value)
    arrays_path = directory / ARRAYS_FILE
    if arrays_path.exists():
        try:
            with np.load(arrays_path, allow_pickle=False) as archive:
                for attr in archive.files:
                    _check_attribute_name(attr, arrays_path)
                    setattr(plugin, attr, archive[attr])
        except ArtifactError:
            raise
        except Exception as err:  # noqa: BLE001  # object arrays refused, or a broken zip
            raise ArtifactError(f"cannot read {arrays_path}: {type(err).__name__}: {err}") \
                from None


def _check_attribute_name(attr: str, where: Path) -> None:
    if not (isinstance(attr, str) and attr.isidentifier() and attr.endswith("_")
            and not attr.startswith("_") and attr != "is_fitted_"):
        raise ArtifactError(f"{where} names {attr!r}, which is not a fitted attribute "
                            "(an identifier ending in '_'); the file was not written by "
                            "cxrbench")


# ------------------------------------------------------------------------------ scikit-learn
def save_sklearn(obj: Any, path: Path) -> Path:
    """A scikit-learn object as a skops file (no pickle)."""
    import skops.io as sio

    sio.dump(obj, path)
    return path


def skops_types(path: Path) -> set[str]:
    """Every type a skops file would build (``module.Class``), read from its ``schema.json``
    as plain JSON: nothing is imported or constructed."""
    import zipfile

    def walk(node: Any, found: set[str]) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            for value in node.values():
                walk(value, found)
        elif isinstance(node, list):
            for value in node:
                walk(value, found)

    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    walk(schema, found)
    return found


def load_sklearn(path: Path, trusted: Iterable[str]) -> Any:
    """Read a skops file that holds only ``trusted`` types (full names) and plain containers.

    The types are listed from the file's schema first, and anything else is refused before
    skops builds an object (skops itself never unpickles); skops is then told to trust exactly
    that list.
    """
    import skops.io as sio

    allowed = sorted({*trusted, *SKOPS_BASE_TYPES})
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the model folder is incomplete")
    try:
        foreign = sorted(skops_types(path) - set(allowed))
    except Exception as err:  # noqa: BLE001  # not a zip, no schema, bad JSON
        raise ArtifactError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    if foreign:
        raise ArtifactError(f"{path} holds types this model does not use: {foreign}; it was "
                            "not written by this plugin, so it is not loaded")
    try:
        return sio.load(path, trusted=allowed)
    except Exception as err:  # noqa: BLE001  # skops: untrusted type, broken zip, bad schema
        raise ArtifactError(f"cannot read {path}: {type(err).__name__}: {err}") from None


# ------------------------------------------------------------------------------ XGBoost
def save_xgboost(model: Any, path: Path) -> Path:
    """An XGBoost scikit-learn wrapper in XGBoost's own format (``.ubj`` or ``.json``)."""
    model.save_model(str(path))
    return path


def load_xgboost(path: Path, cls: Any, **params: Any) -> Any:
    """``cls(**params)`` with the booster read from ``path`` (XGBoost parses it; no code)."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the model folder is incomplete")
    model = cls(**params)
    try:
        model.load_model(str(path))
    except Exception as err:  # noqa: BLE001  # xgboost.core.XGBoostError and friends
        raise ArtifactError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    return model


# ------------------------------------------------------------------------------ Keras
def save_keras(model: Any, path: Path) -> Path:
    """A Keras model as a ``.keras`` file (architecture JSON + weights, zipped), without its
    optimizer's state: prediction does not need it, and Adam's two moment estimates per weight
    would triple the file. A functional model is saved through an uncompiled twin sharing its
    layers; any other model as it is."""
    import keras

    with contextlib.suppress(AttributeError, TypeError, ValueError):  # subclassed: saved whole
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    model.save(str(path))
    return path


def load_keras(path: Path) -> Any:
    """Read a ``.keras`` file with ``safe_mode=True`` (no lambda deserialisation), uncompiled:
    only prediction is needed."""
    import keras

    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the model folder is incomplete")
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001  # safe-mode refusal, unknown layer, bad zip
        raise ArtifactError(f"cannot read {path}: {type(err).__name__}: {err}") from None
