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
import re
import sys
import types
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from cxrbench.plugins.contract import ModelCard, Plugin, declares_params, validate_params

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


class UnknownModelError(KeyError):
    """No plugin is registered under this name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def register_model(cls: P) -> P:
    """Class decorator: add a plugin to the registry under ``cls.card.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise TypeError(f"{cls!r} is not a subclass of cxrbench.plugins.contract.Plugin")
    card = getattr(cls, "card", None)
    if not isinstance(card, ModelCard):
        raise TypeError(f"{cls.__name__}.card must be a cxrbench.plugins.contract.ModelCard")
    existing = _registry.get(card.name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"model name {card.name!r} is already registered by "
            f"{_sources[card.name]}; choose another name"
        )
    _registry[card.name] = cls
    _sources[card.name] = f"{cls.__module__}:{cls.__qualname__}"
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
        cls = ep.load()
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


def import_model_source(name: str, source: str) -> None:
    """Make ``name`` available in a fresh process (e.g. a job worker) from its ``module:Class``.

    Plugins registered by a decorator in a user's own module (not an entry point) are only in
    the registry of the process that imported that module; a worker imports it again here.
    """
    _ensure_loaded()
    if name not in _registry and source:
        importlib.import_module(source.partition(":")[0])


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
