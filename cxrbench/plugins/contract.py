"""The plugin contract: what a model must provide to be benchmarked.

A plugin is a class with a ``card`` (metadata, readable without importing heavy frameworks),
keyword hyperparameters (declared once as annotated class attributes, or taken by a hand-written
``__init__`` that only stores them) and a seed, ``fit(train, val)`` and ``predict_proba(images)``.
The harness, never the plugin, computes metrics and timings. :func:`validate_params` checks
hyperparameters against their declared types and ranges; :func:`clone` is an unfitted copy.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from cxrbench.plugins.params import (
    SPEC_KEY,
    ParameterError,
    ParamSpec,
    param,
    resolve_annotation,
    unknown_parameter,
    validate,
)
from cxrbench.plugins.persistence import load_plain_state, save_plain_state
from cxrbench.plugins.preprocessing import (
    INTENSITY_METHODS,
    Preprocessing,
    derived_hashes,
    fit_reference,
    transform_images,
)

# A plugin's family is an open, lower-case name: third-party plugins may bring their own. The
# built-in families, which the report groups and colours by:
BUILTIN_FAMILIES: dict[str, str] = {
    "baseline": "floors every model must beat (e.g. the majority class)",
    "classical": "hand-crafted image features + a classical learner (SVM, boosted trees, ...)",
    "mlp": "multilayer perceptrons, on pixels or on features",
    "cnn": "convolutional networks trained from scratch",
    "transfer": "ImageNet backbones with a new head, fine-tuned",
    "probe": "frozen ImageNet backbone features (cached) + a classical head",
    "ensemble": "averages of other plugins' calibrated probabilities",
}
Family = str


@dataclass(frozen=True)
class ModelCard:
    """Metadata about a plugin, filterable without loading any weights.

    ``family`` is one of :data:`BUILTIN_FAMILIES` or a lower-case name of the plugin's own.
    ``input_size`` and ``channels`` tell the harness which decoded images (square, uint8) to hand
    the plugin; ``requires`` names the importable modules it needs (the conformance kit checks
    they import). ``accelerator`` says the plugin benefits from a GPU (the Dask executor sends
    such jobs to workers that have one). ``known_failures`` maps a conformance-check name to the
    reason it is expected to fail.
    """

    name: str
    family: Family
    framework: str
    description: str
    input_size: int = 128
    channels: Literal[1, 3] = 1
    requires: tuple[str, ...] = ()
    deterministic: bool = True
    picklable: bool = True
    reference: str = ""
    known_failures: dict[str, str] = field(default_factory=dict)
    accelerator: bool = False


@dataclass(frozen=True)
class ImageSet:
    """Images handed to a plugin: a read-only view, never a copy the plugin must own.

    ``images`` is ``(n, size, size, channels)`` uint8, often a memory-mapped cache array, so
    plugins must stream over it in batches instead of converting all of it to float at once.
    ``labels`` are 0 (normal) / 1 (pneumonia), or None for images whose labels are withheld.
    ``content_hashes`` identify each image's file content (keys for feature caches);
    ``groups`` are patient ids, for grouped cross-validation inside a plugin. ``cache_dir`` is
    the cxrbench cache folder the run uses (feature caches of these images go under it); None
    means the default folder (``cxrbench.data.default_cache_dir()``).
    """

    images: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray
    content_hashes: np.ndarray
    groups: np.ndarray
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4:
            raise ValueError(f"images must be (n, h, w, c), got shape {self.images.shape}")
        for name in ("ids", "content_hashes", "groups"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} images")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"labels has {len(self.labels)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def without_labels(self) -> ImageSet:
        """The same images with labels withheld (what ``predict_proba`` receives)."""
        return replace(self, labels=None)

    def subset(self, index: np.ndarray) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        return replace(self, images=self.images[index], labels=labels, ids=self.ids[index],
                       content_hashes=self.content_hashes[index], groups=self.groups[index])


class NotFittedError(RuntimeError):
    """``predict_proba`` was called before ``fit``."""


class PluginError(ValueError):
    """A plugin was given input it cannot work with (e.g. one class only)."""



# Marks an __init__ generated from declared parameters (not written by hand).
_DECLARED = "__cxrbench_declared__"
_SPECS = "__cxrbench_param_specs__"  # each class's own cache of param_specs()


@dataclass(kw_only=True, eq=False, repr=False)
class Plugin:
    """Base class for plugins. Subclasses set ``card`` and implement ``_fit``/``_predict``.

    Hyperparameters are declared once, as annotated class attributes, and every subclass
    inherits them (a keyword-only dataclass ``__init__`` is generated that only stores them)::

        class MyNet(KerasPlugin):
            card = ModelCard(...)
            width: int = param(24, low=1)     # a new parameter, with its range
            epochs = 14                       # a new default; type and range are inherited

    ``param(default, low=, high=, choices=)`` declares a range or allowed values;
    :meth:`param_specs` lists every parameter with its type, default and range. A plugin may
    instead write ``__init__`` by hand (scikit-learn convention: keyword-only arguments with
    defaults, stored unchanged under their own names, ``super().__init__(seed=seed)``); its
    signature then lists the parameters, with their annotations as types and no ranges.

    Either way ``type(p)(**p.get_params())`` rebuilds an identical unfitted plugin (see
    :func:`clone`). Fitted state ends in ``_``. ``fit_info_`` is a JSON-serialisable dict the
    harness copies into the results (chosen hyperparameters, history, weights hash, size).
    """

    card: ClassVar[ModelCard]
    # Parameters the conformance kit creates this plugin with, to keep its checks fast on tiny
    # data (e.g. {"epochs": 1}); empty: the kit's own FAST_PARAMS where they apply.
    check_params: ClassVar[dict[str, Any]] = {}

    seed: int = param(0, low=0)
    # Image standardisation before the plugin's own features or network (off by default; see
    # cxrbench.plugins.preprocessing): an intensity step and a thorax crop.
    intensity: str = param("none", choices=INTENSITY_METHODS)
    thorax_crop: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls) or not getattr(_inherited_init(cls), _DECLARED, False):
            return  # a hand-written __init__ (here or in a base) owns the parameter list
        _inherit_changed_defaults(cls)
        dataclass(kw_only=True, eq=False, repr=False)(cls)
        setattr(cls.__init__, _DECLARED, True)

    # --- parameters --------------------------------------------------------------------------
    @classmethod
    def param_specs(cls) -> dict[str, ParamSpec]:
        """Every hyperparameter: name -> :class:`ParamSpec` (type, default, low, high, choices)."""
        specs = vars(cls).get(_SPECS)
        if specs is None:
            specs = _declared_specs(cls) if declares_params(cls) else _signature_specs(cls)
            setattr(cls, _SPECS, types.MappingProxyType(specs))
        return dict(specs)

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_specs()}

    def set_params(self, **params: Any) -> Plugin:
        """Set parameters (unchecked, as scikit-learn does); an unknown name is an error."""
        specs = self.param_specs()
        for key in params:
            if key not in specs:
                raise unknown_parameter(_model_name(type(self)), key, specs)
        for key, value in params.items():
            setattr(self, key, value)
        return self

    # --- the contract: template methods, not to be overridden --------------------------------
    def fit(self, train: ImageSet, val: ImageSet) -> Plugin:
        """Fit on ``train``; ``val`` may be used for early stopping, never ``test``."""
        if train.labels is None:
            raise PluginError(f"{self.card.name}: fit needs labelled training images")
        classes = np.unique(train.labels)
        if len(classes) < 2:
            raise PluginError(
                f"{self.card.name}: training data has only class {classes.tolist()}; "
                "a binary classifier needs both NORMAL and PNEUMONIA images"
            )
        self.fit_info_: dict[str, Any] = {}
        train, val, preprocessing = _standardise_fit(self, train, val)
        self._fit(train, val)
        if preprocessing:
            self.fit_info_["preprocessing"] = preprocessing
        self.is_fitted_ = True
        return self

    def predict_proba(self, images: ImageSet) -> np.ndarray:
        """Probability of pneumonia for each image, shape ``(n,)``, in [0, 1]."""
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                f"{self.card.name} is not fitted yet: call fit(train, val) before predict_proba"
            )
        images, _ = standardise_images(self, images)
        return np.asarray(self._predict(images), dtype=np.float64).reshape(-1)

    def save(self, directory: str | Path) -> list[Path]:
        """Write the fitted state into ``directory`` (created if needed) in formats that load
        without executing code; returns the files written. Parameters are not saved here:
        :func:`cxrbench.plugins.artifacts.save_model` records them (and every file's sha256)
        in ``model.json``."""
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(f"{self.card.name} is not fitted yet: nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return list(self._save(directory))

    def load(self, directory: str | Path) -> Plugin:
        """Restore fitted state written by :meth:`save` into this plugin, which must have been
        made with the same parameters. Verify the files first:
        :func:`cxrbench.plugins.artifacts.load_model` does, and is what users call."""
        self._load(Path(directory))
        self.is_fitted_ = True
        return self

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        raise NotImplementedError

    def _predict(self, images: ImageSet) -> np.ndarray:
        raise NotImplementedError

    def _save(self, directory: Path) -> list[Path]:
        """Default: fitted attributes that are numeric numpy arrays or plain JSON values
        (``state.json`` + ``arrays.npz``); override for framework objects (see
        :mod:`cxrbench.plugins.persistence`)."""
        return save_plain_state(self, directory)

    def _load(self, directory: Path) -> None:
        load_plain_state(self, directory)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


# --- image standardisation (the ``intensity`` and ``thorax_crop`` parameters) ---------------
# Functions, not methods: a plugin's own method names can never clash with them.
def _standardisation(plugin: Plugin) -> Preprocessing:
    # getattr: a hand-written __init__ may not have these parameters.
    return Preprocessing(intensity=getattr(plugin, "intensity", "none"),
                         thorax_crop=bool(getattr(plugin, "thorax_crop", False)))


def _standardise_fit(plugin: Plugin, train: ImageSet, val: ImageSet
                     ) -> tuple[ImageSet, ImageSet, dict[str, Any]]:
    """Fit the standardisation on ``train`` (its reference is the plugin's fitted state
    ``intensity_reference_``) and apply it to train and val; returns what
    ``fit_info_['preprocessing']`` records (nothing when it is off)."""
    spec = _standardisation(plugin)
    if not spec.active:
        return train, val, {}
    start = time.perf_counter()
    plugin.intensity_reference_ = fit_reference(spec, train.images)  # type: ignore[attr-defined]
    train, missed_train = standardise_images(plugin, train)
    val, missed_val = standardise_images(plugin, val)
    info: dict[str, Any] = {"intensity": spec.intensity, "thorax_crop": spec.thorax_crop,
                            "seconds": round(time.perf_counter() - start, 3)}
    if spec.thorax_crop:
        info["crop_fallback"] = {"train": missed_train, "val": missed_val}
    return train, val, info


def standardise_images(plugin: Plugin, images: ImageSet) -> tuple[ImageSet, int]:
    """``images`` as ``plugin`` sees them after its ``intensity`` / ``thorax_crop`` step (with
    content hashes of their own), and how many had no thorax box found; unchanged when off."""
    spec = _standardisation(plugin)
    if not spec.active:
        return images, 0
    reference = getattr(plugin, "intensity_reference_", None)
    pixels, missed = transform_images(spec, images.images, reference)
    hashes = derived_hashes(images.content_hashes, spec.digest(reference))
    return replace(images, images=pixels, content_hashes=hashes), missed


def _plugin_init(self: Plugin, *, seed: int = 0) -> None:
    """What a hand-written ``__init__`` calls (``super().__init__(seed=seed)``): stores the
    seed only, so that its own signature lists every parameter it stores. (Declared plugins get
    a generated ``__init__`` over every declared parameter, ``intensity`` and ``thorax_crop``
    included; a hand-written one can list those two to support them.)"""
    self.seed = seed


_plugin_init.__qualname__ = "Plugin.__init__"
Plugin.__init__ = _plugin_init  # type: ignore[method-assign]
setattr(Plugin.__init__, _DECLARED, True)


def clone(plugin: Plugin) -> Plugin:
    """An unfitted plugin with the same parameters (deep-copied), like scikit-learn's clone."""
    return type(plugin)(**copy.deepcopy(plugin.get_params()))


def validate_params(plugin_cls: type[Plugin], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against ``plugin_cls``'s declared parameters, converted JSON-ishly.

    Returns the given parameters only (defaults are not filled in), converted: an int for a
    float parameter becomes a float, a list for a tuple parameter a tuple. Raises
    :class:`ParameterError` (a ValueError) naming the model, the parameter, the value and what
    is allowed; for an unknown name it lists the valid ones, with close matches first.
    """
    init = inspect.signature(plugin_cls.__init__).parameters.values()
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in init)
    return validate(_model_name(plugin_cls), plugin_cls.param_specs(), params,
                    open_names=takes_kwargs)


def declares_params(cls: type) -> bool:
    """True when ``cls``'s parameters are declared (its ``__init__`` is generated from them),
    False when a hand-written ``__init__`` lists them."""
    return bool(getattr(cls.__init__, _DECLARED, False))


# ------------------------------------------------------------------------------ internals
def _model_name(cls: type) -> str:
    card = getattr(cls, "card", None)
    return getattr(card, "name", None) or cls.__name__


def _inherited_init(cls: type) -> Any:
    for base in cls.__mro__[1:]:
        if "__init__" in vars(base):
            return vars(base)["__init__"]
    return object.__init__




def _inherit_changed_defaults(cls: type) -> None:
    """``epochs = 14`` (or ``epochs: int = 14``) in a subclass changes an inherited parameter's
    default and keeps its type and range; ``param(...)`` restates the range too."""
    inherited = {f.name: f for f in dataclasses.fields(cls)}  # the base's, not processed yet
    own = vars(cls).get("__annotations__", {})
    parent_specs = None
    for name, inherited_field in inherited.items():
        if name not in vars(cls) or isinstance(vars(cls)[name], dataclasses.Field):
            continue
        value = vars(cls)[name]
        if isinstance(value, property | classmethod | staticmethod | types.FunctionType):
            raise TypeError(f"{cls.__name__}.{name} hides the hyperparameter {name!r} of a "
                            "base class; rename it")
        setattr(cls, name, dataclasses.field(default=value, metadata=inherited_field.metadata))
        if name not in own:
            if parent_specs is None:
                parent_specs = cls.__mro__[1].param_specs()  # type: ignore[attr-defined]
            cls.__annotations__[name] = parent_specs[name].type


def _declared_specs(cls: type) -> dict[str, ParamSpec]:
    specs = {}
    for f in dataclasses.fields(cls):
        owner = next(c for c in cls.__mro__ if f.name in vars(c).get("__annotations__", {}))
        type_ = resolve_annotation(f.type, owner.__module__, vars(owner))
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        specs[f.name] = ParamSpec.from_bounds(f.name, type_, default, f.metadata.get(SPEC_KEY))
    return specs


def _signature_specs(cls: type) -> dict[str, ParamSpec]:
    init = cls.__init__
    module = getattr(init, "__module__", None)
    specs = {}
    for p in inspect.signature(init).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        annotation = None if p.annotation is p.empty else p.annotation
        default = dataclasses.MISSING if p.default is p.empty else p.default
        if p.name == "seed":  # the contract's own parameter: its declaration applies
            specs[p.name] = dataclasses.replace(Plugin.param_specs()["seed"], default=default)
        else:
            specs[p.name] = ParamSpec(p.name, resolve_annotation(annotation, module), default)
    return specs


__all__ = [
    "BUILTIN_FAMILIES", "Family", "ImageSet", "ModelCard", "NotFittedError", "ParamSpec",
    "ParameterError", "Plugin", "PluginError", "clone", "declares_params", "param",
    "standardise_images", "validate_params",
]
