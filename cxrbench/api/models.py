"""What ``cxrbench.benchmark(models=...)`` accepts, turned into the run's ``ModelSpec``s.

- A registered name or a pattern: ``"hog_svm"``, ``"hog_*"``, ``"hog_svm,majority"``.
- A ``Plugin`` subclass: registered under its card's name if it is not yet (the same class
  defined again, e.g. a notebook cell run twice, replaces the old definition).
- An unfitted instance: its class, with the parameters that differ from the class's defaults
  as overrides (checked now). With default parameters it runs under its card's name; with
  others under ``name(key=value, ...)``: a subclass that changes only the card's name,
  registered for the run, so ``[MyPlugin, MyPlugin(depth=3)]`` gives two leaderboard rows.
  The run's ``seeds`` replace an instance's own seed.

How each class reaches the job processes (by reference or by value) is decided when the jobs
are planned: see ``cxrbench.plugins.sources``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import Any

from cxrbench.plugins.contract import Plugin, validate_params
from cxrbench.plugins.registry import expand_model_patterns, get_model_class, register_model
from cxrbench.run.config import ConfigError, ModelSpec

ModelsArg = str | type[Plugin] | Plugin | Iterable[str | type[Plugin] | Plugin]


def _register_class(cls: type[Plugin]) -> str:
    register_model(cls)  # refuses a name taken by another class, with the fix
    return cls.card.name


def _same(a: Any, b: Any) -> bool:
    """A parameter left at its default (``True`` is not ``1``; ``1`` is ``1.0``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: count as different, keep the value as an override
        return False


def configured_name(name: str, overrides: Mapping[str, Any]) -> str:
    """``my_plugin(depth=3, width=8)``: the leaderboard name of a configured instance."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(overrides.items()))})"


def _configured_class(cls: type[Plugin], name: str) -> type[Plugin]:
    card = dataclasses.replace(cls.card, name=name,
                               description=f"{cls.card.description} [{name}]")

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(card=card, __module__=cls.__module__,
                         __qualname__=f"{cls.__qualname__}<{name}>",
                         __doc__=f"``{name}``: {cls.__name__} under its own name.")

    return types.new_class(cls.__name__, (cls,), exec_body=body)


def _from_instance(plugin: Plugin) -> ModelSpec:
    if getattr(plugin, "is_fitted_", False):
        raise ConfigError(f"{plugin!r} is fitted; benchmark() fits every plugin itself: pass an "
                          "unfitted one (cxrbench.plugins.contract.clone(plugin))")
    cls = type(plugin)
    _register_class(cls)
    specs = cls.param_specs()
    overrides = {key: value for key, value in plugin.get_params().items()
                 if key != "seed" and not _same(value, specs[key].default)}
    if not overrides:
        return ModelSpec(cls.card.name)
    validate_params(cls, overrides)
    name = configured_name(cls.card.name, overrides)
    register_model(_configured_class(cls, name))
    return ModelSpec(name, dict(overrides))


def model_specs(models: ModelsArg) -> list[ModelSpec]:
    """One ``ModelSpec`` per model; the same name twice is an error."""
    items = [models] if isinstance(models, str | type | Plugin) else list(models)
    specs: list[ModelSpec] = []
    for item in items:
        if isinstance(item, str):
            specs += [ModelSpec(name) for name in expand_model_patterns(item)]
        elif isinstance(item, type) and issubclass(item, Plugin):
            specs.append(ModelSpec(_register_class(item)))
        elif isinstance(item, Plugin):
            specs.append(_from_instance(item))
        else:
            raise ConfigError(f"models: {item!r} is not a model; give registered names or "
                              "patterns, Plugin subclasses or unfitted Plugin instances")
    names = [spec.name for spec in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"models: {repeated} given more than once; each model is one "
                          "leaderboard row (configure an instance to get another)")
    return specs


def apply_overrides(specs: list[ModelSpec], params: Mapping[str, Mapping[str, Any]] | None,
                    timeouts: Mapping[str, float] | None) -> None:
    """``params`` (as ``--param MODEL.KEY=VALUE``) and per-model timeouts, onto the specs;
    then every spec's parameters are checked against its plugin's declarations, so that a bad
    value stops the run before any work (a ``ParameterError`` naming what is allowed)."""
    names = {spec.name for spec in specs}
    for what, given in (("params (--param)", params), ("model_timeouts (--timeout)", timeouts)):
        unknown = sorted(set(given or {}) - names)
        if unknown:
            raise ConfigError(f"{what} names model(s) not in this run: {unknown}")
    for spec in specs:
        spec.params.update((params or {}).get(spec.name, {}))
        if timeouts and spec.name in timeouts:
            spec.timeout_s = ModelSpec(spec.name, timeout_s=timeouts[spec.name]).timeout_s
        validate_params(get_model_class(spec.name), spec.params)
