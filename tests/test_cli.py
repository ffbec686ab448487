import json

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
    code = main(["run", "--data", str(synthetic_root), "--models", "majority",
                 "--param", "other.x=1", "--out", str(tmp_path / "o")])
    assert code == 2 and "not in this run" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_audit_counts(real_data, capsys):
    assert main(["data", "audit", str(real_data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"] == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert report["splits"]["test"] == {"NORMAL": 234, "PNEUMONIA": 390}
    assert len(report["duplicate_groups"]) == 30
    assert len(report["cross_split_duplicate_groups"]) == 0
