"""``cxrbench merge``: several runs of one split become one results file, origins kept."""

import json

import pytest

from cxrbench.cli import main
from cxrbench.results.io import read_results
from cxrbench.results.merge import MergeError, merge_files
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import run_benchmark


def run(data, out, seeds, models=("majority",), **kw):
    config = RunConfig(data_path=data, models=[ModelSpec(m) for m in models], seeds=list(seeds),
                       out_dir=out, executor="inline", report=False, **kw)
    return run_benchmark(config).results_path


def test_merge_keeps_every_job_and_names_its_origin(synthetic_root, tmp_path):
    a = run(synthetic_root, tmp_path / "a", seeds=(0, 1))
    b = run(synthetic_root, tmp_path / "b", seeds=(1, 2))
    merged = merge_files([a, b])
    records = {r["job_id"]: r for r in merged["records"]}
    assert sorted(records) == ["majority[seed=0]", "majority[seed=1]", "majority[seed=2]"]
    assert records["majority[seed=0]"]["origin"]["file"] == str(a)
    assert records["majority[seed=1]"]["origin"]["file"] == str(b)  # the later file wins
    assert {"commit", "dirty"} <= set(records["majority[seed=2]"]["origin"])
    assert [s["jobs"] for s in merged["run"]["sources"]] == [
        ["majority[seed=0]"], ["majority[seed=1]", "majority[seed=2]"]]
    assert merged["run"]["seeds"] == [0, 1, 2] and merged["run"]["suite"] == "merged"
    assert "merged from 2 files" in merged["provenance"]["git"]["error"]


def test_merge_refuses_another_split(synthetic_root, tmp_path):
    a = run(synthetic_root, tmp_path / "a", seeds=(0,))
    b = run(synthetic_root, tmp_path / "b", seeds=(0,), split_seed=1)
    with pytest.raises(MergeError, match="differ in their split plan"):
        merge_files([a, b])


def test_merge_cli_writes_results_and_report(synthetic_root, tmp_path, capsys):
    a = run(synthetic_root, tmp_path / "a", seeds=(0,))
    b = run(synthetic_root, tmp_path / "b", seeds=(1,))
    out = tmp_path / "m" / "results.json"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    merged = read_results(out)
    assert merged["summary"]["majority"]["n_ok"] == 2 and "statistics" in merged
    html = (out.parent / "report.html").read_text()
    assert "Merged by" in html and str(a) in html
    assert "<dt>Code</dt><dd>merged from 2 files" in html
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err
    json.loads(out.read_text())  # still intact


def test_merge_cli_names_a_damaged_input(synthetic_root, tmp_path, capsys):
    a = run(synthetic_root, tmp_path / "a", seeds=(0,))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["merge", str(a), str(bad), "-o", str(tmp_path / "m.json")]) == 2
    assert "bad.json is not valid JSON" in capsys.readouterr().err


def test_one_rule_spelled_two_ways_merges_and_summaries_come_from_the_records(
        synthetic_root, tmp_path):
    a = run(synthetic_root, tmp_path / "a", seeds=(0,), threshold_rule="fixed:0.5")
    b = run(synthetic_root, tmp_path / "b", seeds=(1,), threshold_rule="fixed:0.5")
    old = json.loads(a.read_text())  # as an older cxrbench wrote it
    old["run"]["threshold_rule"] = old["records"][0]["threshold_rule"] = "0.5"
    old["summary"]["majority"]["n_ok"] = 7  # stale: never trusted
    a.write_text(json.dumps(old))
    merged = merge_files([a, b])
    assert merged["run"]["threshold_rule"] == "fixed:0.5"
    assert {r["threshold_rule"] for r in merged["records"]} == {"fixed:0.5"}
    assert merged["summary"]["majority"]["n_ok"] == 2
    assert merged["statistics"]["models"]["majority"]["n_records"] == 2
    c = run(synthetic_root, tmp_path / "c", seeds=(2,))  # youden: another rule
    with pytest.raises(MergeError, match="differ in their threshold rule"):
        merge_files([a, c])


