"""The command-line parts of the report issue: `report` output files, `models` suggestions and
help text that states each default once."""

from __future__ import annotations

import copy
import json

from report_helpers import fake_results

from cxrbench.cli import build_parser, main
from cxrbench.results.io import write_results


def test_models_suggests_a_close_name_and_fails(capsys):
    assert main(["models", "majorty"]) == 2
    assert "Did you mean: majority?" in capsys.readouterr().err
    assert main(["models", "zz*"]) == 2
    err = capsys.readouterr().err
    assert "no model matches 'zz*'" in err and "majority" in err
    assert main(["models", "majority"]) == 0


def test_help_states_each_default_once(capsys):
    parser = build_parser()
    for verb in ("run", "report", "data", "models", "compare", "merge", "demo"):
        sub = parser._subparsers._group_actions[0].choices.get(verb)
        if sub is None:
            continue
        text = sub.format_help()
        assert "(default: None)" not in text, verb
        for line in text.splitlines():
            assert line.count("default") <= 1, (verb, line)


def test_report_to_another_folder_does_not_replace_its_tables(tmp_path, capsys):
    path = write_results(tmp_path / "run" / "results.json",
                         copy.deepcopy(fake_results(n_models=2, n_test=60)))
    other = tmp_path / "other"
    other.mkdir()
    (other / "leaderboard.md").write_text("other run")
    assert main(["report", str(path), "-o", str(other / "report.html")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (other / "leaderboard.md").read_text() == "other run"
    assert main(["report", str(path), "-o", str(other / "review.html")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[1:] == [str(other / "review.leaderboard.md"),
                           str(other / "review.leaderboard.csv")]
    assert main(["report", str(path)]) == 0  # beside its own results: replaced as always
    assert (path.parent / "leaderboard.csv").is_file()


def test_report_audit_refuses_other_data(synthetic_root, tmp_path, capsys):
    path = write_results(tmp_path / "results.json",
                         copy.deepcopy(fake_results(n_models=2, n_test=60)))
    assert main(["report", str(path), "--audit", "--data", str(synthetic_root)]) == 2
    assert "not auditing other data" in capsys.readouterr().err


def test_report_audit_shows_the_audit_of_the_runs_data(synthetic_root, tmp_path):
    from cxrbench.run.config import ModelSpec, RunConfig
    from cxrbench.run.harness import run_benchmark

    config = RunConfig(data_path=synthetic_root, models=[ModelSpec("majority")], seeds=[0],
                       out_dir=tmp_path / "run", executor="inline", report=False)
    path = run_benchmark(config).results_path
    assert main(["report", str(path), "--audit"]) == 0
    html = (path.parent / "report.html").read_text()
    section = html[html.index('id="audit"'):html.index('id="split-plan"')]
    assert "Data audit" in section and "Patient ids in several splits" in section
    assert "across splits</strong> (leakage)" in section


def test_run_audit_stores_the_audit_and_the_report_shows_it(synthetic_root, tmp_path):
    from cxrbench.data import audit_dataset, load_dataset
    from cxrbench.report.audit import audit_summary
    from cxrbench.results.io import read_results

    out = tmp_path / "run"
    assert main(["run", "--data", str(synthetic_root), "--models", "majority", "--seeds", "0",
                 "--executor", "inline", "--audit", "--out", str(out)]) == 0
    stored = read_results(out / "results.json")["data_audit"]
    assert stored == json.loads(json.dumps(audit_summary(audit_dataset(
        load_dataset(synthetic_root)))))  # the same audit `report --audit` would make
    html = (out / "report.html").read_text()
    section = html[html.index('id="audit"'):html.index('id="split-plan"')]
    assert "Data audit" in section and "Patient ids in several splits" in section
    plain = tmp_path / "plain"
    assert main(["run", "--data", str(synthetic_root), "--models", "majority", "--seeds", "0",
                 "--executor", "inline", "--out", str(plain)]) == 0
    assert "data_audit" not in read_results(plain / "results.json")
