"""The plugin conformance kit: does a plugin honour the contract in ``cxrbench.plugins.contract``?

Like scikit-learn's ``check_estimator``: each check is a plain function ``check_x(plugin, data)``
that raises ``AssertionError`` with a message saying what is wrong and what to do, or
``CheckSkipped`` when the card says the check does not apply (``picklable=False``,
``deterministic=False``). Run them all with :func:`check_plugin`, or in pytest::

    from cxrbench.plugins.conformance import parametrize_with_checks

    @parametrize_with_checks(["my_model"])
    def test_my_model(plugin, check):
        check(plugin)

Checks run on a tiny synthetic, learnable ImageSet (read-only arrays, like the harness's
memory-mapped cache) at the plugin's card size, or at ``input_size`` for speed (deep plugins:
e.g. 32 px). A plugin created by name or class gets its ``Plugin.check_params`` (e.g.
``{"epochs": 1}``), else ``epochs=1`` when it has an ``epochs`` parameter, and ``input_size``
when it has such a parameter and a size is asked for. A plugin declares checks it is known to
fail in ``card.known_failures = {check_name: reason}``: reported as XFAIL, never as FAIL.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import pickle
import re
import subprocess
import sys
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cxrbench.plugins.contract import (
    BUILTIN_FAMILIES,
    ImageSet,
    ModelCard,
    NotFittedError,
    Plugin,
    PluginError,
    clone,
)

Status = Literal["PASS", "FAIL", "XFAIL", "XPASS", "SKIP"]
FAST_PARAMS: dict[str, Any] = {"epochs": 1}  # applied to plugins that have these parameters
# Frameworks a plugin module must import lazily (inside fit), so that listing models is fast.
HEAVY_MODULES = ("tensorflow", "torch", "jax", "keras")


class CheckSkipped(Exception):
    """The check does not apply to this plugin (its card says so)."""


@dataclass(frozen=True)
class CheckResult:
    plugin: str
    check: str
    status: Status
    message: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


# ------------------------------------------------------------------------------ check data
@dataclass
class CheckData:
    """Train/val/test ImageSets for the checks, and a memo of one fitted plugin.

    Images are synthetic radiograph-like frames: a dark background, two lighter lung fields;
    "pneumonia" images add bright blotches (opacities) inside the lungs. Patients have two
    images each, so grouped cross-validation inside a plugin has real groups to respect.
    """

    train: ImageSet
    val: ImageSet
    test: ImageSet
    size: int
    channels: int
    _fitted: dict[str, Plugin] | None = None

    def fitted(self, plugin: Plugin) -> Plugin:
        """A fresh copy of ``plugin`` fitted on ``train`` (once per parameter set)."""
        key = f"{type(plugin).__module__}.{type(plugin).__qualname__}:{plugin.get_params()!r}"
        if self._fitted is None:
            self._fitted = {}
        if key not in self._fitted:
            if len(self._fitted) >= 2:  # keep memory flat when checking many plugins
                self._fitted.pop(next(iter(self._fitted)))
            self._fitted[key] = clone(plugin).fit(self.train, self.val)
        return self._fitted[key]


def _synthetic_images(n: int, size: int, channels: int, labels: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    lungs = (np.exp(-(((xx - 0.3) / 0.14) ** 2 + ((yy - 0.5) / 0.28) ** 2))
             + np.exp(-(((xx - 0.7) / 0.14) ** 2 + ((yy - 0.5) / 0.28) ** 2)))
    out = np.empty((n, size, size, channels), dtype=np.uint8)
    for i in range(n):
        img = 40 + 110 * lungs * rng.uniform(0.8, 1.2) + rng.normal(0, 8, (size, size))
        if labels[i]:
            for _ in range(3):
                cx, cy = rng.choice([0.3, 0.7]) + rng.normal(0, 0.05), rng.uniform(0.35, 0.65)
                blob = np.exp(-(((xx - cx) / 0.07) ** 2 + ((yy - cy) / 0.07) ** 2))
                img += 90 * blob
        out[i] = np.clip(img, 0, 255).astype(np.uint8)[..., None]
    return out


def make_check_data(size: int = 32, channels: int = 1, *, n_train: int = 40, n_val: int = 16,
                    n_test: int = 12, seed: int = 0) -> CheckData:
    """A tiny, balanced, learnable data set; arrays are read-only (like a memmap cache)."""
    rng = np.random.default_rng(seed)
    sets = []
    start = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        labels = np.arange(n) % 2  # balanced, alternating
        images = _synthetic_images(n, size, channels, labels, rng)
        images.setflags(write=False)
        ids = np.array([f"{split}/{'PNEUMONIA' if y else 'NORMAL'}/img{i}.png"
                        for i, y in enumerate(labels)])
        # Two images per patient, same label (the pairs are i, i + 2).
        patient = np.array([f"{split}-p{start + (i // 4) * 2 + (i % 2)}" for i in range(n)])
        hashes = np.array([hashlib.sha256(im.tobytes()).hexdigest() for im in images])
        sets.append(ImageSet(images, labels.astype(np.int8), ids, hashes, patient))
        start += n
    return CheckData(*sets, size=size, channels=channels)


@functools.lru_cache(maxsize=4)
def _cached_check_data(size: int, channels: int) -> CheckData:
    return make_check_data(size, channels)


def check_data_for(plugin: Plugin, input_size: int | None = None) -> CheckData:
    """The shared check data at the size a plugin will be checked at."""
    return _cached_check_data(image_size_for(plugin, input_size), plugin.card.channels)


def image_size_for(plugin: Plugin, input_size: int | None = None) -> int:
    """``input_size`` if given, else the plugin's ``input_size`` parameter, else its card's."""
    if input_size is not None:
        return int(input_size)
    own = plugin.get_params().get("input_size")
    return int(own) if own else int(plugin.card.input_size)


def resolve_plugin(plugin_or_name: Plugin | str | type[Plugin],
                   input_size: int | None = None) -> Plugin:
    """A plugin instance: created by registry name or class with the fast check parameters."""
    if isinstance(plugin_or_name, Plugin):
        return plugin_or_name
    if isinstance(plugin_or_name, str):
        from cxrbench.plugins.registry import get_model_class

        cls = get_model_class(plugin_or_name)
    elif isinstance(plugin_or_name, type) and issubclass(plugin_or_name, Plugin):
        cls = plugin_or_name
    else:
        raise TypeError(f"expected a Plugin, a Plugin class or a registered name, "
                        f"got {plugin_or_name!r}")
    names = set(cls.param_specs())
    params = dict(cls.check_params or {k: v for k, v in FAST_PARAMS.items() if k in names})
    if input_size is not None and "input_size" in names:
        params["input_size"] = int(input_size)
    return cls(**params)


def _name(plugin: Plugin) -> str:
    card = getattr(type(plugin), "card", None)
    return getattr(card, "name", type(plugin).__name__)


# ------------------------------------------------------------------------------ the checks
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_FAMILY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def check_card_complete(plugin: Plugin, data: CheckData) -> None:
    """The card says what the plugin is, what it needs and where it comes from."""
    card = getattr(type(plugin), "card", None)
    assert isinstance(card, ModelCard), (
        f"{type(plugin).__name__}.card must be a cxrbench.plugins.contract.ModelCard, got {card!r}")
    problems = []
    if not isinstance(card.name, str) or not _NAME_RE.match(card.name):
        problems.append(f"name {card.name!r} must be lower-case letters, digits, '_', '.', '-'")
    if not isinstance(card.family, str) or not _FAMILY_RE.match(card.family):
        problems.append(f"family {card.family!r} must be a lower-case identifier, e.g. one of "
                        f"the built-in {sorted(BUILTIN_FAMILIES)}")
    if not isinstance(card.accelerator, bool):
        problems.append(f"accelerator must be True or False, got {card.accelerator!r}")
    for attr in ("framework", "description", "reference"):
        if not str(getattr(card, attr) or "").strip():
            problems.append(f"{attr} is empty")
    if not (isinstance(card.input_size, int) and card.input_size >= 8):
        problems.append(f"input_size must be an int >= 8 (pixels), got {card.input_size!r}")
    if card.channels not in (1, 3):
        problems.append(f"channels must be 1 or 3, got {card.channels!r}")
    if not isinstance(card.requires, tuple) or not all(
            isinstance(r, str) and r for r in card.requires):
        problems.append(f"requires must be a tuple of module names, got {card.requires!r}")
    else:
        import importlib.util

        missing = [r for r in card.requires if importlib.util.find_spec(r) is None]
        if missing:
            problems.append(f"requires names modules that are not importable: {missing}")
    unknown = set(card.known_failures) - set(CHECKS_BY_NAME)
    if unknown:
        problems.append(f"known_failures names unknown checks {sorted(unknown)}; "
                        f"valid: {sorted(CHECKS_BY_NAME)}")
    assert not problems, f"{card.name}: incomplete ModelCard: " + "; ".join(problems)


def check_init_stores_params(plugin: Plugin, data: CheckData) -> None:
    """``__init__`` takes keyword-only hyperparameters with defaults, and only stores them."""
    cls, name = type(plugin), _name(plugin)
    signature = inspect.signature(cls.__init__)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    bad_kind = [p.name for p in params if p.kind is not p.KEYWORD_ONLY]
    assert not bad_kind, (f"{name}: __init__ parameters {bad_kind} must be keyword-only "
                          "(put them after '*')")
    no_default = [p.name for p in params if p.default is p.empty]
    assert not no_default, f"{name}: __init__ parameters {no_default} need default values"
    assert "seed" in signature.parameters, f"{name}: __init__ must take `seed: int = 0`"
    given = plugin.get_params()
    instance = cls(**given)
    attrs = vars(instance)
    extra = sorted(set(attrs) - set(given))
    assert not extra, (f"{name}: __init__ sets attributes {extra} that are not parameters; "
                       "__init__ must only store its arguments (compute things in fit, and "
                       "name fitted state with a trailing '_')")
    changed = [k for k, v in given.items() if k not in attrs or attrs[k] is not v]
    assert not changed, (f"{name}: __init__ must store each argument unchanged as an attribute "
                         f"of the same name; these were altered or not stored: {changed} "
                         "(validate and convert in fit instead)")


def check_params_round_trip(plugin: Plugin, data: CheckData) -> None:
    """``type(p)(**p.get_params())`` rebuilds the same parameters; set_params works."""
    name = _name(plugin)
    params = plugin.get_params()
    rebuilt = type(plugin)(**params).get_params()
    assert _equal(rebuilt, params), (f"{name}: get_params -> new instance -> get_params "
                                     f"changed the parameters: {params!r} -> {rebuilt!r}")
    copy = clone(plugin).set_params(seed=12345)
    assert copy.get_params()["seed"] == 12345, f"{name}: set_params(seed=...) had no effect"
    try:
        clone(plugin).set_params(no_such_parameter_xyz=1)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{name}: set_params accepted an unknown parameter; it must "
                             "raise ValueError")
    json_params = {k: v for k, v in params.items() if not _jsonable(v)}
    assert not json_params, (f"{name}: parameters must be JSON-serialisable (they go into the "
                             f"results file); these are not: {sorted(json_params)}")


def check_predict_before_fit_raises(plugin: Plugin, data: CheckData) -> None:
    """predict_proba on an unfitted plugin raises NotFittedError naming the plugin."""
    name = _name(plugin)
    try:
        clone(plugin).predict_proba(data.test.without_labels())
    except NotFittedError as err:
        message = str(err)
        assert name in message and "fit" in message, (
            f"{name}: the NotFittedError message should name the plugin and say to call fit; "
            f"got {message!r}")
    except Exception as err:
        raise AssertionError(f"{name}: predict_proba before fit raised {type(err).__name__}: "
                             f"{err}; expected cxrbench.plugins.contract.NotFittedError") from err
    else:
        raise AssertionError(f"{name}: predict_proba before fit returned a value; it must raise "
                             "NotFittedError (do not override Plugin.predict_proba)")


def check_predict_proba(plugin: Plugin, data: CheckData) -> None:
    """One finite probability in [0, 1] per image, for a batch and for a single image."""
    name = _name(plugin)
    fitted = data.fitted(plugin)
    for images in (data.test.without_labels(), data.test.subset(np.array([3])).without_labels()):
        n = len(images)
        proba = fitted.predict_proba(images)
        _assert_probabilities(name, proba, n)


def _assert_probabilities(name: str, proba: Any, n: int) -> np.ndarray:
    proba = np.asarray(proba)
    assert proba.shape == (n,), (
        f"{name}: predict_proba returned shape {proba.shape} for {n} images; it must return "
        f"one probability of pneumonia per image, shape ({n},) (from a 2-column "
        "predict_proba, take column 1)")
    assert np.issubdtype(proba.dtype, np.floating), (
        f"{name}: predict_proba returned dtype {proba.dtype}; return float probabilities")
    bad = ~np.isfinite(proba)
    assert not bad.any(), (
        f"{name}: predict_proba returned {int(bad.sum())} non-finite values (NaN or inf) of {n}, "
        f"first at index {int(np.flatnonzero(bad)[0])}; probabilities must be finite")
    outside = (proba < 0) | (proba > 1)
    assert not outside.any(), (
        f"{name}: predict_proba returned {int(outside.sum())} values outside [0, 1] "
        f"(min {proba.min():.4g}, max {proba.max():.4g}); return probabilities, not scores "
        "(apply a sigmoid or calibrate)")
    return proba


def check_same_seed_same_output(plugin: Plugin, data: CheckData) -> None:
    """Two fits with the same seed give the same probabilities (atol 1e-6)."""
    name = _name(plugin)
    if not plugin.card.deterministic:
        raise CheckSkipped("card.deterministic=False")
    test = data.test.without_labels()
    first = data.fitted(plugin).predict_proba(test)
    second = clone(plugin).fit(data.train, data.val).predict_proba(test)
    diff = _max_difference(first, second)
    assert diff <= 1e-6, (
        f"{name}: two fits with seed={plugin.seed} gave different probabilities (max difference "
        f"{diff:.3g}); seed every source of randomness from self.seed (numpy Generator, "
        "random_state=..., keras.utils.set_random_seed), or declare deterministic=False in "
        "the card")


def check_one_class_raises(plugin: Plugin, data: CheckData) -> None:
    """The contract's ``fit`` guards training: it is not overridden, and training data with a
    single class (either one) or without labels is refused with a PluginError naming the plugin.
    ``predict_proba`` (the not-fitted guard, one float per image) is not overridden either."""
    name = _name(plugin)
    overridden = [method for method in ("fit", "predict_proba")
                  if getattr(type(plugin), method) is not getattr(Plugin, method)]
    assert not overridden, (
        f"{name}: overrides Plugin.{' and Plugin.'.join(overridden)}; these are the contract's "
        "template methods (they refuse unusable training data, record fit_info_, refuse to "
        "predict before fit and shape the output): implement _fit and _predict instead")
    labels = np.asarray(data.train.labels)
    attempts = [(f"only class {c}", data.train.subset(np.flatnonzero(labels == c)), "class")
                for c in (0, 1)]
    attempts.append(("no labels", data.train.without_labels(), "label"))
    for what, train, word in attempts:
        try:
            clone(plugin).fit(train, data.val)
        except PluginError as err:
            message = str(err)
            assert name in message and word in message.lower(), (
                f"{name}: fitting on training data with {what} raised PluginError({message!r}); "
                f"the message should name the plugin and say what is wrong with the {word}s")
        except Exception as err:
            raise AssertionError(
                f"{name}: fitting on training data with {what} raised {type(err).__name__}: "
                f"{err}; expected cxrbench.plugins.contract.PluginError") from err
        else:
            raise AssertionError(f"{name}: fit accepted training data with {what}; it must "
                                 "raise PluginError")


def check_import_without_frameworks(plugin: Plugin, data: CheckData) -> None:
    """Importing the plugin's module in a fresh interpreter imports no deep-learning framework
    (TensorFlow, PyTorch, JAX, Keras): import them inside fit, so listing models stays fast."""
    name, module = _name(plugin), type(plugin).__module__
    if module == "__main__":
        raise CheckSkipped("defined in __main__, which another interpreter cannot import")
    returncode, output = _import_in_fresh_interpreter(module)
    assert returncode == 0, (
        f"{name}: importing its module {module!r} in a fresh interpreter failed: {output}; job "
        "processes and Dask workers import plugins that way")
    heavy = json.loads(output)
    assert not heavy, (
        f"{name}: importing its module {module!r} imports {', '.join(heavy)}; import "
        "deep-learning frameworks inside methods (fit, _build), not at module level")


@functools.lru_cache(maxsize=64)
def _import_in_fresh_interpreter(module: str) -> tuple[int, str]:
    """(exit code, JSON list of heavy modules loaded, or the error) for ``import module``."""
    code = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
            f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))")
    # The child finds modules where this process does (e.g. a test folder pytest put first).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run([sys.executable, "-c", code, module], capture_output=True,
                              text=True, env=env, timeout=180)
    except subprocess.TimeoutExpired:
        return 1, "it took more than 180 s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return done.returncode, lines[-1] if lines else f"exit code {done.returncode}"
    return 0, done.stdout.strip().splitlines()[-1]


def check_pickle_round_trip(plugin: Plugin, data: CheckData) -> None:
    """A fitted plugin survives pickle and predicts the same (or its card says it cannot)."""
    name = _name(plugin)
    if not plugin.card.picklable:
        raise CheckSkipped("card.picklable=False")
    fitted = data.fitted(plugin)
    test = data.test.without_labels()
    before = fitted.predict_proba(test)
    # Nondeterministic prediction is check_same_seed_same_output's business, not this one's.
    repeatable = _max_difference(before, fitted.predict_proba(test)) <= 1e-6
    try:
        restored = pickle.loads(pickle.dumps(fitted))
    except Exception as err:
        raise AssertionError(
            f"{name}: a fitted plugin cannot be pickled ({type(err).__name__}: {err}); keep "
            "fitted state picklable (define __getstate__/__setstate__ to serialise framework "
            "objects), or declare picklable=False in the card") from err
    after = restored.predict_proba(test)
    diff = _max_difference(before, after) if repeatable else 0.0
    assert diff <= 1e-6, (f"{name}: the unpickled plugin predicts differently (max difference "
                          f"{diff:.3g}); some fitted state is lost in pickling")


def check_fit_info_is_json(plugin: Plugin, data: CheckData) -> None:
    """``fit_info_`` is a JSON-serialisable dict (the harness copies it into the results)."""
    name = _name(plugin)
    info = getattr(data.fitted(plugin), "fit_info_", None)
    assert isinstance(info, dict), f"{name}: fit_info_ must be a dict after fit, got {info!r}"
    try:
        json.dumps(info, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"{name}: fit_info_ is not JSON-serialisable ({err}); convert numpy "
                             "values with float()/int()/.tolist()") from err


PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _saved(plugin: Plugin, data: CheckData, folder: Any) -> tuple[Plugin, Any]:
    """The fitted plugin and the model folder it was saved to (under ``folder``)."""
    from pathlib import Path

    from cxrbench.plugins.artifacts import save_model

    fitted = data.fitted(plugin)
    directory = Path(folder) / "model"
    try:
        save_model(fitted, directory, input_size=data.size, channels=data.channels,
                   threshold=0.5, threshold_rule="fixed:0.5")
    except Exception as err:
        raise AssertionError(
            f"{_name(plugin)}: a fitted plugin cannot be saved ({type(err).__name__}: {err}); "
            "keep fitted state in numpy arrays and plain values, or implement _save/_load with "
            "the safe formats of cxrbench.plugins.persistence") from err
    return fitted, directory


def check_save_load_round_trip(plugin: Plugin, data: CheckData) -> None:
    """Saved (``save_model``) and loaded (``load_model``), a fitted plugin predicts the same
    probabilities (to 1e-6), and none of its files is a pickle."""
    import tempfile

    from cxrbench.plugins.artifacts import MODEL_FILE, load_model

    name = _name(plugin)
    with tempfile.TemporaryDirectory() as tmp:
        fitted, directory = _saved(plugin, data, tmp)
        test = data.test.without_labels()
        before = fitted.predict_proba(test)
        repeatable = _max_difference(before, fitted.predict_proba(test)) <= 1e-6
        for path in sorted(directory.rglob("*")):
            if path.is_file() and path.name != MODEL_FILE:
                with open(path, "rb") as handle:
                    head = handle.read(2)
                assert head not in PICKLE_MAGIC, (
                    f"{name}: its save writes a pickle ({path.name}); pickles execute code when "
                    "loaded: use numpy arrays, JSON, skops, XGBoost JSON/UBJ or Keras .keras")
        try:
            restored = load_model(directory, factory=lambda info: clone(fitted)).plugin
        except Exception as err:
            raise AssertionError(f"{name}: a saved model cannot be loaded back "
                                 f"({type(err).__name__}: {err})") from err
        after = restored.predict_proba(test)
    diff = _max_difference(before, after) if repeatable else 0.0
    assert diff <= 1e-6, (f"{name}: the loaded model predicts differently (max difference "
                          f"{diff:.3g}); some fitted state is not saved by _save/_load")


def check_tampered_model_refused(plugin: Plugin, data: CheckData) -> None:
    """A saved model with one byte of one file changed is refused when loaded."""
    import tempfile

    from cxrbench.plugins.artifacts import MODEL_FILE, load_model
    from cxrbench.plugins.persistence import ArtifactError

    name = _name(plugin)
    with tempfile.TemporaryDirectory() as tmp:
        fitted, directory = _saved(plugin, data, tmp)
        files = [p for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MODEL_FILE]
        assert files, f"{name}: its save wrote no file besides {MODEL_FILE}"
        for path in files:
            original = path.read_bytes()
            tampered = bytearray(original or b"\0")
            tampered[len(tampered) // 2] ^= 0x01
            path.write_bytes(bytes(tampered))
            try:
                load_model(directory, factory=lambda info: clone(fitted))
            except ArtifactError:
                pass
            else:
                raise AssertionError(f"{name}: a model whose {path.name} was modified loaded "
                                     "without complaint; every file must be listed (with its "
                                     "sha256) in model.json")
            finally:
                path.write_bytes(original)


CHECKS: tuple[Callable[[Plugin, CheckData], None], ...] = (
    check_card_complete,
    check_import_without_frameworks,
    check_init_stores_params,
    check_params_round_trip,
    check_predict_before_fit_raises,
    check_predict_proba,
    check_same_seed_same_output,
    check_one_class_raises,
    check_pickle_round_trip,
    check_save_load_round_trip,
    check_tampered_model_refused,
    check_fit_info_is_json,
)
CHECKS_BY_NAME = {check.__name__: check for check in CHECKS}


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference; NaN in the same place counts as equal, a shape change as inf
    (whether outputs are valid probabilities is check_predict_proba's business)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    same_nan = np.isnan(a) & np.isnan(b)
    diff = np.abs(np.where(same_nan, 0.0, a - b))
    return float(np.nan_to_num(diff, nan=math.inf).max()) if diff.size else 0.0


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except ValueError:  # numpy arrays
        return pickle.dumps(a) == pickle.dumps(b)


# ------------------------------------------------------------------------------ running
def run_check(check: Callable[[Plugin, CheckData], None], plugin: Plugin,
              data: CheckData | None = None, input_size: int | None = None) -> CheckResult:
    """Run one check; known failures from the card become XFAIL (or XPASS)."""
    name = _name(plugin)
    known = dict(getattr(getattr(type(plugin), "card", None), "known_failures", {}) or {})
    reason = known.get(check.__name__)
    start = time.perf_counter()
    try:
        check(plugin, data or check_data_for(plugin, input_size))
    except CheckSkipped as skip:
        return CheckResult(name, check.__name__, "SKIP", str(skip), time.perf_counter() - start)
    except Exception as err:  # an AssertionError, or the plugin crashed inside the check
        message = str(err) if isinstance(err, AssertionError) else (
            f"{name}: {type(err).__name__}: {err}")
        status: Status = "XFAIL" if reason else "FAIL"
        if reason:
            message = f"known failure: {reason} ({message})"
        return CheckResult(name, check.__name__, status, message, time.perf_counter() - start)
    if reason:
        return CheckResult(name, check.__name__, "XPASS",
                           f"declared known failure now passes: remove {check.__name__!r} from "
                           f"card.known_failures ({reason})", time.perf_counter() - start)
    return CheckResult(name, check.__name__, "PASS", "", time.perf_counter() - start)


def check_plugin(plugin_or_name: Plugin | str | type[Plugin], *, input_size: int | None = None,
                 checks: Sequence[str] | None = None) -> list[CheckResult]:
    """Run every conformance check (or those named in ``checks``) on one plugin."""
    plugin = resolve_plugin(plugin_or_name, input_size)
    selected = list(CHECKS) if checks is None else [CHECKS_BY_NAME[c] for c in checks]
    data = check_data_for(plugin, input_size)
    data = CheckData(data.train, data.val, data.test, data.size, data.channels)  # own memo
    return [run_check(check, plugin, data) for check in selected]


def _pytest_check(check: Callable[[Plugin, CheckData], None],
                  input_size: int | None) -> Callable[[Plugin], None]:
    def run(plugin: Plugin) -> None:
        import pytest

        data = check_data_for(plugin, input_size)
        try:
            check(plugin, data)
        except CheckSkipped as skip:
            pytest.skip(str(skip))

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


def parametrize_with_checks(
    plugins_or_names: Iterable[Plugin | str | type[Plugin]], *,
    input_size: int | Callable[[Plugin], int | None] | None = None,
    marks: Callable[[Plugin], Sequence[Any]] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize("plugin, check", ...)`` over plugins x checks.

    Test ids read ``hog_svm-check_predict_before_fit_raises``; a check listed in
    ``card.known_failures`` is marked xfail with its reason. ``input_size`` (or a function of
    the plugin giving it) checks on smaller images; ``marks`` adds marks per plugin (e.g.
    ``pytest.mark.slow`` for deep ones).
    """
    import pytest

    params = []
    for item in plugins_or_names:
        size = input_size
        if callable(size):
            size = size(resolve_plugin(item))
        plugin = resolve_plugin(item, size)
        extra = list(marks(plugin)) if marks else []
        known = plugin.card.known_failures
        for check in CHECKS:
            item_marks = list(extra)
            if check.__name__ in known:
                item_marks.append(pytest.mark.xfail(reason=known[check.__name__], strict=False))
            params.append(pytest.param(plugin, _pytest_check(check, size), marks=item_marks,
                                       id=f"{_name(plugin)}-{check.__name__}"))
    return pytest.mark.parametrize("plugin, check", params)


