"""The model registry: one name -> one plugin class.

Built-in plugins register with the ``@register_model`` decorator in their family module, and
:func:`register_variant` registers a plugin again under another name with other defaults;
third-party packages declare ``[project.entry-points."cxrbench.models"]`` entries
(``name = "package.module:Class"``). Plugin modules import deep-learning frameworks lazily,
inside ``fit``, so listing models never imports TensorFlow (the conformance kit checks it).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import importlib.util
import re
import sys
import types
import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from cxrbench.plugins.contract import ModelCard, Plugin, declares_params, validate_params
from cxrbench.provenance import keras_backend_name

ENTRY_POINT_GROUP = "cxrbench.models"

# Family modules of the package, imported on first use of the registry.
BUILTIN_MODULES = (
    "cxrbench.plugins.baseline",
    "cxrbench.plugins.classical",
    "cxrbench.plugins.mlp",
    "cxrbench.plugins.cnn",
    "cxrbench.plugins.transfer",
    "cxrbench.plugins.probe",
    "cxrbench.plugins.ensemble",
)

_registry: dict[str, type[Plugin]] = {}
_sources: dict[str, str] = {}
_loaded = False

P = TypeVar("P", bound=type[Plugin])


# The cxrbench extra (pyproject.toml) that installs a module a card may require; the default
# install leaves deep learning out (TensorFlow alone is about 1.9 GB).
EXTRA_FOR_MODULE = {"keras": "deep", "tensorflow": "deep"}
# The module each Keras 3 backend imports when Keras is imported (the numpy backend needs none).
KERAS_BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch",
                         "openvino": "openvino"}
# Package names that differ from the module names plugins require.
PIP_NAMES = {"sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "pillow"}


class UnknownModelError(KeyError):
    """No plugin is registered under this name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def register_model(cls: P) -> P:
    """Class decorator: add a plugin to the registry under ``cls.card.name``.

    A name already taken by another class is an error, unless that class has the same module
    and qualified name: the same definition run again (a notebook cell, ``importlib.reload``)
    replaces the old one.
    """
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise TypeError(f"{cls!r} is not a subclass of cxrbench.plugins.contract.Plugin")
    card = getattr(cls, "card", None)
    if not isinstance(card, ModelCard):
        raise TypeError(f"{cls.__name__}.card must be a cxrbench.plugins.contract.ModelCard")
    source = f"{cls.__module__}:{cls.__qualname__}"
    existing = _registry.get(card.name)
    if existing is not None and existing is not cls and _sources[card.name] != source:
        raise ValueError(
            f"model name {card.name!r} is already registered by "
            f"{_sources[card.name]}; choose another name"
        )
    _registry[card.name] = cls
    _sources[card.name] = source
    return cls


def register_variant(name: str, base: type[Plugin], *, module: str,
                     description: str | None = None, **defaults: Any) -> type[Plugin]:
    """Register ``base`` again as ``name`` with other defaults; returns the new class.

    The variant is a subclass of ``base`` whose declared parameters take ``defaults`` (checked
    by :func:`~cxrbench.plugins.contract.validate_params`), so ``get_params()`` reports them
    and ``--param`` overrides still apply. Its card is ``base``'s with ``name``,
    ``description`` and, when ``defaults`` sets ``input_size``, that input size. The class is
    named after ``name`` in CamelCase and set as an attribute of ``module`` (pass the
    registering module's ``__name__``), so that fitted variants pickle.
    """
    if not (isinstance(base, type) and issubclass(base, Plugin)):
        raise TypeError(f"{base!r} is not a subclass of cxrbench.plugins.contract.Plugin")
    if not declares_params(base):
        raise TypeError(f"register_variant needs declared parameters; {base.__name__} has a "
                        "hand-written __init__: subclass it with new defaults instead")
    home = sys.modules.get(module)
    if home is None:
        raise ValueError(f"register_variant: module {module!r} is not imported; pass the "
                         "__name__ of the module that registers the variant")
    checked = validate_params(base, defaults)
    class_name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", name)
                         if part)
    if not class_name.isidentifier() or hasattr(home, class_name):
        raise ValueError(f"register_variant: cannot name the class of {name!r} "
                         f"{module}.{class_name}: choose another model name")
    card = dataclasses.replace(
        base.card, name=name,
        description=description or f"{base.card.description} (variant: "
                                   + ", ".join(f"{k}={v!r}" for k, v in checked.items()) + ")",
        input_size=int(checked.get("input_size", base.card.input_size)),
    )

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(checked)  # new defaults: the contract keeps their types and ranges
        namespace.update(__module__=module, __qualname__=class_name, card=card,
                         __doc__=f"``{name}``: {base.__name__} with other defaults.")

    cls = register_model(types.new_class(class_name, (base,), exec_body=body))
    setattr(home, class_name, cls)  # only once registered: a refused variant leaves no trace
    return cls


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            continue
        try:
            cls = ep.load()
        except Exception as err:  # noqa: BLE001  # one broken package must not hide the rest
            warnings.warn(f"plugin entry point {ep.name!r} ({ep.value}) could not be imported "
                          f"and is left out: {type(err).__name__}: {err}; reinstall the "
                          "package that provides it, or uninstall it", stacklevel=2)
            continue
        if getattr(getattr(cls, "card", None), "name", None) != ep.name:
            raise ValueError(
                f"entry point {ep.name!r} ({ep.value}) loads a plugin whose card.name is "
                f"{getattr(getattr(cls, 'card', None), 'name', None)!r}; they must match"
            )
        register_model(cls)


