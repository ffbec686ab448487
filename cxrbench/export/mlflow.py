"""Export a results file to MLflow: a parent run per benchmark, a child run per record.

Each record becomes one MLflow run (named by its job id) nested under the benchmark's parent
run, with its hyperparameters and card facts as params; validation and test metrics, the test
metrics' 95 % patient-bootstrap intervals (``test_roc_auc_low`` / ``_high``), the threshold,
timings and size as metrics; the training history (``history.<key>`` per epoch) when the
plugin kept one; tags for the data hash, split sha256, git commit, threshold rule, job id,
plugin file and status (an error record is a FAILED run with its message); and the record's
saved model folder, if any, as artifacts. The parent run carries the run's configuration, the
results file, the split plan, the HTML report and the leaderboards.

Exporting is idempotent: every run is tagged with a stable key (``cxrbench.key``: a digest of
the data hash, split sha256, the run's start time and threshold rule, plus the record's job id
and finish time), and a key already in the experiment is skipped, so exporting the same file
again adds nothing, and exporting a resumed run adds only its new records. A run left
unfinished by an interrupted export is deleted and made again (with its children, for a
parent run).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrbench.export import DEFAULT_EXPERIMENT
from cxrbench.results.io import read_results
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS
from cxrbench.stats import with_statistics

KEY_TAG = "cxrbench.key"
BENCHMARK_TAG = "cxrbench.benchmark_key"
MAX_TAG_CHARS = 5000  # MLflow's limits are 8000 (tags) and 6000 (params) characters
BATCH = 100  # MLflow accepts at most 100 params and 100 tags per batch (1000 metrics)
PREFLIGHT_RETRIES = "0"  # a tracking server that does not answer fails the check at once
QUIET = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # no link printed per run made


class TrackingError(ValueError):
    """MLflow is not installed, or the tracking store cannot be reached or written."""


@dataclass
class ExportSummary:
    """What an export did: the experiment, the parent run, the child runs made and skipped."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    created: list[str] = field(default_factory=list)  # job ids exported now
    skipped: list[str] = field(default_factory=list)  # job ids already in the experiment

    @property
    def url(self) -> str | None:
        """The parent run in the MLflow UI, for a tracking server."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/"
                f"{self.parent_run_id}")


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as err:
        raise TrackingError(f"MLflow export needs mlflow ({err}); install it with: "
                            "pip install 'cxrbench[mlflow]'") from err
    return mlflow


def _client(tracking_uri: str | None) -> Any:
    mlflow = _mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri or mlflow.get_tracking_uri())


@contextlib.contextmanager
def _mlflow_settings(**values: str) -> Iterator[None]:
    """MLflow's own settings (read from the environment when it acts), for one block only."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_tracking(tracking_uri: str | None) -> str:
    """Reach the tracking store now (before a long run); returns its URI, or TrackingError."""
    mlflow = _mlflow()
    uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        client = _client(uri)
        # MLflow's HTTP client retries for minutes; a check before a run should fail at once
        with _mlflow_settings(MLFLOW_HTTP_REQUEST_MAX_RETRIES=PREFLIGHT_RETRIES):
            client.search_experiments(max_results=1)
    except Exception as err:
        detail = str(err).splitlines()[0][:160] if str(err) else repr(err)
        raise TrackingError(f"cannot reach the MLflow tracking store {uri} ({detail} ...); "
                            "check the URI (an `mlflow server` address, or sqlite:///FILE.db) "
                            "or run without MLflow") from err
    return str(uri)


# -------------------------------------------------------------------------------- keys
def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def benchmark_key(results: dict[str, Any]) -> str:
    data = (results.get("provenance") or {}).get("data") or {}
    run = results["run"]
    return _digest(data.get("data_hash"), results["split"].get("sha256"), run.get("started"),
                   run.get("threshold_rule"))


def record_key(parent_key: str, record: dict[str, Any]) -> str:
    return _digest(parent_key, record["job_id"], record.get("finished"))


# ------------------------------------------------------------------------- what is logged
def _ms(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    return int(dt.datetime.fromisoformat(timestamp).timestamp() * 1000)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_TAG_CHARS]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def common_tags(results: dict[str, Any], parent_key: str) -> dict[str, str]:
    provenance = results.get("provenance") or {}
    data = provenance.get("data") or {}
    git = provenance.get("git") or {}
    return {
        BENCHMARK_TAG: parent_key,
        "cxrbench.data_hash": str(data.get("data_hash")),
        "cxrbench.synthetic": str(bool(data.get("synthetic"))).lower(),
        "cxrbench.split_sha256": str(results["split"].get("sha256")),
        "cxrbench.commit": str(git.get("commit")),
        "cxrbench.dirty": str(git.get("dirty")).lower(),
        "cxrbench.threshold_rule": str(results["run"].get("threshold_rule")),
        "cxrbench.version": str((results.get("tool") or {}).get("version")),
    }


