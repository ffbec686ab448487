"""Where a plugin comes from, and how it reaches another process.

- :func:`load_plugins` imports local plugin files or modules (``--plugins my_model.py,my_pkg.mod``
  or ``CXRBENCH_PLUGINS``), so that the ``@register_model`` decorators in them fill the
  registry. A file is imported as a module named after it (``my_model``) with its folder first
  on ``sys.path``, as ``python my_model.py`` would; a dotted name is imported as a module. Each
  import is described by a :class:`PluginImport` (what was given, the file, its sha256), which
  travels with the jobs: a job process or a Dask worker imports the same file again, after
  checking that its sha256 has not changed.
- :func:`plugin_origin` is what a record notes about its plugin: the class (``module:Class``),
  the file it was defined in and that file's sha256.
- :func:`class_payload` and :func:`ensure_model`: a plugin class travels to a job process **by
  reference** when ``module:Class`` imports it back (the process imports the module and, if
  the import did not register it, registers the class), and **by value** (cloudpickle) when it
  cannot be imported: a class defined in ``__main__`` (a notebook cell, a script), inside a
  function, or made at run time. The payload goes from this process to its own job processes
  only; nothing is unpickled from a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import io
import os
import pickle
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from cxrbench.files import sha256_file
from cxrbench.plugins.contract import Plugin
from cxrbench.plugins.registry import (
    UnknownModelError,
    get_model_class,
    list_models,
    model_source,
    register_model,
)

PLUGINS_ENV = "CXRBENCH_PLUGINS"


class PluginLoadError(ValueError):
    """A local plugin file or module cannot be imported, or changed since it was first read."""


@dataclass(frozen=True)
class PluginImport:
    """One ``--plugins`` entry as imported: what was given, the module, its file and sha256."""

    spec: str  # as given: a path to a .py file, or a dotted module name
    module: str
    file: str | None
    sha256: str | None


def split_plugin_specs(value: str | Sequence[str] | None) -> list[str]:
    """``"a.py,pkg.mod"`` (commas or ``os.pathsep``) or a list of them -> the entries."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        for part in re.split(f"[,{re.escape(os.pathsep)}]", str(item)):
            if part.strip() and part.strip() not in out:
                out.append(part.strip())
    return out


