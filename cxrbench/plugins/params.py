"""Declared hyperparameters: type, default, range and choices of each, and how values are checked.

A plugin declares its hyperparameters as annotated class attributes (see
:class:`cxrbench.plugins.contract.Plugin`); :func:`param` adds a range or a set of allowed values
to one of them::

    epochs: int = param(10, low=1)
    dropout: float = param(0.2, low=0, high=1, high_exclusive=True)
    class_weight: str | None = param("balanced", choices=("balanced",))

:meth:`ParamSpec.validate` checks a value the way a suite file or ``--param KEY=JSON`` gives it:
an int is accepted for a float parameter (and becomes a float), an integral float (``4.0``,
``1e3``) for an int one, a JSON list for a tuple parameter (it becomes a tuple); ``3.7`` is
refused for an int parameter, a bool for a number, None unless the annotation allows it, and a
value outside the range or the choices. Ranges and choices apply to each element of a tuple
parameter. Annotations that cannot be resolved (or none at all) are not checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np

SPEC_KEY = "cxrbench"  # where param() keeps its Bounds in a dataclass field's metadata


class ParameterError(ValueError):
    """A hyperparameter name or value a plugin does not accept.

    The message names the model, the parameter, the value given and what is allowed; the same
    facts are attributes, for callers that format their own message.
    """

    def __init__(self, message: str, *, model: str, parameter: str, value: Any = None,
                 allowed: str = "") -> None:
        super().__init__(message)
        self.model = model
        self.parameter = parameter
        self.value = value
        self.allowed = allowed


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A declared range (inclusive unless marked exclusive) and/or a set of allowed values."""

    low: float | None = None
    high: float | None = None
    low_exclusive: bool = False
    high_exclusive: bool = False
    choices: tuple[Any, ...] | None = None


def param(default: Any, *, low: float | None = None, high: float | None = None,
          low_exclusive: bool = False, high_exclusive: bool = False,
          choices: tuple[Any, ...] | None = None) -> Any:
    """A hyperparameter's default with its allowed range or values (a dataclass field).

    ``low``/``high`` bound numbers (inclusive; ``low_exclusive=True`` for ``> low``);
    ``choices`` lists the allowed values (None needs no listing when the annotation allows it).
    For a tuple parameter both apply to each element. A mutable default (list, dict) is refused
    by dataclasses: use a tuple.
    """
    if low is not None and high is not None and low > high:
        raise ValueError(f"param(): low {low} is above high {high}")
    bounds = Bounds(low, high, low_exclusive, high_exclusive,
                    None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={SPEC_KEY: bounds})


class _Mismatch(Exception):
    """A value does not have the declared type (internal: becomes a ParameterError)."""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: its resolved type (``typing.Any`` when undeclared), default, range
    and choices. ``default`` is ``dataclasses.MISSING`` for a parameter without one."""

    name: str
    type: Any
    default: Any
    low: float | None = None
    high: float | None = None
    low_exclusive: bool = False
    high_exclusive: bool = False
    choices: tuple[Any, ...] | None = None

    @classmethod
    def from_bounds(cls, name: str, type_: Any, default: Any, bounds: Bounds | None) -> ParamSpec:
        bounds = bounds or Bounds()
        return cls(name, type_, default, bounds.low, bounds.high, bounds.low_exclusive,
                   bounds.high_exclusive, bounds.choices)

    def allowed(self) -> str:
        """What values are allowed, in words: ``an integer >= 1``, ``one of: 'rbf', 'linear'``."""
        sequence = _is_sequence_type(self.type)
        if self.choices is not None:
            options = "one of: " + ", ".join(repr(c) for c in self.choices)
            text = f"{_describe(self.type)}, each {options}" if sequence else options
        else:
            text = _describe(self.type)
        limits = ""
        if self.low is not None and self.high is not None:
            limits = (f"in {'(' if self.low_exclusive else '['}{self.low}, {self.high}"
                      f"{')' if self.high_exclusive else ']'}")
        elif self.low is not None:
            limits = f"{'>' if self.low_exclusive else '>='} {self.low}"
        elif self.high is not None:
            limits = f"{'<' if self.high_exclusive else '<='} {self.high}"
        if limits:
            text += f", each {limits}" if sequence else f" {limits}"
        if _allows_none(self.type) and not (self.choices and None in self.choices):
            text += ", or None (null)"
        return text

    def validate(self, value: Any, model: str) -> Any:
        """``value`` converted to the declared type, or a ParameterError saying what is allowed."""
        try:
            converted = _coerce(value, self.type)
            items = converted if isinstance(converted, tuple | list) else (converted,)
            for item in items:
                if item is not None and not self._within(item):
                    raise _Mismatch
        except _Mismatch:
            allowed = self.allowed()
            raise ParameterError(
                f"{model}: invalid value {value!r} for parameter {self.name!r}; "
                f"allowed: {allowed}",
                model=model, parameter=self.name, value=value, allowed=allowed) from None
        return converted

    def _within(self, item: Any) -> bool:
        if self.choices is not None and not any(_same(item, c) for c in self.choices):
            return False
        if not isinstance(item, numbers.Real) or isinstance(item, bool):
            return True
        if self.low is not None and not (item > self.low if self.low_exclusive
                                         else item >= self.low):
            return False
        return self.high is None or bool(item < self.high if self.high_exclusive
                                         else item <= self.high)


def unknown_parameter(model: str, name: str, valid: typing.Iterable[str]) -> ParameterError:
    """The error for a parameter name the model does not have, with close matches."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ParameterError(f"{model} has no parameter {name!r}.{hint} Valid parameters: "
                          f"{', '.join(valid)}", model=model, parameter=name,
                          allowed=", ".join(valid))


