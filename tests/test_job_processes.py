"""Job processes fork from cxrbench's preloaded server (``cxrbench.processes``), each still a
process of its own, with its parent's environment as it is when the job starts."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os

import pytest
from helpers import records_by_job

from cxrbench import processes
from cxrbench.processes import load_time_environment
from cxrbench.results.io import read_results
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.harness import run_benchmark

pytestmark = pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(),
    reason="no fork server on this platform: job processes are spawned")


@pytest.fixture
def server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's thread variables as the fork server saw them when it started (an earlier
    test may have started it, and `cxrbench` sets OMP_WAIT_POLICY when a CLI test runs)."""
    seen = processes._server_env
    if seen is None:  # not started yet: it will see today's
        return
    for key in load_time_environment():
        monkeypatch.delenv(key)
    for key, value in seen.items():
        monkeypatch.setenv(key, value)


def fit_info(data, out) -> dict:  # type: ignore[no-untyped-def]
    config = RunConfig(data_path=data, models=[ModelSpec("fault_process")], seeds=[0],
                       out_dir=out, executor="process", report=False)
    record = records_by_job(read_results(run_benchmark(config).results_path))[
        "fault_process[seed=0]"]
    assert record["status"] == "ok", record["error"]
    return record["fit_info"]


@pytest.mark.slow
def test_each_job_forks_from_the_preloaded_server_with_the_callers_environment(
        faults, server_settings, synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_TEST_MARK", "first")
    first = fit_info(synthetic_root, tmp_path / "a")
    monkeypatch.setenv("CXRBENCH_TEST_MARK", "second")  # after the server started
    second = fit_info(synthetic_root, tmp_path / "b")
    assert (first["mark"], second["mark"]) == ("first", "second")
    assert len({first["pid"], second["pid"], os.getpid()}) == 3  # a fresh process per job
    if importlib.util.find_spec("skops") is not None:  # imported once, in the server
        assert first["skops_preloaded"] and second["skops_preloaded"]


@pytest.mark.slow
def test_changed_thread_settings_spawn_the_job_instead(faults, server_settings, synthetic_root,
                                                        tmp_path, monkeypatch):
    fit_info(synthetic_root, tmp_path / "a")  # the server runs, with today's settings
    current = load_time_environment().get("OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1" if current != "1" else "2")
    info = fit_info(synthetic_root, tmp_path / "b")
    assert not info["skops_preloaded"]  # spawned: nothing imported before the job


def test_a_misspelt_job_start_method_is_refused_before_any_job(synthetic_root, tmp_path,
                                                                 monkeypatch, capsys):
    from cxrbench.cli import main

    monkeypatch.setenv("CXRBENCH_JOB_START", "fork")
    code = main(["run", "--data", str(synthetic_root), "--out", str(tmp_path / "o"),
                 "--models", "majority", "--seeds", "0", "--no-report"])
    assert code == 2
    assert "CXRBENCH_JOB_START='fork': use one of forkserver, spawn" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.slow
def test_spawn_is_one_variable_away(faults, synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_JOB_START", "spawn")
    assert not fit_info(synthetic_root, tmp_path / "a")["skops_preloaded"]
