"""Integrity under concurrency: one run per output folder, verified split plans, no lost record.

Before, a second `cxrbench run` on a running run's folder could swap its split plan (A's later
jobs then scored on B's plan, exit 0) or lose records (two writers, the last one wins). Now a
run locks its folder for its whole life: the second run fails at once (exit 2) naming the
holder; nothing is written into a folder before a run is accepted; each job checks the plan it
reads against the sha256 it was given; records written by anything else are merged, not lost.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_helpers import run_to_end, start_run, wait_for_records

from cxrbench.cli import main
from cxrbench.results.io import read_results
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import run_benchmark
from cxrbench.run.jobs import job_id
from cxrbench.run.lock import LOCK_FILE, OutputBusyError, OutputLock
from cxrbench.splits import SplitPlan

SLOW_RUN = ("--models", "majority,fault_sleep", "--seeds", "0", "--param",
            "fault_sleep.sleep_s=8", "--no-report")


def plan_sha(out: Path) -> str:
    return SplitPlan.load(out / "split_plan.json").sha256


@pytest.mark.slow
@pytest.mark.parametrize("second", [
    (),
    ("--overwrite",),
    ("--resume",),
    ("--resume", "--split-seed", "9"),
], ids=["plain", "overwrite", "resume", "resume-other-split"])
def test_second_run_on_a_busy_folder_fails_at_once_and_changes_nothing(
        synthetic_root, tmp_path, second):
    out, cache = tmp_path / "out", str(tmp_path / "cache")
    first = start_run(out, synthetic_root, *SLOW_RUN, "--cache-dir", cache)
    try:
        wait_for_records(first, out / "results.json", 1)  # majority done, fault_sleep running
        plan_before = (out / "split_plan.json").read_bytes()
        results_before = (out / "results.json").read_bytes()
        started = time.monotonic()
        other = run_to_end(out, synthetic_root, *SLOW_RUN, "--cache-dir", cache, *second)
        took = time.monotonic() - started
        assert first.poll() is None  # the second run ended while the first still ran
    finally:
        stdout, stderr = first.communicate(timeout=120)
    assert other.returncode == 2, other.stderr
    assert (f"is in use by another cxrbench run: pid {first.pid} on host "
            f"{socket.gethostname()}") in other.stderr
    assert "choose another --out" in other.stderr and "Traceback" not in other.stderr
    assert took < 30  # at once: before any data was read (the first run sleeps 8 s in a job)
    assert (out / "split_plan.json").read_bytes() == plan_before
    assert first.returncode == 0, stderr
    final = read_results(out / "results.json")
    assert json.loads(results_before)["records"][0] == final["records"][0]
    assert [r["status"] for r in final["records"]] == ["ok", "ok"]
    assert final["split"]["sha256"] == plan_sha(out)  # the plan every job was scored on
    assert "resumed" not in final["run"]
    assert not (out / LOCK_FILE).exists()  # released at the end


@pytest.mark.slow
def test_two_resumes_at_once_lose_no_record(synthetic_root, tmp_path):
    out, cache = tmp_path / "out", str(tmp_path / "cache")
    done = run_to_end(out, synthetic_root, "--models", "majority", "--seeds", "0",
                      "--no-report", "--executor", "inline", "--cache-dir", cache)
    assert done.returncode == 0, done.stderr
    first = start_run(out, synthetic_root, *SLOW_RUN, "--cache-dir", cache, "--resume")
    try:
        time.sleep(0.5)
        second = run_to_end(out, synthetic_root, *SLOW_RUN, "--cache-dir", cache, "--resume")
    finally:
        _, stderr = first.communicate(timeout=120)
    # Whichever came second was refused; the other finished the run.
    assert sorted([first.returncode, second.returncode]) == [0, 2], (stderr, second.stderr)
    final = read_results(out / "results.json")
    sleeper = job_id("fault_sleep", {"sleep_s": 8.0}, 0)  # validated: a float parameter
    assert sorted(r["job_id"] for r in final["records"]) == [sleeper, "majority[seed=0]"]
    assert [s["jobs"] for s in final["run"]["resumed"]] == [[sleeper]]  # one session ran


def test_refused_resume_writes_nothing(synthetic_root, tmp_path, capsys):
    """A resume with another split seed is refused, and split_plan.json still matches the
    results (before, the refused run had already overwritten it)."""
    out = tmp_path / "out"
    args = ["run", "--data", str(synthetic_root), "--out", str(out), "--models", "majority",
            "--seeds", "0", "--executor", "inline", "--no-report"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main([*args, "--resume", "--split-seed", "9"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_refused_run_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "new" / "out"
    code = main(["run", "--data", str(tmp_path / "nowhere"), "--out", str(out),
                 "--models", "majority", "--seeds", "0"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


@pytest.mark.parametrize("leftover", ["dead pid", "reused pid"])
def test_stale_lock_of_a_dead_run_is_taken_over_with_a_note(synthetic_root, tmp_path, capsys,
                                                            leftover):
    out = tmp_path / "out"
    out.mkdir()
    # A reused pid: alive, but started at another time than the run that wrote the lock.
    pid, start_time = (dead_pid(), 1.0) if leftover == "dead pid" else (os.getppid(), 1.0)
    (out / LOCK_FILE).write_text(json.dumps({
        "pid": pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00Z",
        "start_time": start_time, "command": ["cxrbench", "run"]}))
    code = main(["run", "--data", str(synthetic_root), "--out", str(out), "--models",
                 "majority", "--seeds", "0", "--executor", "inline", "--no-report"])
    assert code == 0
    err = capsys.readouterr().err
    assert (f"note: took over the lock of {out} left by pid {pid} on host "
            f"{socket.gethostname()} (since 2026-01-01T00:00:00Z, running `cxrbench run`), "
            "which is no longer running") in err
    assert not (out / LOCK_FILE).exists()


def test_lock_left_by_another_host_is_refused_with_the_way_out(synthetic_root, tmp_path,
                                                               capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere.example",
                                             "since": "2026-01-01T00:00:00Z"}))
    code = main(["run", "--data", str(synthetic_root), "--out", str(out), "--models",
                 "majority", "--seeds", "0", "--executor", "inline"])
    assert code == 2
    err = capsys.readouterr().err
    assert "locked by pid 1 on host elsewhere.example" in err
    assert f"if that run has ended, delete {out / LOCK_FILE} and try again" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with OutputLock(tmp_path, ["first"]), pytest.raises(
            OutputBusyError, match=f"pid {os.getpid()} on host .*`first`"):
        OutputLock(tmp_path).acquire()
    with OutputLock(tmp_path):  # released: free again
        pass


def test_job_refuses_a_split_plan_replaced_under_it(synthetic_root, tmp_path):
    """A plan file swapped behind the run's back (by a writer that ignores the lock) fails the
    jobs that read it, by name, instead of scoring them on another split."""
    out = tmp_path / "out"

    def swap_plan(record: dict) -> None:
        other = SplitPlan.load(out / "split_plan.json")
        other = SplitPlan(other.test_ids, other.val_ids, other.train_ids, 9, 0.15, "swapped")
        other.save(out / "split_plan.json")

    outcome = run_benchmark(RunConfig(
        data_path=synthetic_root, models=[ModelSpec("majority")], seeds=[0, 1],
        out_dir=out, executor="inline", report=False), on_record=swap_plan)
    assert (outcome.n_ok, outcome.n_failed) == (1, 1)
    failed = read_results(outcome.results_path)["records"][1]
    assert failed["error"]["type"] == "SplitPlanMismatchError"
    assert "was replaced while the run was going, so this job was not run" in \
        failed["error"]["message"]


def test_records_written_by_another_process_are_merged_not_lost(synthetic_root, tmp_path,
                                                                capsys):
    out = tmp_path / "out"

    def add_foreign_record(record: dict) -> None:
        if record["seed"] != 0:
            return
        data = json.loads((out / "results.json").read_text())
        foreign = {**data["records"][0], "job_id": "majority[seed=7]", "seed": 7}
        data["records"].append(foreign)
        (out / "results.json").write_text(json.dumps(data))

    outcome = run_benchmark(RunConfig(
        data_path=synthetic_root, models=[ModelSpec("majority")], seeds=[0, 1],
        out_dir=out, executor="inline", report=False), on_record=add_foreign_record)
    assert outcome.n_ok == 3  # its two, and the one merged in
    jobs = [r["job_id"] for r in read_results(outcome.results_path)["records"]]
    assert sorted(jobs) == ["majority[seed=0]", "majority[seed=1]", "majority[seed=7]"]
    assert "was changed by another process during the run; its 1 other record(s) are kept" \
        in capsys.readouterr().err


def test_merge_into_a_folder_a_run_is_using_is_refused(synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--data", str(synthetic_root), "--models", "majority", "--executor",
            "inline", "--no-report"]
    assert main([*args, "--out", str(tmp_path / "a"), "--seeds", "0"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--seeds", "1"]) == 0
    merge = ["merge", str(tmp_path / "a" / "results.json"), str(tmp_path / "b" / "results.json"),
             "-o", str(out / "results.json"), "--no-report"]
    with OutputLock(out, ["cxrbench", "run", "--out", "out"]):
        assert main(merge) == 2
        assert "is in use by another cxrbench run" in capsys.readouterr().err
        assert not (out / "results.json").exists()
    assert main(merge) == 0
    assert len(read_results(out / "results.json")["records"]) == 2


def test_a_live_holder_on_this_host_is_honoured_where_flock_is_not(tmp_path, monkeypatch):
    """Some network file systems have no flock (ENOLCK): the holder's record guards the folder,
    and a record naming a live process (same pid and start time) is never taken over."""
    import fcntl

    import psutil

    parent = psutil.Process(os.getppid())
    (tmp_path / LOCK_FILE).write_text(json.dumps({
        "pid": parent.pid, "host": socket.gethostname(), "since": "now",
        "start_time": parent.create_time()}))
    with pytest.raises(OutputBusyError, match=f"pid {parent.pid} on host"):
        OutputLock(tmp_path).acquire()

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(OutputBusyError, match=f"pid {parent.pid} on host"):
        OutputLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE).unlink()
    with OutputLock(tmp_path, ["mine"]):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == ["mine"]