def _edit(path, change):
    results = json.loads(path.read_text())
    change(results)
    path.write_text(json.dumps(results))


def test_merged_resumed_run_names_each_records_commit_and_cpu(synthetic_root, tmp_path):
    """A run resumed at another commit on another CPU, merged with a third run: each record
    keeps the commit and CPU of the session that produced it, in the results and the HTML."""
    from cxrbench.report import render_report
    from cxrbench.report.html import anchor

    a = run(synthetic_root, tmp_path / "a", seeds=(0,))
    run(synthetic_root, tmp_path / "a", seeds=(0, 1), resume=True)
    b = run(synthetic_root, tmp_path / "b", seeds=(2,))

    def first_and_resumed(results):  # as if the two sessions ran at two commits on two CPUs
        results["provenance"]["git"] = {"commit": "a" * 40, "dirty": True, "error": None}
        results["provenance"]["cpu_model"] = "First CPU"
        session = results["run"]["resumed"][0]
        assert session["jobs"] == ["majority[seed=1]"]
        session["git"] = {"commit": "c" * 40, "dirty": False, "error": None}
        session.update(cpu_model="Resumed CPU", hostname="resume-host",
                       command=["cxrbench", "run", "--resume"])

    _edit(a, first_and_resumed)
    _edit(b, lambda r: r["provenance"].update(cpu_model="Other CPU",
                                              git={"commit": "b" * 40, "dirty": False}))
    merged = merge_files([a, b])
    expected = {"majority[seed=0]": ("a" * 40, "First CPU"),
                "majority[seed=1]": ("c" * 40, "Resumed CPU"),
                "majority[seed=2]": ("b" * 40, "Other CPU")}
    origins = {r["job_id"]: r["origin"] for r in merged["records"]}
    assert {j: (o["commit"], o["cpu_model"]) for j, o in origins.items()} == expected
    assert origins["majority[seed=1]"]["command"] == ["cxrbench", "run", "--resume"]
    sources = {(s["git_commit"], s["cpu_model"]): s["jobs"] for s in merged["run"]["sources"]}
    assert sources == {v: [j] for j, v in expected.items()}

    html = render_report(merged, tmp_path / "m" / "report.html").read_text()
    for job, (commit, cpu) in expected.items():
        start = html.index(f'id="{anchor(job)}"')
        block = html[start:html.index("</details>", start)]
        assert commit in block and cpu in block, job
    assert "cxrbench run --resume" in html
    # the cost caption does not claim one machine for times from three CPUs
    cost = html[html.index('id="cost"'):html.index('id="hard-cases"')]
    assert "not all measured on one known CPU" in cost and "this machine" not in cost


def test_old_merged_file_without_session_cpus_says_not_recorded():
    """Files merged before sessions recorded their CPU (the results/full of 2026-11-30 before
    7079df3): a record that came from a --resume session (its commit unlike its file's first
    session's) gets no CPU, not a wrong one; one from the first session gets the file's."""
    from cxrbench.report.records import record_provenance

    results = {
        "run": {"sources": [{"file": "out/full/results.json", "git_commit": "2c5852ff",
                             "cpu_model": "AMD EPYC", "hostname": "vm",
                             "jobs": ["cnn_strong[seed=0]", "cnn_strong[seed=1]"]}]},
        "records": [
            {"job_id": "cnn_strong[seed=0]", "origin": {"file": "out/full/results.json",
                                                        "commit": "2c5852ff"}},
            {"job_id": "cnn_strong[seed=1]", "origin": {"file": "out/full/results.json",
                                                        "commit": "04ac0420"}},  # resumed
        ],
    }
    cpus = {r["job_id"]: record_provenance(results, r)["cpu_model"] for r in results["records"]}
    assert cpus["cnn_strong[seed=1]"] is None
    assert cpus["cnn_strong[seed=0]"] == "AMD EPYC"
