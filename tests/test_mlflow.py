"""MLflow export against real tracking stores (a local SQLite store, and an `mlflow server`
process on 127.0.0.1), checked through MLflow's own client."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="mlflow is not installed: pip install 'cxrbench[mlflow]'")

from mlflow.tracking import MlflowClient  # noqa: E402

import cxrbench  # noqa: E402
from cxrbench.cli import main  # noqa: E402
from cxrbench.export.mlflow import BENCHMARK_TAG, KEY_TAG, export_results  # noqa: E402
from cxrbench.results.io import read_results  # noqa: E402
from cxrbench.scoring.metrics import METRICS  # noqa: E402

SERVER_START_S = 240  # `mlflow server` takes 10-50 s to answer on a loaded 2-core machine


@pytest.fixture(scope="module")
def results_path(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished run: two models x two seeds and one failing job."""
    import fault_plugins

    out = tmp_path_factory.mktemp("mlflow-run")
    with fault_plugins.registered():
        bench = cxrbench.benchmark(synthetic_root, models="majority,pixels_logreg,fault_raises",
                                   seeds=[0, 1], out=out / "out", executor="inline",
                                   cache_dir=out / "cache")
    assert bench.outcome.n_failed == 2
    return bench.path


def runs_by_name(client: MlflowClient, experiment: str) -> dict[str, Any]:
    found = client.get_experiment_by_name(experiment)
    return {run.info.run_name: run for run in client.search_runs([found.experiment_id])}


def check_exported(client: MlflowClient, experiment: str, results_path: Path) -> None:
    """The parent run, one child per record with its params, metrics, intervals and tags, and
    the artifacts, as MLflow's client reads them back."""
    results = read_results(results_path)
    runs = runs_by_name(client, experiment)
    assert len(runs) == 1 + len(results["records"])
    parent = next(r for n, r in runs.items() if n.startswith("cxrbench "))
    assert parent.info.status == "FINISHED"
    assert parent.data.params["threshold_rule"] == "youden"
    assert parent.data.tags["cxrbench.status"] == "complete"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.json", "report.html", "leaderboard.md", "leaderboard.csv",
            "split_plan.json"} <= artifacts

    record = next(r for r in results["records"] if r["job_id"] == "pixels_logreg[seed=1]")
    child = runs["pixels_logreg[seed=1]"]
    assert child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    metrics = child.data.metrics
    for split in ("val", "test"):
        assert metrics[f"{split}_roc_auc"] == pytest.approx(record["metrics"][split]["roc_auc"])
    intervals = cxrbench.Benchmark.load(results_path).records.set_index("job_id")
    for name in ("roc_auc", "accuracy"):
        assert metrics[f"test_{name}_low"] == pytest.approx(
            intervals.loc[record["job_id"], f"test_{name}_low"])
        assert metrics[f"test_{name}_low"] <= metrics[f"test_{name}"] <= \
            metrics[f"test_{name}_high"]
    assert {f"test_{m}" for m in METRICS if record["metrics"]["test"][m] is not None} <= \
        set(metrics)
    assert metrics["fit_s"] == pytest.approx(record["timing"]["fit_s"])
    assert metrics["threshold"] == pytest.approx(record["threshold"])
    assert child.data.params["model"] == "pixels_logreg" and child.data.params["seed"] == "1"
    tags = child.data.tags
    assert tags["cxrbench.data_hash"] == results["provenance"]["data"]["data_hash"]
    assert tags["cxrbench.split_sha256"] == results["split"]["sha256"]
    assert tags["cxrbench.commit"] == str(results["provenance"]["git"].get("commit"))
    assert tags["cxrbench.threshold_rule"] == "youden"
    assert tags["cxrbench.job_id"] == "pixels_logreg[seed=1]"
    assert tags["cxrbench.plugin_sha256"] == record["plugin"]["sha256"]
    assert tags[BENCHMARK_TAG] == parent.data.tags[BENCHMARK_TAG]

    failed = runs["fault_raises[seed=0]"]
    assert failed.info.status == "FAILED"
    assert "deliberate failure in fit" in failed.data.tags["cxrbench.error"]


@pytest.mark.slow
def test_export_to_a_sqlite_store_and_again_adds_nothing(results_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's default artifact folder (./mlruns) goes here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = export_results(results_path, uri, "local")
    assert len(first.created) == 6 and not first.skipped
    client = MlflowClient(uri)
    check_exported(client, "local", results_path)
    second = export_results(results_path, uri, "local")
    assert second.created == [] and len(second.skipped) == 6
    assert second.parent_run_id == first.parent_run_id
    assert len(runs_by_name(client, "local")) == 7

    # An export interrupted half-way leaves a run unfinished: the next one makes it again.
    broken = runs_by_name(client, "local")["majority[seed=0]"]
    client.update_run(broken.info.run_id, status="RUNNING")
    third = export_results(results_path, uri, "local")
    assert third.created == ["majority[seed=0]"]
    runs = runs_by_name(client, "local")
    assert len(runs) == 7 and runs["majority[seed=0]"].info.run_id != broken.info.run_id
    assert runs["majority[seed=0]"].data.tags[KEY_TAG] == broken.data.tags[KEY_TAG]


@pytest.mark.slow
def test_run_with_mlflow_checks_the_store_first_then_logs(synthetic_root, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["run", "--data", str(synthetic_root), "--models", "majority", "--out", str(out),
                 "--executor", "inline", "--no-report", "--mlflow", "http://127.0.0.1:9"])
    assert code == 2 and not out.exists()  # refused before any work
    assert "cannot reach the MLflow tracking store http://127.0.0.1:9" in capsys.readouterr().err
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["run", "--data", str(synthetic_root), "--models", "majority", "--out", str(out),
                 "--executor", "inline", "--mlflow", uri, "--mlflow-experiment", "from-run"])
    assert code == 0, capsys.readouterr().err
    assert "mlflow: 1 record run(s) logged, 0 already there" in capsys.readouterr().out
    runs = runs_by_name(MlflowClient(uri), "from-run")
    assert set(runs) >= {"majority[seed=0]"} and len(runs) == 2


def test_export_without_a_results_file_or_a_store_is_exit_2(tmp_path, results_path, capsys):
    assert main(["export", "mlflow", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad_uri = "sqlite:////proc/no/such/folder/mlflow.db"
    assert main(["export", "mlflow", str(results_path), "--tracking-uri", bad_uri]) == 2
    assert "cxrbench: error:" in capsys.readouterr().err


# --------------------------------------------------------------------- a real server process
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 for the block (its own process group, killed after)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
            assert time.monotonic() < deadline, "mlflow server did not answer in time"
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.mark.slow
def test_export_to_an_mlflow_server_process(results_path, tmp_path, capsys):
    with mlflow_server(tmp_path) as url:
        assert main(["export", "mlflow", str(results_path), "--tracking-uri", url,
                     "--experiment", "served"]) == 0
        out = capsys.readouterr().out
        assert "mlflow: 6 record run(s) logged, 0 already there" in out
        assert f"{url}/#/experiments/" in out and "🧪" not in out  # MLflow's own links muted
        client = MlflowClient(url)
        check_exported(client, "served", results_path)
        assert main(["export", "mlflow", str(results_path), "--tracking-uri", url,
                     "--experiment", "served"]) == 0
        assert "0 record run(s) logged, 6 already there" in capsys.readouterr().out
        assert len(runs_by_name(client, "served")) == 7
        parent = next(r for n, r in runs_by_name(client, "served").items()
                      if n.startswith("cxrbench "))
        report = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path))
        assert Path(report).read_text() == (results_path.parent / "report.html").read_text()
