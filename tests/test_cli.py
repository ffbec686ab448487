import json
from pathlib import Path

import pytest

from cxrbench.cli import main


def test_models_json_lists_cards(capsys):
    assert main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert any(c["name"] == "majority" and c["source"].endswith(":Majority") for c in cards)


def test_unknown_model_is_exit_2_with_suggestion(synthetic_root, tmp_path, capsys):
    code = main(["run", "--data", str(synthetic_root), "--models", "majorityy",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "Did you mean: majority" in capsys.readouterr().err


def test_missing_data_path_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CXRBENCH_DATA", raising=False)
    assert main(["run", "--models", "majority", "--out", str(tmp_path / "o")]) == 2
    assert "CXRBENCH_DATA" in capsys.readouterr().err
    assert main(["run", "--data", str(tmp_path / "nope"), "--models", "majority",
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_run_then_report(synthetic_root, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--data", str(synthetic_root), "--models", "majority", "--seeds", "0",
                 "--executor", "inline", "--out", str(out)]) == 0
    target = tmp_path / "again.html"
    assert main(["report", str(out / "results.json"), "-o", str(target)]) == 0
    assert "majority" in target.read_text()


def test_data_audit_json(synthetic_root, capsys):
    assert main(["data", "audit", str(synthetic_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"]["NORMAL"] == 12
    assert report["cross_split_duplicate_groups"] == []


def test_param_override_and_bad_param(synthetic_root, tmp_path, capsys):
    argv = ["run", "--data", str(synthetic_root), "--models", "pixels_logreg", "--param",
            "pixels_logreg.pixels=16", "--executor", "inline", "--no-report",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    record = results["records"][0]
    assert record["params"] == {"pixels": 16} and record["status"] == "ok"
    assert record["job_id"].startswith("pixels_logreg[") and record["job_id"] != \
        "pixels_logreg[seed=0]"  # overridden params get their own job id
    assert results["run"]["command"] == ["cxrbench", *argv]  # the command line, as given
    code = main(["run", "--data", str(synthetic_root), "--models", "majority",
                 "--param", "other.x=1", "--out", str(tmp_path / "o2")])
    assert code == 2 and "not in this run" in capsys.readouterr().err


@pytest.mark.parametrize(("param", "message"), [
    ("hog_svm.cell_size=8", "hog_svm has no parameter 'cell_size'. Did you mean: cells? Valid "
                            "parameters: C, approx_components, cache_mb, cells, cv_folds, "
                            "exact_max_samples, gamma, intensity, kernels, seed, thorax_crop, "
                            "tune_samples"),
    ("pixels_logreg.pixels=3.7", "pixels_logreg: invalid value 3.7 for parameter 'pixels'; "
                                 "allowed: an integer"),
    ("pixels_logreg.C=abc", "--param 'pixels_logreg.C=abc': 'abc' is not a JSON value"),
    ("pixels_logreg.C=NaN", "NaN is not a JSON number"),
    ("majority.seed=3", "majority: seed is set by --seeds (or the suite's seeds), not as a "
                        "parameter"),
])
def test_bad_params_are_exit_2_before_the_data_is_read(tmp_path, capsys, param, message):
    model = param.partition(".")[0]
    code = main(["run", "--data", str(tmp_path / "no-data-here"), "--models", model,
                 "--param", param, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "does not exist" not in err and not (tmp_path / "o").exists()


def test_a_plugin_whose_modules_are_missing_is_exit_2_before_the_data_is_read(
        tmp_path, capsys, monkeypatch):
    """cnn_seed where Keras and TensorFlow are not installed (None in sys.modules marks a
    module that must not be imported): the run names what to install, before any work."""
    import sys

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    for module in ("keras", "tensorflow"):
        monkeypatch.setitem(sys.modules, module, None)
    code = main(["run", "--data", str(tmp_path / "no-data-here"), "--models",
                 "majority,cnn_seed", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert ("cnn_seed needs keras, tensorflow, not installed here. Install with: pip install "
            "'cxrbench[deep]'") in err
    assert "does not exist" not in err and not (tmp_path / "o").exists()


def test_param_examples_in_the_docs_name_real_parameters():
    """Every `--param` and suite `params` example in run --help, the README and the suite
    docs is valid for its plugin (the old `hog_svm.cell_size=8` was not)."""
    import re
    import tomllib

    from cxrbench.cli.run import EXAMPLES, parse_param_overrides
    from cxrbench.plugins.contract import validate_params
    from cxrbench.plugins.registry import get_model_class
    from cxrbench.run import suites

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    # Its code blocks and the examples of `--param`'s syntax; elsewhere (the bad-input table,
    # the validation paragraph) it quotes wrong values on purpose.
    blocks = re.findall(r"^```\w*\n(.*?)^```", readme, re.S | re.M)
    syntax = re.findall(r"VALUE is JSON, e\.g\.(.*?)\),", readme, re.S)
    assert syntax, "the README's --param syntax examples moved"
    texts = EXAMPLES + "\n".join(blocks + syntax) + (suites.__doc__ or "")
    found = [f for f in re.findall(r"--param '?([\w.]+=(?:\S+?))'?(?=[\s`)]|$)", texts)
             if not f.startswith("MODEL.KEY")]
    assert len(found) >= 3, found
    for model, params in parse_param_overrides(found).items():
        validate_params(get_model_class(model), params)
    for table in re.findall(r"^\s*params = (\{.*?\})", texts, re.M):
        validate_params(get_model_class("hog_svm"), tomllib.loads(f"p = {table}")["p"])


@pytest.mark.parametrize(("option", "message"), [
    (["--seeds", "0,0"], r"seed(s) [0] given more than once"),
    (["--seeds", "-1"], "not integers in [0, 4294967295]"),
    (["--timeout", "nan"], "--timeout 'nan' must be a number of seconds"),
    (["--timeout", "1e300"], "--timeout '1e300' must be a number of seconds"),
    (["--threshold-rule", "median"], "unknown threshold rule 'median'"),
    (["--val-fraction", "0"], "val_fraction must lie strictly between 0 and 1"),
])
def test_bad_values_are_exit_2_before_any_work(synthetic_root, tmp_path, capsys, option,
                                               message):
    out = tmp_path / "o"
    assert main(["run", "--data", str(synthetic_root), "--models", "majority", "--out",
                 str(out), *option]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_help_shows_the_defaults_from_their_one_definition(capsys):
    from cxrbench.run.config import DEFAULT_EXECUTOR, DEFAULT_SUITE, DEFAULT_VAL_FRACTION
    from cxrbench.scoring.thresholds import DEFAULT_THRESHOLD_RULE

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"else {DEFAULT_THRESHOLD_RULE})" in text
    assert f"(default: {DEFAULT_VAL_FRACTION})" in text
    assert f"(default: {DEFAULT_SUITE!r} when --models is not given)" in text
    assert f"where jobs run (default: {DEFAULT_EXECUTOR})" in text


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_audit_counts(real_data, capsys):
    assert main(["data", "audit", str(real_data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"] == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert report["splits"]["test"] == {"NORMAL": 234, "PNEUMONIA": 390}
    assert len(report["duplicate_groups"]) == 30
    assert len(report["cross_split_duplicate_groups"]) == 0


def test_resume_session_records_its_own_command_line(synthetic_root, tmp_path):
    first = ["run", "--data", str(synthetic_root), "--models", "majority", "--seeds", "0",
             "--executor", "inline", "--no-report", "--out", str(tmp_path / "o")]
    again = [*first[:5], "--seeds", "0,1", *first[7:], "--resume"]
    assert main(first) == 0 and main(again) == 0
    run = json.loads((tmp_path / "o" / "results.json").read_text())["run"]
    assert run["command"] == ["cxrbench", *first]
    (session,) = run["resumed"]
    assert session["command"] == ["cxrbench", *again] and session["jobs"] == ["majority[seed=1]"]
    assert session["hostname"] and session["cpu_model"]