def _natural_key(name: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_models(
    include: str | Iterable[str] = "*",
    exclude: str | Iterable[str] = (),
    family: str | None = None,
) -> list[str]:
    """Registered names matching ``include`` (fnmatch patterns), naturally sorted."""
    _ensure_loaded()
    includes = [include] if isinstance(include, str) else list(include)
    excludes = [exclude] if isinstance(exclude, str) else list(exclude)
    names = [
        name for name in _registry
        if any(fnmatch.fnmatchcase(name, pat) for pat in includes)
        and not any(fnmatch.fnmatchcase(name, pat) for pat in excludes)
        and (family is None or _registry[name].card.family == family)
    ]
    return sorted(names, key=_natural_key)


def get_model_class(name: str) -> type[Plugin]:
    """The plugin class registered as ``name``; a clear error with close matches if none."""
    _ensure_loaded()
    try:
        return _registry[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_registry), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        available = ", ".join(list_models())
        raise UnknownModelError(
            f"Unknown model {name!r}.{hint} Available: {available}. "
            "Run `cxrbench models` to list them."
        ) from None


def get_card(name: str) -> ModelCard:
    return get_model_class(name).card


def model_source(name: str) -> str:
    """``module:Class`` where the plugin comes from."""
    get_model_class(name)
    return _sources[name]


def create_model(name: str, *, seed: int = 0, **params: Any) -> Plugin:
    """Instantiate a registered plugin with hyperparameters and a seed, checked and converted
    by :func:`~cxrbench.plugins.contract.validate_params` (a ParameterError says what is
    allowed)."""
    cls = get_model_class(name)
    checked = validate_params(cls, {"seed": seed, **params})
    try:
        return cls(**checked)
    except TypeError as err:
        raise ValueError(f"bad parameters for model {name!r}: {err}") from err


def expand_model_patterns(spec: str | Iterable[str]) -> list[str]:
    """``"hog_*,majority"`` -> concrete names; unknown exact names raise UnknownModelError."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names: list[str] = []
    for item in filter(None, items):
        if any(ch in item for ch in "*?["):
            matched = list_models(item)
            if not matched:
                raise UnknownModelError(f"No model matches pattern {item!r}. "
                                        f"Available: {', '.join(list_models())}")
        else:
            get_model_class(item)
            matched = [item]
        names.extend(m for m in matched if m not in names)
    return names


class MissingRequirementsError(ValueError):
    """Plugins asked for need modules that are not installed (the message says what to run)."""


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # finds it without importing it
    except ImportError:  # a dotted name whose parent package is missing
        return False
    except ValueError:  # already imported, without a spec (e.g. __main__)
        return True


def missing_requirements(card: ModelCard) -> list[str]:
    """The modules ``card.requires`` names that cannot be imported here, in order, found
    without importing them (so checking never imports TensorFlow). A card that requires
    ``keras`` also needs its backend's module (``KERAS_BACKEND``, TensorFlow by default):
    Keras 3 imports it on ``import keras``."""
    needed = list(card.requires)
    if "keras" in needed:
        backend = KERAS_BACKEND_MODULES.get(keras_backend_name())
        if backend and backend not in needed:
            needed.append(backend)
    return [module for module in needed if not _importable(module)]


def install_hint(modules: Iterable[str]) -> str:
    """The command that installs ``modules``: cxrbench's extra where one provides them."""
    modules = list(dict.fromkeys(modules))
    extras = sorted({EXTRA_FOR_MODULE[m] for m in modules if m in EXTRA_FOR_MODULE})
    others = [PIP_NAMES.get(m, m) for m in modules if m not in EXTRA_FOR_MODULE]
    commands = []
    if extras:
        spec = ",".join(extras)
        commands.append(f"pip install 'cxrbench[{spec}]' (from a checkout: "
                        f"pip install -e '.[{spec}]')")
    if others:
        commands.append("pip install " + " ".join(others))
    return "; ".join(commands)


def check_requirements(names: Iterable[str]) -> None:
    """Raise MissingRequirementsError, naming the models, the modules and the install command,
    when any of the registered plugins ``names`` needs a module that is not installed."""
    missing_by_model = {name: missing_requirements(get_card(name)) for name in names}
    missing_by_model = {name: missing for name, missing in missing_by_model.items() if missing}
    if not missing_by_model:
        return
    modules = list(dict.fromkeys(m for missing in missing_by_model.values() for m in missing))
    models = ", ".join(missing_by_model)
    raise MissingRequirementsError(
        f"{models} need{'s' if len(missing_by_model) == 1 else ''} "
        f"{', '.join(modules)}, not installed here. Install with: {install_hint(modules)}"
    )
