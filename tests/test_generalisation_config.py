"""--save-models, --external and their suite keys: parsed once, checked before any work."""

from __future__ import annotations

import argparse

import pytest

from cxrbench.cli import build_parser, main
from cxrbench.cli.run import benchmark_arguments
from cxrbench.run.config import ConfigError, ExternalSpec, ModelSpec, RunConfig
from cxrbench.run.suites import SuiteError, load_suite

SUITE = """
seeds = [0]
save_models = true
[[models]]
name = "majority"
[[external]]
name = "hospital_b"
path = "sets/b"
[[external]]
name = "covid"
path = "/data/covid/manifest.csv"
"""


def test_suite_keys_are_parsed_and_relative_paths_follow_the_suite_file(tmp_path):
    path = tmp_path / "gen.toml"
    path.write_text(SUITE)
    suite = load_suite(str(path))
    assert suite.save_models is True
    assert [(e.name, str(e.path)) for e in suite.external] == [
        ("hospital_b", str(tmp_path / "sets" / "b")), ("covid", "/data/covid/manifest.csv")]


@pytest.mark.parametrize("text, problem", [
    ("save_models = 1", "save_models must be true or false, got 1"),
    ('[[external]]\nname = "b"\npath = "x"\ncolour = 1', "external[0]: unknown key(s) "
                                                         "['colour']"),
    ('[[external]]\nname = "b"', "external[0] needs a 'path'"),
    ('[[external]]\nname = "test"\npath = "x"', "external[0]: external name 'test' is the "
                                                "name of one of the run's own splits"),
    ('[[external]]\nname = "a b"\npath = "x"', "external[0]: external name 'a b' must be"),
    ('[[external]]\nname = "b"\npath = "x"\n[[external]]\nname = "b"\npath = "y"',
     "external: name(s) ['b'] given more than once"),
])
def test_bad_external_tables_are_named(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text + '\n[[models]]\nname = "majority"\n')
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_cli_flags_reach_the_run_config(tmp_path, synthetic_root):
    arguments = benchmark_arguments(_args("--data", str(synthetic_root), "--models", "majority",
                                          "--external", f"b={synthetic_root / 'test'}"))
    assert [e.name for e in arguments["external"]] == ["b"]
    config = RunConfig(data_path=synthetic_root, models=[ModelSpec("majority")], seeds=[0],
                       out_dir=tmp_path, external=arguments["external"])
    assert config.save_models is True  # --external implies it
    assert benchmark_arguments(_args("--data", str(synthetic_root), "--models", "majority",
                                     "--save-models"))["save_models"] is True
    with pytest.raises(ValueError, match="must look like NAME=PATH"):
        benchmark_arguments(_args("--data", str(synthetic_root), "--models", "majority",
                                  "--external", "nothing"))


def test_a_missing_external_path_stops_the_run_before_any_work(tmp_path, synthetic_root,
                                                               capsys):
    out = tmp_path / "out"
    assert main(["run", "--data", str(synthetic_root), "--models", "majority", "--external",
                 f"b={tmp_path / 'nowhere'}", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_duplicate_external_names_are_refused(tmp_path):
    spec = ExternalSpec("b", tmp_path)
    with pytest.raises(ConfigError, match=r"\['b'\] given more than once"):
        RunConfig(data_path=tmp_path, models=[ModelSpec("majority")], seeds=[0],
                  out_dir=tmp_path, external=[spec, ExternalSpec("b", tmp_path)])


def test_default_external_names(tmp_path):
    from cxrbench.run.evaluate import default_name

    (tmp_path / "covid").mkdir()
    (tmp_path / "covid" / "manifest.csv").write_text("path,label\n")
    (tmp_path / "hospital b").mkdir()
    assert default_name(tmp_path / "covid" / "manifest.csv") == "covid_manifest"
    assert default_name(tmp_path / "hospital b") == "hospital_b"
    assert default_name(tmp_path / "other" / "test") == "other_test"  # not the run's test
