"""Saved models: a folder with the fitted state and ``model.json``, verified before loading.

Layout of a model folder (``OUT/models/<job_id>/`` after ``cxrbench run --save-models``)::

    model.json        what the model is and how it was made (see ``ModelInfo``), and the
                      sha256 and size of every other file in the folder
    state.json        the plugin's plain fitted state (numbers, strings, lists)
    arrays.npz        its numpy arrays (read with allow_pickle=False), when it has any
    *.skops           scikit-learn objects (skops, trusted types listed per plugin)
    xgboost.ubj       an XGBoost booster (XGBoost's own UBJSON)
    model.keras       a Keras network (loaded with safe_mode=True)
    model_card.md     the model card (written from the run's results; not listed in
                      model.json, never read when loading)

The security rule for loading (:func:`load_model`): ``model.json`` is parsed as JSON (and, when
the caller knows it, checked against the sha256 the run recorded); every file it lists must
exist with that sha256 and size, and a file it does not list is refused, all before any file
is read by a loader; no format involved executes code or unpickles (see
:mod:`cxrbench.plugins.persistence`). The plugin is built from the registry by name, with the
saved parameters checked as any parameters are; nothing names code to import.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypedDict

from cxrbench.data.decode import DECODER_VERSION
from cxrbench.files import sha256_file
from cxrbench.plugins.contract import ParameterError, Plugin
from cxrbench.plugins.persistence import ArtifactError, plain_json
from cxrbench.plugins.registry import UnknownModelError, create_model
from cxrbench.provenance import git_info, keras_backend_name, package_versions, utc_now

MODEL_FILE = "model.json"
# The model card (cxrbench.report.model_card): a description rewritten from the run's results
# (when an external set is added), never read by a loader, so model.json does not list it.
CARD_FILE = "model_card.md"
DERIVED_FILES = (MODEL_FILE, CARD_FILE)  # in a model folder, not in model.json's "files"
MODELS_DIR = "models"  # a run's saved models: OUT/models/<job_id>/
FORMAT = "cxrbench-model"
FORMAT_VERSION = 1


class FileEntry(TypedDict):
    sha256: str
    bytes: int


class ModelInfo(TypedDict, total=False):
    """``model.json``. Written by :func:`save_model`; every field is documented in the README
    ("Saved models")."""

    format: str  # "cxrbench-model"
    format_version: int
    model: str  # the registered plugin name
    family: str
    framework: str
    plugin_class: str  # "module:Class", for information only (never imported from here)
    description: str
    params: dict[str, Any]  # every hyperparameter (defaults included), as JSON
    params_overridden: dict[str, Any]  # those the run set (suite, --param)
    seed: int
    input_size: int  # the square image size the plugin was given, pixels per side
    channels: int  # 1 grayscale, 3 RGB
    decoder_version: int  # cxrbench.data.DECODER_VERSION the images were decoded with
    threshold: float | None  # the decision threshold chosen on validation
    threshold_rule: str
    job_id: str
    training: dict[str, Any]  # data path, kind, data hash, split sha256 and counts, synthetic
    metrics: dict[str, Any]  # the run's val and test metrics at the threshold
    fit_info: dict[str, Any]  # what the plugin reported (chosen settings, history, sizes)
    n_params: int | None
    versions: dict[str, str]  # python, cxrbench and the libraries, keras_backend
    git: dict[str, Any]  # commit, dirty flag (or the error) of the code that fitted it
    created: str  # ISO 8601, UTC
    files: dict[str, FileEntry]  # relative posix path -> sha256 and size, every other file


@dataclass(frozen=True)
class SavedModel:
    """A verified, loaded model: the fitted plugin and its ``model.json``."""

    plugin: Plugin
    info: ModelInfo
    directory: Path

    @property
    def threshold(self) -> float:
        value = self.info.get("threshold")
        return 0.5 if value is None else float(value)

    @property
    def input_size(self) -> int:
        return int(self.info["input_size"])

    @property
    def channels(self) -> int:
        return int(self.info["channels"])


# ------------------------------------------------------------------------------------ saving
def save_model(plugin: Plugin, directory: str | Path, *, input_size: int, channels: int,
               threshold: float | None, threshold_rule: str,
               metadata: Mapping[str, Any] | None = None) -> Path:
    """Save a fitted plugin as a model folder; returns the path of its ``model.json``.

    The folder is written under a temporary name beside ``directory`` and renamed into place,
    replacing an older model of the same name, so a reader never sees half a model.
    ``metadata`` adds fields of :class:`ModelInfo` the plugin cannot know (job id, training
    data, metrics); the rest come from the plugin and this process.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        plugin.save(tmp)
        for reserved in DERIVED_FILES:
            if (tmp / reserved).exists():
                raise ArtifactError(f"{plugin.card.name}: its save wrote {reserved}, a name "
                                    "reserved for the model's description; use another file "
                                    "name")
        info = _model_info(plugin, tmp, input_size=input_size, channels=channels,
                           threshold=threshold, threshold_rule=threshold_rule,
                           metadata=metadata or {})
        (tmp / MODEL_FILE).write_text(json.dumps(_nan_to_none(info), indent=1,
                                                 allow_nan=False) + "\n", encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory / MODEL_FILE


def _model_info(plugin: Plugin, folder: Path, *, input_size: int, channels: int,
                threshold: float | None, threshold_rule: str,
                metadata: Mapping[str, Any]) -> ModelInfo:
    card = plugin.card
    versions = {"python": sys.version.split()[0], **package_versions(),
                "keras_backend": keras_backend_name()}
    info: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": card.name, "family": card.family, "framework": card.framework,
        "plugin_class": f"{type(plugin).__module__}:{type(plugin).__qualname__}",
        "description": card.description,
        "params": plain_json(plugin.get_params()), "params_overridden": {},
        "seed": int(plugin.seed), "input_size": int(input_size), "channels": int(channels),
        "decoder_version": DECODER_VERSION,
        "threshold": None if threshold is None else float(threshold),
        "threshold_rule": str(threshold_rule),
        "job_id": None, "training": {}, "metrics": {},
        "fit_info": plain_json(getattr(plugin, "fit_info_", {}) or {}),
        "n_params": (getattr(plugin, "fit_info_", {}) or {}).get("n_params"),
        "versions": versions, "git": git_info(), "created": utc_now(),
    }
    info.update(plain_json(dict(metadata)))
    info["files"] = hash_folder(folder)
    return info  # type: ignore[return-value]


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN: undefined numbers (an epoch's AUC on one class) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def hash_folder(folder: Path) -> dict[str, FileEntry]:
    """sha256 and size of every file under ``folder`` except ``model.json``, by posix path."""
    out: dict[str, FileEntry] = {}
    for rel in hash_folder_names(folder):
        path = folder / rel
        out[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


def model_json_sha256(directory: str | Path) -> str:
    """sha256 of a model folder's ``model.json`` (the run records it for each saved model)."""
    return sha256_file(Path(directory) / MODEL_FILE)


# ------------------------------------------------------------------------------------ loading
def read_model_info(directory: str | Path, *, expected_sha256: str | None = None) -> ModelInfo:
    """``model.json`` of a model folder, parsed and checked (no file of the model is read)."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is not a model folder (no such directory); give the "
                            "folder `cxrbench run --save-models` wrote, OUT/models/<job_id>")
    if not path.is_file():
        raise ArtifactError(f"{directory} has no {MODEL_FILE}: it is not a saved cxrbench model")
    raw = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise ArtifactError(f"{path} was modified after the run saved it (its sha256 differs "
                            "from the one in results.json); refusing to load it")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path} is not valid JSON: {err}") from None
    problems = _info_problems(info)
    if problems:
        raise ArtifactError(f"{path} is not a valid model description: " + "; ".join(problems))
    return info


def _info_problems(info: Any) -> list[str]:
    if not isinstance(info, dict):
        return ["the top level must be a JSON object"]
    if info.get("format") != FORMAT:
        return [f"format is {info.get('format')!r}, not {FORMAT!r}"]
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        return [f"format_version {version!r} is not supported (this cxrbench reads "
                f"{FORMAT_VERSION}); upgrade cxrbench"]
    problems = []
    for key, kind in (("model", str), ("params", dict), ("input_size", int), ("channels", int),
                      ("decoder_version", int), ("files", dict)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            problems.append(f"{key} must be a {kind.__name__}, got {info.get(key)!r}")
    threshold = info.get("threshold")
    if threshold is not None and not (isinstance(threshold, int | float)
                                      and 0 <= threshold <= 1):
        problems.append(f"threshold must be a number in [0, 1] or null, got {threshold!r}")
    if info.get("channels") not in (1, 3):
        problems.append(f"channels must be 1 or 3, got {info.get('channels')!r}")
    for name, entry in (info.get("files") or {}).items() if isinstance(info.get("files"),
                                                                        dict) else ():
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or name in ("", *DERIVED_FILES):
            problems.append(f"files lists {name!r}, which is not a file inside the folder")
        elif not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                  and isinstance(entry.get("bytes"), int)):
            problems.append(f"files[{name!r}] must hold a sha256 and a size in bytes")
    return problems


def verify_files(directory: str | Path, info: ModelInfo) -> None:
    """Every file listed in ``model.json`` is there, unmodified, and nothing else is."""
    directory = Path(directory)
    listed = info["files"]
    present = set(hash_folder_names(directory))  # before reading any of them
    missing = sorted(set(listed) - present)
    if missing:
        raise ArtifactError(f"model folder {directory} lacks {missing}, listed in {MODEL_FILE};"
                            " the copy is incomplete")
    extra = sorted(present - set(listed))
    if extra:
        raise ArtifactError(f"model folder {directory} holds {extra}, which {MODEL_FILE} does "
                            "not list; a saved model is never added to, so it is not loaded "
                            "(remove the file(s) if you put them there)")
    for name, entry in sorted(listed.items()):
        path = directory / name
        if path.is_symlink():
            raise ArtifactError(f"{path} is a symbolic link; a saved model holds plain files")
        size = path.stat().st_size
        digest = sha256_file(path)
        if size != entry["bytes"] or digest != entry["sha256"]:
            raise ArtifactError(
                f"{path} was modified after the model was saved (sha256 {digest[:12]}..., "
                f"{size} bytes; {MODEL_FILE} says {entry['sha256'][:12]}..., "
                f"{entry['bytes']} bytes); refusing to load it. Use an unmodified copy, or "
                "save the model again from its run.")


def hash_folder_names(folder: Path) -> list[str]:
    """Relative posix paths of every file (or link) under ``folder``, but its ``model.json``
    and ``model_card.md`` at the top (descriptions, never loaded)."""
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*")
             if p.is_file() or p.is_symlink())
    return sorted(name for name in names if name not in DERIVED_FILES)


def check_decoder(info: ModelInfo, directory: Path) -> None:
    """Refuse a model trained on images decoded by another decoder version."""
    if info["decoder_version"] != DECODER_VERSION:
        saved_by = (info.get("versions") or {}).get("cxrbench", "?")
        raise ArtifactError(
            f"model {directory} was trained on images decoded by cxrbench decoder version "
            f"{info['decoder_version']}, and this cxrbench decodes with version "
            f"{DECODER_VERSION}: its pixels would differ from the ones the model learnt from. "
            f"Use the cxrbench version that saved it ({saved_by}) or retrain it.")


def load_model(directory: str | Path, *, expected_sha256: str | None = None,
               factory: Callable[[ModelInfo], Plugin] | None = None) -> SavedModel:
    """Verify and load a model folder written by :func:`save_model` (see the module docstring).

    ``expected_sha256`` is the sha256 of ``model.json`` when the caller knows it (a run's
    record does). ``factory`` makes the unfitted plugin from the model description (default:
    the registry, by name, with the saved parameters). Raises :class:`ArtifactError` for a
    folder that is missing, incomplete, modified, foreign, made with another image decoder, or
    of a plugin not installed here.
    """
    directory = Path(directory)
    info = read_model_info(directory, expected_sha256=expected_sha256)
    verify_files(directory, info)
    check_decoder(info, directory)
    plugin = (factory or _from_registry)(info)
    plugin.load(directory)
    return SavedModel(plugin=plugin, info=info, directory=directory)


def _from_registry(info: ModelInfo) -> Plugin:
    directory = "the saved model"
    params = dict(info["params"])
    seed = params.pop("seed", info.get("seed", 0))
    try:
        plugin = create_model(info["model"], seed=seed, **params)
    except UnknownModelError as err:
        raise ArtifactError(f"{directory} is a {info['model']!r}, which is not registered "
                            f"here ({err}); install the package that provides it") from None
    except (ParameterError, ValueError) as err:
        raise ArtifactError(f"{directory}: its parameters are not accepted by "
                            f"this version of {info['model']}: {err}") from None
    return plugin
