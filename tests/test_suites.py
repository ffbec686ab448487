"""Suite files: validated when loaded, every problem named at once, values typed."""

from __future__ import annotations

import pytest

from cxrbench.cli import main
from cxrbench.plugins.registry import get_card
from cxrbench.run.suites import SuiteError, builtin_suites, load_suite
from cxrbench.scoring.thresholds import ThresholdRule


@pytest.mark.parametrize("name", builtin_suites())
def test_builtin_suites_load_with_typed_values(name):
    suite = load_suite(name)
    assert suite.models and all(get_card(m.name) for m in suite.models)
    assert suite.threshold_rule is None or isinstance(suite.threshold_rule, ThresholdRule)
    assert len(set(suite.seeds)) == len(suite.seeds) and min(suite.seeds) >= 0


BAD_SUITE = """
description = "broken on purpose"
seeds = [0, 0]
threshold_rule = "fixed:1.5"
timeout_s = inf
colour = "blue"

[[models]]
name = "hog_svn"

[[models]]
name = "majority"
params = 3
timeout_s = -1

[[models]]
params = { C = 1 }
"""


def test_a_bad_suite_names_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_SUITE)
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    problems = info.value.problems
    expected = [
        "unknown key(s) ['colour']",
        "models[0] (hog_svn): Unknown model 'hog_svn'. Did you mean: hog_svm",
        "models[1] (majority): params must be a table",
        "models[1] (majority): timeout_s must be a number of seconds",
        "models[2] needs a 'name'",
        "seeds: seed(s) [0] given more than once",
        "threshold_rule: threshold rule 'fixed:1.5': the fixed rule's value must lie in [0, 1]",
        "timeout_s must be a number of seconds in (0, 2592000] (30 days), got inf",
    ]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), (problem, start)
    assert str(info.value).startswith(f"suite bad has {len(expected)} problems:")


def test_cli_refuses_a_bad_suite_before_reading_data(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_SUITE)
    out = tmp_path / "out"
    assert main(["run", "--data", str(tmp_path / "no-data"), "--suite", str(path),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "suite bad has 8 problems" in err and "Traceback" not in err
    assert not out.exists()


def test_empty_seeds_and_no_models_are_named(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("seeds = []\n")
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert info.value.problems == ["no [[models]] entries: name at least one model",
                                   "seeds is empty: give at least one seed, e.g. [0]"]
