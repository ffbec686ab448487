"""Fault tolerance: crashes, signals, SIGKILL + resume, and damaged results files.

Jobs that fail in their process become records and the run goes on; Ctrl-C / SIGTERM keep the
finished records and the partial report (exit 130 / 143); a SIGKILLed run resumes to the same
results as an uninterrupted one; a truncated or hand-edited results file is named, exit 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import records_by_job
from process_helpers import start_run, wait_for_records

from cxrbench.cli import main
from cxrbench.cli.run import interrupted_exit_code, parse_timeouts
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import (
    RunTerminated,
    interrupting_signal,
    run_benchmark,
    sigterm_as_interrupt,
)


def job_processes() -> list[psutil.Process]:
    """This test process's job processes (ProcessExecutor's), alive now: spawned, or forked by
    the fork server (whose own process is not a job)."""

    def forkserver(process: psutil.Process | None) -> bool:
        return process is not None and "forkserver" in " ".join(process.cmdline())

    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            spawned = "spawn_main" in " ".join(process.cmdline())
            if (spawned or forkserver(process.parent())) and process.is_running():
                found.append(process)
    return found


@pytest.mark.slow
def test_crashing_jobs_become_records_with_the_signal(faults, synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--data", str(synthetic_root), "--out", str(out), "--no-report",
                 "--models", "fault_segfault,fault_oom,majority", "--seeds", "0"])
    assert code == 1
    records = {r["model"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    assert records["majority"]["status"] == "ok"  # the run went on after two crashes
    segv, oom = records["fault_segfault"], records["fault_oom"]
    assert (segv["status"], segv["error"]["type"]) == ("error", "crash")
    assert "killed by SIGSEGV" in segv["error"]["message"]
    assert "SIGKILL (often the out-of-memory killer)" in oom["error"]["message"]
    assert "killed by SIGSEGV" in capsys.readouterr().err
    assert job_processes() == []


def test_sigterm_handler_raises_an_interrupt_with_exit_code_143():
    with pytest.raises(RunTerminated) as info, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert interrupted_exit_code(interrupting_signal(info.value)) == 143
    assert interrupted_exit_code(interrupting_signal(KeyboardInterrupt())) == 130
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_timeout_spec_per_model_and_default():
    assert parse_timeouts("600,cnn_seed=3600") == (600.0, {"cnn_seed": 3600.0})
    assert parse_timeouts(None) == (None, {})
    for bad in ("soon", "hog_svm=-1", "0"):
        with pytest.raises(ValueError, match="--timeout"):
            parse_timeouts(bad)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "executor", "expected"), [
    (signal.SIGTERM, "process", 143),
    (signal.SIGINT, "inline", 130),
], ids=["SIGTERM-process", "SIGINT-inline"])
def test_signal_keeps_records_and_writes_partial_report(faults, synthetic_root, tmp_path,
                                                        signum, executor, expected):
    out = tmp_path / "out"
    proc = start_run(out, synthetic_root, "--models", "majority,fault_sleep", "--seeds", "0",
                     "--executor", executor, "--cache-dir", str(tmp_path / "cache"))
    wait_for_records(proc, out / "results.json", 1)  # majority done, fault_sleep sleeping 60 s
    if executor == "process":  # its job process is seen (so "none left" below means it)
        deadline = time.monotonic() + 30
        while not job_processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job_processes()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == expected, stderr
    reason = "received SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    assert f"interrupted ({reason}): 1 record(s) kept" in stderr and "--resume" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["status"] == "interrupted"
    assert [r["job_id"] for r in results["records"]] == ["majority[seed=0]"]
    assert (out / "report.html").is_file()
    assert job_processes() == []


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(faults, synthetic_root, tmp_path):
    args = ["--models", "majority,fault_sleep", "--seeds", "0",
            "--param", "fault_sleep.sleep_s=1.5", "--no-report"]
    cache = tmp_path / "cache"
    outcome = run_benchmark(RunConfig(
        data_path=synthetic_root, models=[ModelSpec("majority"),
                                          ModelSpec("fault_sleep", {"sleep_s": 1.5})],
        seeds=[0], out_dir=tmp_path / "reference", executor="inline", report=False,
        cache_dir=cache))
    assert (outcome.status, outcome.n_ok, outcome.n_failed) == ("complete", 2, 0)
    reference = outcome.results_path

    out = tmp_path / "killed"
    proc = start_run(out, synthetic_root, *args, "--cache-dir", str(cache))
    wait_for_records(proc, out / "results.json", 1)
    proc.kill()  # while fault_sleep runs (or starts)
    proc.communicate()
    killed = json.loads((out / "results.json").read_text())
    assert killed["run"]["status"] == "running"  # it never got to say otherwise
    assert [r["job_id"] for r in killed["records"]] == ["majority[seed=0]"]

    resumed = start_run(out, synthetic_root, *args, "--cache-dir", str(cache), "--resume")
    _, stderr = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stderr
    assert f"resume: {len(killed['records'])} finished job(s) kept" in stderr
    final = json.loads((out / "results.json").read_text())
    expected = json.loads(reference.read_text())
    assert final["run"]["status"] == "complete"
    assert final["split"]["sha256"] == expected["split"]["sha256"]
    assert final["evaluation"] == expected["evaluation"]
    assert records_by_job(final) == records_by_job(expected)
    assert final["summary"]["fault_sleep"]["test"] == expected["summary"]["fault_sleep"]["test"]


@pytest.mark.slow
def test_job_process_exits_when_its_parent_is_killed(tmp_path):
    """The watchdog in every job process: an orphan of a SIGKILLed run must not burn CPU."""
    child_code = ("import sys, time; from cxrbench.run.executors.local import _exit_with_parent; "
                  "_exit_with_parent(int(sys.argv[1]), 0.1); print('ready', flush=True); "
                  "time.sleep(120)")
    parent_code = ("import os, subprocess, sys, time; "
                   f"c = subprocess.Popen([sys.executable, '-c', {child_code!r}, "
                   "str(os.getpid())]); print(c.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    assert parent.stdout.readline().strip() == "ready"  # the child watches its parent now
    parent.kill()
    parent.wait()
    _, alive = psutil.wait_procs([child], timeout=10)
    for orphan in alive:
        orphan.kill()
    assert alive == []


# ----------------------------------------------------------------------- damaged results files
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A complete results.json (majority, inline) and the data it was made from."""
    from cxrbench.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("damaged")
    data = make_synthetic_dataset(root / "data", n_train=(8, 8), n_test=(4, 4), size=32)
    outcome = run_benchmark(RunConfig(data_path=data, models=[ModelSpec("majority")],
                                      seeds=[0], out_dir=root / "out", executor="inline",
                                      cache_dir=root / "cache", report=False))
    assert outcome.n_ok == 1
    return outcome.results_path, data