def resolve_plugin_specs(given: str | Sequence[str] | None) -> list[str]:
    """The plugin entries to import: those given (``--plugins``, ``plugins=``), else
    ``$CXRBENCH_PLUGINS``."""
    if given is None:
        given = os.environ.get(PLUGINS_ENV) or None
    return split_plugin_specs(given)


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _import_file(path: Path) -> ModuleType:
    name = path.stem
    if not name.isidentifier():
        raise PluginLoadError(f"plugin file {path}: {name!r} is not a valid module name; "
                              "rename the file (letters, digits and underscores)")
    existing = sys.modules.get(name)
    if existing is not None:
        existing_file = getattr(existing, "__file__", None)
        if existing_file and Path(existing_file).resolve() == path:
            return existing
        raise PluginLoadError(
            f"plugin file {path}: a module named {name!r} is already imported from "
            f"{existing_file or 'a built-in or namespace package'}; rename the file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as `python my_model.py`: its neighbours import too
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as err:
        del sys.modules[name]
        if isinstance(err, Exception):
            raise PluginLoadError(f"importing plugin file {path} failed: "
                                  f"{type(err).__name__}: {err}") from err
        raise
    return module


def _import(spec: str) -> ModuleType:
    if _is_file_spec(spec):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise PluginLoadError(f"plugin file {spec} does not exist; give the path to a .py "
                                  "file or an importable module name (my_pkg.plugins)")
        return _import_file(path)
    try:
        return importlib.import_module(spec)
    except ImportError as err:
        raise PluginLoadError(f"cannot import plugin module {spec!r}: {err}; give an "
                              "importable module name or the path to a .py file") from err


def _file_of(module: ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None


def load_plugins(entries: Iterable[str | PluginImport]) -> list[PluginImport]:
    """Import local plugin files or modules before the registry is read; returns what was
    imported. A :class:`PluginImport` given back (in a job process) is imported from the same
    place and must still have the same sha256: a file edited since the run planned is refused.
    """
    list_models()  # built-ins and entry points first: a clashing name then fails in the file
    imported = []
    for entry in entries:
        expected = entry if isinstance(entry, PluginImport) else None
        spec = entry.spec if isinstance(entry, PluginImport) else entry
        if expected is not None and expected.file and expected.sha256:
            if not Path(expected.file).is_file():
                raise PluginLoadError(f"plugin file {expected.file} is not here; it must be at "
                                      "the same path on every machine that runs jobs")
            found = sha256_file(expected.file)
            if found != expected.sha256:
                raise PluginLoadError(
                    f"plugin file {expected.file} changed since the run started (sha256 "
                    f"{found[:12]} != {expected.sha256[:12]}); rerun to use the new version")
            spec = expected.file if _is_file_spec(expected.spec) else expected.spec
        module = _import(spec)
        file = _file_of(module)
        imported.append(PluginImport(spec=spec if expected is None else expected.spec,
                                     module=module.__name__, file=file,
                                     sha256=sha256_file(file) if file else None))
    return imported


# ------------------------------------------------------------------------- a plugin's origin
def plugin_origin(name: str) -> dict[str, Any]:
    """What a record notes about its plugin: ``class`` (``module:Class``), ``file`` (where the
    class was defined, as this process imported it) and ``sha256``: of that file, or, for a
    class with no file (a notebook cell), of the class's source text when Python can read it
    (``sha256_of`` says which; None when neither is available)."""
    cls = get_model_class(name)
    module = sys.modules.get(cls.__module__)
    file = _file_of(module) if module is not None else None
    if file is not None and not Path(file).is_file():
        file = None  # e.g. a module loaded from a zip, or <stdin>
    if file is not None:
        return {"class": model_source(name), "file": file, "sha256": sha256_file(file),
                "sha256_of": "file"}
    text = _class_source(cls)
    if text is None:  # e.g. defined by exec() or python -c: no source to read
        return {"class": model_source(name), "file": None, "sha256": None, "sha256_of": None}
    return {"class": model_source(name), "file": None,
            "sha256": hashlib.sha256(text.encode()).hexdigest(), "sha256_of": "class source"}


def _class_source(cls: type) -> str | None:
    """The class's source text; else (a notebook cell: Python 3.11 cannot find a class
    defined in ``__main__``) the source of the methods it defines, which Python finds."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        pass
    parts = []
    for attribute, value in sorted(vars(cls).items()):
        function = getattr(value, "__func__", value)
        if inspect.isfunction(function) and function.__qualname__.startswith(cls.__qualname__):
            try:
                parts.append(f"{attribute}:\n{inspect.getsource(function)}")
            except (OSError, TypeError):
                continue
    return "".join(parts) or None


# ------------------------------------------------------------- a class in another process
def importable(cls: type) -> bool:
    """True when ``module:Class`` leads back to ``cls`` (another process can import it)."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return False
    target: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        target = getattr(target, part, None)
    return target is cls


# name -> the payload this process made or loaded for it: the same bytes need no reloading
_by_value: dict[str, bytes] = {}


def class_payload(name: str) -> bytes | None:
    """None when the plugin's class travels by reference; else the class, cloudpickled."""
    cls = get_model_class(name)
    if importable(cls):
        return None
    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            # dataclasses compares its MISSING sentinel by identity (a class's fields hold it
            # as the absent default): send it by name, or the copy would be another object.
            if obj is dataclasses.MISSING:
                return getattr, (dataclasses, "MISSING")
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.DEFAULT_PROTOCOL).dump(cls)
    _by_value[name] = buffer.getvalue()
    return _by_value[name]


def _registered(name: str) -> bool:
    try:
        get_model_class(name)
    except UnknownModelError:
        return False
    return True


def ensure_model(name: str, source: str, payload: bytes | None = None) -> None:
    """Make ``name`` available in this process (a job process, a Dask worker): from the
    payload (a class sent by value; a new payload replaces what a long-lived worker loaded
    before, e.g. a notebook cell edited between runs), else by importing ``module:Class`` and
    registering the class if importing its module did not."""
    if _registered(name) and (payload is None or _by_value.get(name) == payload):
        return
    if payload is not None:
        cls = pickle.loads(payload)  # made by class_payload in the process that planned the job
        _by_value[name] = payload
    else:
        module_name, _, qualname = source.partition(":")
        if not module_name:
            raise UnknownModelError(f"Unknown model {name!r}, and the job names no module "
                                    "to import it from")
        cls = importlib.import_module(module_name)
        if _registered(name):
            return
        for part in qualname.split("."):
            cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, Plugin)) or cls.card.name != name:
        raise UnknownModelError(f"{source or 'the job'} does not provide the plugin {name!r}")
    register_model(cls)
