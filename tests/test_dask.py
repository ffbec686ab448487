"""The Dask executor: same results as a local run, faults as records, GPU-resource pinning."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from helpers import records_by_job  # noqa: E402

from cxrbench.cli import main  # noqa: E402
from cxrbench.plugins.registry import list_models  # noqa: E402
from cxrbench.run.config import ModelSpec, RunConfig  # noqa: E402
from cxrbench.run.executors.dask import DaskExecutor, _localize, wants_accelerator  # noqa: E402
from cxrbench.run.harness import run_benchmark  # noqa: E402
from cxrbench.run.jobs import Job  # noqa: E402

# Fast deterministic plugins: the classical ones, or the majority floor until they exist.
DETERMINISTIC = [m for m in ("pixels_logreg", "hog_svm") if m in list_models()] or ["majority"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """An 'existing' cluster for --scheduler: DaskExecutor's own local cluster, 2 workers, one
    of which advertises the resource GPU=1."""
    with DaskExecutor(n_workers=2, resources={"GPU": 1})._local_cluster() as cluster:
        yield cluster


@pytest.mark.slow
def test_two_worker_cluster_gives_the_local_results(synthetic_root, tmp_path, capsys):
    start = time.perf_counter()
    outcome = run_benchmark(RunConfig(
        data_path=synthetic_root, models=[ModelSpec(m) for m in DETERMINISTIC], seeds=[0, 1],
        out_dir=tmp_path / "local", executor="inline", report=False))
    assert outcome.n_ok == 2 * len(DETERMINISTIC) and outcome.n_failed == 0
    local = outcome.results_path
    local_s = time.perf_counter() - start
    code = main(["run", "--data", str(synthetic_root), "--models", ",".join(DETERMINISTIC),
                 "--seeds", "0,1", "--out", str(tmp_path / "dask"), "--executor", "dask",
                 "--dask-workers", "2", "--no-report"])
    assert code == 0, capsys.readouterr().err
    print(f"local {local_s:.1f} s, dask {time.perf_counter() - start - local_s:.1f} s")
    on_dask = tmp_path / "dask" / "results.json"
    a, b = json.loads(local.read_text()), json.loads(on_dask.read_text())
    assert a["split"]["sha256"] == b["split"]["sha256"]
    assert a["evaluation"] == b["evaluation"]
    assert (records_by_job(local, drop_cache_facts=True)
            == records_by_job(on_dask, drop_cache_facts=True))  # probabilities, metrics, ...
    assert len(b["records"]) == 2 * len(DETERMINISTIC)
    workers = {r["worker"]["address"] for r in b["records"]}
    assert len(workers) == 2  # both workers took jobs
    assert a["summary"].keys() == b["summary"].keys()
    for model in a["summary"]:
        assert a["summary"][model]["test"] == b["summary"][model]["test"]


def job_processes_alive() -> int:
    """This worker's descendants, less the idle fork server that job processes start from."""
    import psutil

    return sum("forkserver" not in " ".join(p.cmdline())
               for p in psutil.Process().children(recursive=True))


@pytest.mark.slow
def test_faults_on_workers_become_records(faults, cluster, synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--data", str(synthetic_root), "--out", str(out), "--no-report",
                 "--models", "fault_sleep,fault_kill_parent,majority",
                 "--param", "fault_sleep.busy=true", "--timeout", "fault_sleep=3",
                 "--executor", "dask", "--scheduler", cluster.scheduler_address])
    assert code == 1
    records = {r["model"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    assert records["majority"]["status"] == "ok"
    assert records["fault_sleep"]["status"] == "timeout"  # spinning a core until killed
    killed = records["fault_kill_parent"]["error"]
    assert killed["type"] == "crash" and "the Dask worker running" in killed["message"]
    # No job process is left burning CPU on any worker, and the lost worker was replaced.
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        left = client.run(job_processes_alive)
    assert set(left.values()) == {0}


@pytest.mark.slow
def test_deep_jobs_are_pinned_to_the_gpu_worker(faults, cluster, synthetic_root, tmp_path):
    assert wants_accelerator("fault_deep_probe") and not wants_accelerator("majority")
    records: list[dict[str, Any]] = []
    run_benchmark(RunConfig(
        data_path=synthetic_root, models=[ModelSpec("fault_deep_probe"), ModelSpec("majority")],
        seeds=[0, 1, 2, 3], out_dir=tmp_path / "out", report=False, executor="dask",
        # isolate=False: jobs in the workers themselves, to keep this test fast
        executor_options={"scheduler": cluster.scheduler_address, "resources": {"GPU": 1},
                          "isolate": False, "progress": False}), on_record=records.append)
    deep = {r["worker"]["address"] for r in records if r["model"] == "fault_deep_probe"}
    assert len(deep) == 1
    assert all(r["worker"]["resources"] == {"GPU": 1} for r in records
               if r["model"] == "fault_deep_probe")
    assert all(r["status"] == "ok" for r in records)


@pytest.mark.slow
def test_missing_gpu_resource_is_exit_2_not_a_hang(cluster, synthetic_root, tmp_path, capsys):
    deep = next(m for m in list_models() if wants_accelerator(m))
    code = main(["run", "--data", str(synthetic_root), "--out", str(tmp_path), "--no-report",
                 "--models", deep, "--executor", "dask", "--scheduler",
                 cluster.scheduler_address, "--dask-gpu-resource", "TPU=1"])
    assert code == 2
    assert "no Dask worker advertises the resource TPU=1" in capsys.readouterr().err


@pytest.mark.slow
def test_unreachable_scheduler_is_exit_2(synthetic_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cxrbench.run.executors.dask.CONNECT_TIMEOUT_S", 2)
    code = main(["run", "--data", str(synthetic_root), "--out", str(tmp_path), "--no-report",
                 "--models", "majority", "--executor", "dask", "--scheduler",
                 "tcp://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err
    assert "rerun with --resume once fixed" in err
    assert json.loads((tmp_path / "results.json").read_text())["run"]["status"] == "interrupted"


def test_split_plan_travels_to_workers_without_a_shared_file_system(tmp_path):
    job = Job(model="majority", seed=0, data_path="/data", data_hash="d",
              split_plan_path=str(tmp_path / "client-only" / "split_plan.json"),
              split_sha256="abc", cache_dir=str(tmp_path / "client-cache"),
              threshold_rule="youden", image_size=64, channels=1)
    local = _localize(job, '{"plan": 1}', str(tmp_path / "worker-cache"))
    assert local.cache_dir == str(tmp_path / "worker-cache")
    assert Path(local.split_plan_path) == tmp_path / "worker-cache" / "plans" / "abc.json"
    assert Path(local.split_plan_path).read_text() == '{"plan": 1}'


def test_progress_counts_done_running_and_failed():
    from cxrbench.run.executors.dask import _Progress

    progress = _Progress(3, enabled=False)
    for job in ("a", "b"):
        progress.on_event((0.0, {"job": job, "state": "started"}))
    assert (progress.done, progress.running, progress.failed) == (0, 2, 0)
    progress.finished({"job_id": "a", "status": "ok"})
    progress.finished({"job_id": "b", "status": "timeout"})
    progress.on_event((0.0, {"job": "b", "state": "started"}))  # a late event changes nothing
    assert (progress.done, progress.running, progress.failed) == (2, 0, 1)