def damage(text: str, how: str) -> str:
    if how == "truncated":
        return text[: len(text) // 2]
    data = json.loads(text)
    if how == "schema_version":
        data["schema_version"] = 99
    elif how == "missing_field":
        del data["records"][0]["status"]
    elif how == "bad_status":
        data["records"][0]["status"] = "fine"
    elif how == "no_records":
        del data["records"]
    return json.dumps(data)


@pytest.mark.parametrize(("how", "message"), [
    ("truncated", "is not valid JSON (truncated or hand-edited?)"),
    ("schema_version", "schema_version 99 is not supported"),
    ("missing_field", "record 0 (majority[seed=0]): missing field(s) ['status']"),
    ("bad_status", "has status 'fine'; expected one of"),
    ("no_records", "missing required field(s) ['records']"),
])
def test_damaged_results_file_is_named_by_report(finished_run, tmp_path, capsys, how, message):
    broken = tmp_path / "broken.json"
    broken.write_text(damage(finished_run[0].read_text(), how))
    assert main(["report", str(broken)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(broken) in err
    assert "Traceback" not in err


def test_resume_on_truncated_results_is_exit_2_and_keeps_the_file(finished_run, tmp_path,
                                                                   capsys):
    path, data = finished_run
    out = tmp_path / "out"
    out.mkdir()
    truncated = damage(path.read_text(), "truncated")
    (out / "results.json").write_text(truncated)
    code = main(["run", "--data", str(data), "--models", "majority", "--out", str(out),
                 "--resume", "--executor", "inline", "--no-report"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "not valid JSON" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == truncated  # nothing overwritten