def record_params(record: dict[str, Any]) -> dict[str, str]:
    params = {key: _text(record.get(key)) for key in
              ("model", "family", "framework", "seed", "image_size", "channels",
               "threshold_rule") if record.get(key) is not None}
    params.update({f"param.{k}": _text(v) for k, v in (record.get("params") or {}).items()})
    return params


def record_metrics(record: dict[str, Any], intervals: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for split in ("val", "test"):
        for name in METRICS:
            value = ((record.get("metrics") or {}).get(split) or {}).get(name)
            if _finite(value):
                metrics[f"{split}_{name}"] = float(value)
    for name, interval in ((intervals or {}).get("test") or {}).items():
        for side in ("low", "high"):
            if _finite((interval or {}).get(side)):
                metrics[f"test_{name}_{side}"] = float(interval[side])
    for name in TIMING_DIRECTIONS:
        if _finite((record.get("timing") or {}).get(name)):
            metrics[name] = float(record["timing"][name])
    for name in ("threshold", "n_params"):
        if _finite(record.get(name)):
            metrics[name] = float(record[name])
    return metrics


def record_tags(record: dict[str, Any]) -> dict[str, str]:
    plugin = record.get("plugin") or {}
    tags = {"cxrbench.job_id": record["job_id"], "cxrbench.status": record["status"],
            "cxrbench.plugin_class": str(plugin.get("class")),
            "cxrbench.plugin_file": str(plugin.get("file")),
            "cxrbench.plugin_sha256": str(plugin.get("sha256"))}
    error = record.get("error") or {}
    if error:
        tags["cxrbench.error"] = _text(f"{error.get('type')}: {error.get('message')}")
    if record.get("worker"):
        tags["cxrbench.worker"] = _text(record["worker"].get("address"))
    return tags


def parent_params(results: dict[str, Any]) -> dict[str, str]:
    run, split = results["run"], results["split"]
    data = (results.get("provenance") or {}).get("data") or {}
    values = {"models": run.get("models"), "seeds": run.get("seeds"),
              "threshold_rule": run.get("threshold_rule"), "suite": run.get("suite"),
              "executor": run.get("executor"), "val_fraction": split.get("val_fraction"),
              "split_seed": split.get("seed"), "split_strategy": split.get("strategy"),
              "data_path": data.get("path"), "data_kind": data.get("kind")}
    return {key: _text(value) for key, value in values.items() if value is not None}


# ---------------------------------------------------------------------------------- export
def _log(client: Any, run_id: str, params: dict[str, str], metrics: dict[str, float],
         tags: dict[str, str], timestamp: int, history: list[dict[str, Any]] | None = None
         ) -> None:
    from mlflow.entities import Metric, Param, RunTag

    entries = [Metric(k, v, timestamp, 0) for k, v in metrics.items()]
    for step, epoch in enumerate(history or []):
        entries += [Metric(f"history.{k}", float(v), timestamp, step)
                    for k, v in epoch.items() if _finite(v)]
    params_list = [Param(k, v) for k, v in params.items()]
    tags_list = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, max(len(entries), len(params_list), len(tags_list)), BATCH):
        client.log_batch(run_id, metrics=entries[i:i + BATCH], params=params_list[i:i + BATCH],
                         tags=tags_list[i:i + BATCH])