def format_results(results: Sequence[CheckResult], width: int = 100) -> str:
    """A plain-text table: plugin, check, status, seconds, message (wrapped)."""
    import textwrap

    if not results:
        return "no checks run"
    w_plugin = max(6, *(len(r.plugin) for r in results))
    w_check = max(5, *(len(r.check) for r in results))
    head = f"{'plugin':<{w_plugin}}  {'check':<{w_check}}  status  seconds"
    lines = [head, "-" * len(head)]
    indent = " " * 4
    for r in results:
        lines.append(f"{r.plugin:<{w_plugin}}  {r.check:<{w_check}}  {r.status:<6}  "
                     f"{r.seconds:7.2f}")
        if r.message and r.status != "PASS":
            lines.extend(textwrap.wrap(r.message, width=max(40, width), initial_indent=indent,
                                       subsequent_indent=indent))
    counts = {s: sum(r.status == s for r in results) for s in typing.get_args(Status)}
    lines.append(", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
                 + f" ({math.fsum(r.seconds for r in results):.1f} s)")
    return "\n".join(lines)


__all__ = [
    "CHECKS", "CHECKS_BY_NAME", "CheckData", "CheckResult", "CheckSkipped", "FAST_PARAMS",
    "check_plugin", "format_results", "make_check_data", "parametrize_with_checks",
    "resolve_plugin", "run_check",
] + [f.__name__ for f in CHECKS]