def validate(model: str, specs: Mapping[str, ParamSpec], params: Mapping[str, Any], *,
             open_names: bool = False) -> dict[str, Any]:
    """``params`` checked against ``specs`` and converted; ``open_names`` passes unknown names
    through unchecked (an ``__init__`` that takes ``**kwargs``)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = specs.get(name)
        if spec is None:
            if not open_names:
                raise unknown_parameter(model, name, specs)
            out[name] = value
        else:
            out[name] = spec.validate(value, model)
    return out


# ------------------------------------------------------------------------------ annotations
def resolve_annotation(annotation: Any, module: str | None, localns: Mapping[str, Any] | None
                       = None) -> Any:
    """A (possibly string) annotation as a type, evaluated in ``module``'s namespace; ``Any``
    when it is missing or cannot be resolved (then values are not type-checked)."""
    if annotation is None or annotation is dataclasses.MISSING or annotation == "":
        return Any
    if not isinstance(annotation, str):
        return annotation
    holder = types.SimpleNamespace(__annotations__={"value": annotation})
    globalns = vars(sys.modules[module]) if module in sys.modules else {}
    try:
        return typing.get_type_hints(holder, dict(globalns), dict(localns or {}))["value"]
    except Exception:  # noqa: BLE001  # a name only a type checker sees: leave it unchecked
        return Any


def _is_sequence_type(tp: Any) -> bool:
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        return any(_is_sequence_type(a) for a in typing.get_args(tp))
    return tp in (tuple, list) or typing.get_origin(tp) in (tuple, list)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type: True is not 1, "1" is not 1."""
    return type(a) is type(b) and a == b


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (JSON-ish conversions only), else raise _Mismatch."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (types.UnionType, typing.Union):
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        for choice in args:
            if _same(value, choice):
                return choice
        raise _Mismatch
    if value is None:
        raise _Mismatch
    if tp is bool:
        if _is_bool(value):
            return bool(value)
        raise _Mismatch
    if tp is int:
        if isinstance(value, numbers.Integral) and not _is_bool(value):
            return int(value)
        if (isinstance(value, numbers.Real) and not _is_bool(value)
                and float(value).is_integer()):
            return int(value)  # 4.0 or 1e3 from JSON; 3.7 is refused
        raise _Mismatch
    if tp is float:
        if isinstance(value, numbers.Real) and not _is_bool(value):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, tuple | list):
            raise _Mismatch
        if not args:
            items = list(value)
        elif len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0]) for v in value]
        elif len(args) == len(value):
            items = [_coerce(v, a) for v, a in zip(value, args, strict=True)]
        else:
            raise _Mismatch
        return tuple(items) if (origin or tp) is tuple else items
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value  # an annotation this checker does not understand: accepted as given


def _allows_none(tp: Any) -> bool:
    if tp is None or tp is type(None):
        return True
    union = typing.get_origin(tp) in (types.UnionType, typing.Union)
    return union and type(None) in typing.get_args(tp)


_WORDS = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def _describe(tp: Any) -> str:
    """A type in words, for error messages (None is left to the caller: see _allows_none)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return "any value"
    if tp is None or tp is type(None):
        return "None (null)"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "one of: " + ", ".join(repr(a) for a in args)
    if tp in _WORDS:
        return _WORDS[tp][0]
    if tp in (tuple, list) or origin in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis:
            item = args[0]
            return f"a list of {_WORDS[item][1] if item in _WORDS else _describe(item)}"
        if args:
            return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
        return "a list"
    return getattr(tp, "__name__", str(tp))