def _existing_runs(client: Any, experiment_id: str, parent_key: str) -> dict[str, Any]:
    """key -> run for this benchmark's runs; runs an interrupted export left unfinished are
    deleted (they are made again)."""
    runs: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{BENCHMARK_TAG}` = '{parent_key}'",
                                  max_results=1000, page_token=token)
        for run in page:
            if run.info.status in ("FINISHED", "FAILED"):
                runs[run.data.tags.get(KEY_TAG)] = run
            else:
                client.delete_run(run.info.run_id)
        token = page.token
        if not token:
            return runs


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise TrackingError(f"the MLflow experiment {name!r} is deleted; restore it "
                                "(mlflow experiments restore) or choose another --experiment")
        return str(found.experiment_id)
    return str(client.create_experiment(name))


def _report_files(results: dict[str, Any], folder: Path, scratch: Path) -> list[Path]:
    """The report and leaderboards beside the results file, rendered when absent."""
    names = ("report.html", "leaderboard.md", "leaderboard.csv")
    if all((folder / name).is_file() for name in names):
        return [folder / name for name in names]
    from cxrbench.report import render_report

    render_report(results, scratch / "report.html",
                  data_root=((results.get("provenance") or {}).get("data") or {}).get("path"))
    return [scratch / name for name in names]


def saved_model_folder(folder: Path, record: dict[str, Any]) -> Path | None:
    """The record's saved model folder (``model_artifact.path``, relative to the results
    file: ``OUT/models/<job_id>/``), if the run saved one and it is there."""
    relative = (record.get("model_artifact") or {}).get("path")
    if not relative:
        return None
    path = (folder / relative).resolve()
    return path if path.is_dir() and path.is_relative_to(folder.resolve()) else None


def export_results(results_path: str | Path, tracking_uri: str | None = None,
                   experiment: str = DEFAULT_EXPERIMENT) -> ExportSummary:
    """Log a results file to MLflow (see the module docstring); returns what was done."""
    results_path = Path(results_path)
    results = with_statistics(read_results(results_path))
    _mlflow()
    try:
        client = _client(tracking_uri)
        with _mlflow_settings(**QUIET):
            return _export(client, results, results_path, experiment)
    except TrackingError:
        raise
    except Exception as err:  # the store's own errors: unreachable, read-only, ...
        where = tracking_uri or "the default tracking URI"
        raise TrackingError(f"exporting {results_path} to MLflow ({where}) failed: "
                            f"{type(err).__name__}: {str(err)[:300]}") from err


def _export(client: Any, results: dict[str, Any], results_path: Path,
            experiment: str) -> ExportSummary:
    experiment_id = _experiment(client, experiment)
    parent_key = benchmark_key(results)
    existing = _existing_runs(client, experiment_id, parent_key)
    tags = common_tags(results, parent_key)
    run = results["run"]
    parent = existing.get(parent_key)
    if parent is None:  # new, or its parent was lost: children of a lost parent go with it
        for orphan in existing.values():
            client.delete_run(orphan.info.run_id)
        existing = {}
        parent = client.create_run(experiment_id, start_time=_ms(run.get("started")),
                                   run_name=f"cxrbench {run.get('suite') or 'run'} "
                                            f"{run.get('started')}",
                                   tags={**tags, KEY_TAG: parent_key})
        _log(client, parent.info.run_id, parent_params(results), {},
             {"cxrbench.command": _text(run.get("command"))}, _ms(run.get("started")) or 0)
    parent_id = parent.info.run_id
    summary = ExportSummary(str(client.tracking_uri), experiment_id, parent_id)
    intervals = (results.get("statistics") or {}).get("records") or {}
    for record in results["records"]:
        key = record_key(parent_key, record)
        if key in existing:
            summary.skipped.append(record["job_id"])
            continue
        child = client.create_run(
            experiment_id, start_time=_ms(record.get("started")), run_name=record["job_id"],
            tags={**tags, KEY_TAG: key, "mlflow.parentRunId": parent_id})
        finished = _ms(record.get("finished")) or 0
        _log(client, child.info.run_id, record_params(record),
             record_metrics(record, intervals.get(record["job_id"]) or {}), record_tags(record),
             finished, (record.get("fit_info") or {}).get("history"))
        model_folder = saved_model_folder(results_path.parent, record)
        if model_folder is not None:
            client.log_artifacts(child.info.run_id, str(model_folder), artifact_path="model")
        client.set_terminated(child.info.run_id,
                              status="FINISHED" if record["status"] == "ok" else "FAILED",
                              end_time=finished)
        summary.created.append(record["job_id"])
    if summary.created or parent_key not in existing:
        with tempfile.TemporaryDirectory(prefix="cxrbench-mlflow-") as scratch:
            files = [results_path, *_report_files(results, results_path.parent, Path(scratch))]
            split_plan = results_path.parent / str(results["split"].get("file") or "")
            if split_plan.is_file():
                files.append(split_plan)
            for path in files:
                client.log_artifact(parent_id, str(path))
        client.set_tag(parent_id, "cxrbench.status", str(run.get("status")))
        client.set_terminated(parent_id, status="FINISHED",
                              end_time=_ms(run.get("finished")) or None)
    return summary
