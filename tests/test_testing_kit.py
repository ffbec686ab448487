"""The conformance kit itself: statuses, known failures, pytest ids, small mode, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrbench.cli import main
from cxrbench.plugins import registry
from cxrbench.plugins.conformance import (
    CHECKS,
    CHECKS_BY_NAME,
    CheckResult,
    check_plugin,
    format_results,
    make_check_data,
    parametrize_with_checks,
    resolve_plugin,
)
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin

CARD = dict(family="baseline", framework="numpy", description="kit test plugin",
            input_size=24, channels=1, requires=("numpy",), reference="tests")


class Good(Plugin):
    card = ModelCard(name="kit_good", **CARD)

    def __init__(self, *, epochs: int = 50, input_size: int = 24, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.epochs = epochs
        self.input_size = input_size

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.seen_size_ = int(train.images.shape[1])
        self.centre_ = float(np.mean(train.images))
        self.fit_info_ = {"epochs": self.epochs, "size": self.seen_size_}

    def _predict(self, images: ImageSet) -> np.ndarray:
        means = np.asarray(images.images, dtype=np.float64).mean(axis=(1, 2, 3))
        return 1.0 / (1.0 + np.exp(-(means - self.centre_) / 5.0))


class NaNKnown(Good):
    """Broken, but honest about it."""

    card = ModelCard(name="kit_nan_known",
                     **{**CARD, "known_failures": {"check_predict_proba": "NaN for now, #12"}})

    def _predict(self, images: ImageSet) -> np.ndarray:
        return np.full(len(images), np.nan)


class StaleKnownFailure(Good):
    card = ModelCard(name="kit_stale",
                     **{**CARD, "known_failures": {"check_pickle_round_trip": "fixed long ago"}})


class NotPicklable(Good):
    card = ModelCard(name="kit_no_pickle", **{**CARD, "picklable": False})


class Random(Good):
    card = ModelCard(name="kit_random", **{**CARD, "deterministic": False})

    def _predict(self, images: ImageSet) -> np.ndarray:
        return np.random.default_rng().uniform(0, 1, len(images))


class CustomCheckParams(Good):
    card = ModelCard(name="kit_custom", **CARD)
    check_params = {"epochs": 3}


@pytest.fixture
def registered(monkeypatch):
    """Temporarily register kit test plugins (the global registry is left as it was)."""
    registry._ensure_loaded()
    for cls in (Good, NaNKnown, Random):
        monkeypatch.setitem(registry._registry, cls.card.name, cls)
        monkeypatch.setitem(registry._sources, cls.card.name, f"{__name__}:{cls.__name__}")


def statuses(results: list[CheckResult]) -> dict[str, str]:
    return {r.check: r.status for r in results}


def test_every_check_has_a_readable_name_and_a_docstring():
    assert len(CHECKS) >= 8
    for check in CHECKS:
        assert check.__name__.startswith("check_")
        assert check.__doc__
    assert set(CHECKS_BY_NAME) >= {
        "check_card_complete", "check_init_stores_params", "check_params_round_trip",
        "check_predict_before_fit_raises", "check_predict_proba",
        "check_same_seed_same_output", "check_one_class_raises", "check_pickle_round_trip"}


def test_known_failure_is_xfail_with_its_reason():
    results = statuses(check_plugin(NaNKnown))
    assert results["check_predict_proba"] == "XFAIL"
    (r,) = check_plugin(NaNKnown, checks=["check_predict_proba"])
    assert "NaN for now, #12" in r.message and "non-finite" in r.message
    assert not r.failed


def test_known_failure_that_passes_is_xpass_and_says_to_remove_it():
    (r,) = check_plugin(StaleKnownFailure, checks=["check_pickle_round_trip"])
    assert r.status == "XPASS"
    assert "remove 'check_pickle_round_trip' from card.known_failures" in r.message


def test_unknown_check_in_known_failures_fails_the_card_check():
    class Typo(Good):
        card = ModelCard(name="kit_typo", **{**CARD, "known_failures": {"check_picle": "x"}})

    (r,) = check_plugin(Typo, checks=["check_card_complete"])
    assert r.status == "FAIL" and "unknown checks ['check_picle']" in r.message


def test_card_flags_turn_checks_into_skips():
    assert statuses(check_plugin(NotPicklable))["check_pickle_round_trip"] == "SKIP"
    results = statuses(check_plugin(Random))
    assert results["check_same_seed_same_output"] == "SKIP"
    assert results["check_predict_proba"] == "PASS"


def test_small_mode_and_fast_params():
    plugin = resolve_plugin(Good, input_size=16)
    assert plugin.get_params() == {"epochs": 1, "input_size": 16, "seed": 0}
    assert resolve_plugin(CustomCheckParams).epochs == 3
    instance = Good(epochs=7)
    assert resolve_plugin(instance) is instance  # an instance is checked as given
    results = check_plugin(Good, input_size=16)
    assert all(r.status == "PASS" for r in results), results


def test_checks_use_the_requested_image_size():
    from cxrbench.plugins.conformance import check_data_for

    assert check_data_for(Good(), 16).train.images.shape[1:] == (16, 16, 1)
    assert check_data_for(Good(input_size=20)).train.images.shape[1] == 20
    assert check_data_for(resolve_plugin("majority")).train.images.shape[1] == 32


def test_check_data_is_small_balanced_grouped_and_read_only():
    data = make_check_data(size=16)
    for split in (data.train, data.val, data.test):
        assert set(np.unique(split.labels)) == {0, 1}
        assert not split.images.flags.writeable
        assert len(np.unique(split.groups)) == len(split) // 2  # two images per patient
        for g in np.unique(split.groups):
            assert len(set(split.labels[split.groups == g])) == 1
    assert len(np.unique(data.train.content_hashes)) == len(data.train)


def test_format_results_shows_status_and_messages():
    results = check_plugin(NaNKnown)
    text = format_results(results)
    assert "kit_nan_known" in text and "XFAIL" in text and "NaN for now" in text
    assert text.splitlines()[-1].startswith(f"{len(results) - 1} pass, 1 xfail")


@parametrize_with_checks([Good, NaNKnown], input_size=16)
def test_parametrize_with_checks_runs_in_pytest(plugin, check):
    check(plugin)


def test_parametrize_ids_and_xfail_marks():
    mark = parametrize_with_checks([Good, NaNKnown])
    names, params = mark.args
    assert names == "plugin, check"
    ids = [p.id for p in params]
    assert "kit_good-check_predict_before_fit_raises" in ids
    assert len(ids) == 2 * len(CHECKS)
    xfails = {p.id: p.marks for p in params if p.marks}
    assert list(xfails) == ["kit_nan_known-check_predict_proba"]
    (xfail,) = xfails["kit_nan_known-check_predict_proba"]
    assert xfail.name == "xfail" and xfail.kwargs["reason"] == "NaN for now, #12"


def test_parametrize_accepts_names_and_per_plugin_marks():
    mark = parametrize_with_checks(["majority"], marks=lambda p: [pytest.mark.slow])
    _, params = mark.args
    assert all(m.name == "slow" for p in params for m in p.marks)
    assert params[0].id == "majority-check_card_complete"


# ------------------------------------------------------------------------------ the CLI verb
def test_cli_check_passes(registered, capsys):
    assert main(["check", "kit_good"]) == 0
    out = capsys.readouterr().out
    assert "kit_good" in out and "check_pickle_round_trip" in out and "PASS" in out
    assert "FAIL" not in out


def test_cli_check_shows_xfail_and_exits_zero(registered, capsys):
    assert main(["check", "kit_nan_known"]) == 0
    assert "XFAIL" in capsys.readouterr().out


def test_cli_check_exits_one_on_failure(registered, monkeypatch, capsys):
    class Broken(Good):
        card = ModelCard(name="kit_broken", **CARD)

        def _predict(self, images: ImageSet) -> np.ndarray:
            return np.full(len(images), 2.0)

    monkeypatch.setitem(registry._registry, "kit_broken", Broken)
    monkeypatch.setitem(registry._sources, "kit_broken", "tests:Broken")
    assert main(["check", "kit_broken", "kit_good"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "outside [0, 1]" in out


def test_cli_check_patterns_json_and_check_selection(registered, capsys):
    code = main(["check", "kit_g*,kit_random", "--checks", "check_predict_proba", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["plugin"], r["check"], r["status"]) for r in rows] == [
        ("kit_good", "check_predict_proba", "PASS"),
        ("kit_random", "check_predict_proba", "PASS")]


@pytest.mark.parametrize("argv, message", [
    (["check", "no_such_model"], "Unknown model 'no_such_model'"),
    (["check", "nothing_like_this_*"], "No model matches pattern"),
    (["check", "majority", "--checks", "check_nope"], "unknown check(s) ['check_nope']"),
])
def test_cli_check_usage_errors_exit_two(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
