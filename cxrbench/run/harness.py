"""The harness: one split plan, every plugin x seed on it, each record saved as it finishes.

Steps, one function each: validate the configuration -> load the data -> plan the split and
the jobs, and build the image cache once per input shape (``cxrbench.run.plan``) -> open the
results (new, or resumed) -> execute the jobs, writing results.json atomically after every
record -> finish: summary and statistics computed once, the final results and report.html
written. An interrupted run
(Ctrl-C or SIGTERM) keeps what it finished and writes its partial report; a SIGKILLed one
keeps every record written before the kill (writes are atomic). ``resume=True`` skips
finished jobs. ``run_benchmark`` returns a ``RunOutcome``; the CLI maps it to an exit code.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cxrbench import __version__
from cxrbench.data import DataError, Dataset, ImageCache, default_cache_dir, load_dataset
from cxrbench.plugins.registry import get_card
from cxrbench.provenance import collect_provenance, cpu_model, git_info, utc_now
from cxrbench.results.io import ResultsError, read_results, write_results
from cxrbench.results.schema import SCHEMA_VERSION
from cxrbench.run.config import RunConfig
from cxrbench.run.executors import Executor, ExecutorError, make_executor
from cxrbench.run.jobs import Job
from cxrbench.run.plan import RunError, build_jobs, plan_split, prepare_cache
from cxrbench.run.timing import RunClock
from cxrbench.scoring.thresholds import canonical_rule
from cxrbench.splits import SplitPlan
from cxrbench.stats import with_statistics

RESULTS_FILE = "results.json"
SPLIT_FILE = "split_plan.json"
REPORT_FILE = "report.html"


class RunTerminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that executors clean up and finished records are kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def interrupting_signal(err: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGTERM for ``RunTerminated``, else SIGINT (Ctrl-C)."""
    return int(getattr(err, "signum", signal.SIGINT))


@dataclass(frozen=True)
class RunOutcome:
    """What a run did. ``signal`` is the number of the signal that interrupted it, if any."""

    results_path: Path
    report_path: Path | None
    status: Literal["complete", "interrupted"]
    n_ok: int
    n_failed: int  # error and timeout records
    signal: int | None = None

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``RunTerminated`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise RunTerminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- validate
def _validate(config: RunConfig) -> Path:
    """Checks what the configuration cannot check alone; returns the results path."""
    for spec in config.models:
        get_card(spec.name)  # unknown names fail before any work
    results_path = config.out_dir / RESULTS_FILE
    if results_path.exists() and not (config.resume or config.overwrite):
        raise RunError(
            f"{results_path} already exists: pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    return results_path


# ------------------------------------------------------------------------------------ load data
def _load_data(config: RunConfig, cache_dir: Path) -> Dataset:
    try:
        return load_dataset(config.data_path, cache_dir=cache_dir,
                            allow_outside_root=config.allow_outside_root)
    except DataError as err:
        raise RunError(str(err)) from err


# --------------------------------------------------------------------------------- open results
def _evaluation_section(dataset: Dataset, plan: SplitPlan, failed: set[str]) -> dict[str, Any]:
    records = dataset.records.set_index("record_id")
    section = {}
    for split in ("val", "test"):
        ids = [i for i in plan.ids(split) if i not in failed]
        section[split] = {
            "ids": ids,
            "labels": records.loc[ids, "label"].astype(int).tolist(),
            "groups": records.loc[ids, "patient_id"].astype(str).tolist(),
        }
    return section


def _start_results(config: RunConfig, dataset: Dataset, plan: SplitPlan,
                   failed: set[str]) -> dict[str, Any]:
    provenance = collect_provenance()
    provenance["data"] = {
        "path": str(dataset.root),
        "kind": dataset.kind,
        "data_hash": dataset.data_hash,
        "synthetic": dataset.synthetic,
        "n_records": len(dataset.records),
        "unreadable": sorted(failed),
    }
    provenance["split_sha256"] = plan.sha256
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "cxrbench", "version": __version__},
        "run": {
            "models": [spec.name for spec in config.models],
            "seeds": list(config.seeds),
            "threshold_rule": str(config.threshold_rule),
            "suite": config.suite,
            "executor": config.executor,
            "command": config.command,
            "status": "running",
            "started": utc_now(),
            "finished": None,
        },
        "provenance": provenance,
        "split": {
            "sha256": plan.sha256,
            "seed": plan.seed,
            "val_fraction": plan.val_fraction,
            "strategy": plan.strategy,
            "counts": plan.counts(dataset.records),
            "file": SPLIT_FILE,
        },
        "evaluation": _evaluation_section(dataset, plan, failed),
        "records": [],
    }


def _previous_results(path: Path, config: RunConfig, dataset: Dataset,
                      plan: SplitPlan) -> dict[str, Any]:
    """The results file to resume, checked against this run's data, split plan and rule."""
    try:
        previous = read_results(path)
    except ResultsError as err:
        raise RunError(f"cannot resume: {err} (The file was left as it is; to start the run "
                       "again pass --overwrite, or choose another --out.)") from err
    if previous["split"].get("sha256") != plan.sha256:
        raise RunError(
            f"cannot resume {path}: it was made on another split plan "
            f"({str(previous['split'].get('sha256', '?'))[:12]} != {plan.sha256[:12]}); "
            "use a new --out folder"
        )
    if (previous["provenance"].get("data") or {}).get("data_hash") != dataset.data_hash:
        raise RunError(f"cannot resume {path}: the data changed since it was written")
    rule = previous["run"].get("threshold_rule")
    if rule is not None and canonical_rule(rule) != str(config.threshold_rule):
        raise RunError(f"cannot resume {path}: it was run with threshold rule "
                       f"{canonical_rule(rule)}, not {config.threshold_rule}; pass "
                       f"--threshold-rule {canonical_rule(rule)} or use a new --out folder")
    return previous


def _resume(previous: dict[str, Any], config: RunConfig) -> tuple[dict[str, Any], dict]:
    """Continue ``previous``: failed jobs are tried again, finished ones kept as they are.

    The session records who continued the run, where and at which commit (it may have moved
    since the file was started), and which jobs it ran.
    """
    results = {k: v for k, v in previous.items() if k not in ("summary", "statistics")}
    results["records"] = [r for r in previous["records"] if r["status"] == "ok"]
    results["run"]["status"] = "running"
    results["run"]["threshold_rule"] = str(config.threshold_rule)  # older files: "0.5"
    session: dict[str, Any] = {"started": utc_now(), "command": config.command,
                               "hostname": socket.gethostname(), "cpu_model": cpu_model(),
                               "git": git_info(), "jobs": []}
    results["run"].setdefault("resumed", []).append(session)
    return results, session


# -------------------------------------------------------------------------------------- execute
def _execute(executor: Executor, jobs: list[Job], results: dict[str, Any],
             session: dict[str, Any] | None, results_path: Path,
             on_record: Callable[[dict[str, Any]], None] | None, clock: RunClock,
             ran: list[dict[str, Any]]) -> int | None:
    """Runs the jobs, saving each record as it arrives (no statistics: those come once, at
    the end). Returns the signal that interrupted the run, or None when every job ran."""
    try:
        with sigterm_as_interrupt(), clock.part("jobs"):
            for i, record in enumerate(executor.run(jobs), start=1):
                results["records"].append(record)
                ran.append(record)
                if session is not None:
                    session["jobs"].append(record["job_id"])
                with clock.part("results_writes"):
                    write_results(results_path, results)
                _log(_describe(record, i, len(jobs)))
                if on_record is not None:
                    on_record(record)
    except KeyboardInterrupt as err:
        _log(f"interrupted ({str(err) or 'Ctrl-C'}): {len(results['records'])} record(s) kept "
             f"in {results_path}; rerun with --resume to continue")
        return interrupting_signal(err)
    return None


# --------------------------------------------------------------------------------------- finish
def _finish(results: dict[str, Any], session: dict[str, Any] | None, results_path: Path,
            status: Literal["complete", "interrupted"], clock: RunClock) -> dict[str, Any]:
    """Marks the run ended, computes its summary and statistics once, writes the file."""
    results["run"]["status"] = status
    results["run"]["finished"] = utc_now()
    if session is not None:
        session["finished"] = results["run"]["finished"]
    with clock.part("statistics"):
        results = with_statistics(results)
    with clock.part("results_writes"):
        write_results(results_path, results)
    return results


def run_benchmark(
    config: RunConfig, on_record: Callable[[dict[str, Any]], None] | None = None
) -> RunOutcome:
    """Run the configured jobs; returns what happened (see ``RunOutcome``).

    Raises ``RunError`` when the run cannot start (or its executor fails), before any job.
    """
    clock = RunClock()
    results_path = _validate(config)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    with clock.part("load_data"):
        dataset = _load_data(config, cache_dir)
    with clock.part("split"):
        plan = plan_split(config, dataset)
    previous = (_previous_results(results_path, config, dataset, plan)
                if config.resume and results_path.exists() else None)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    plan_path = plan.save(config.out_dir / SPLIT_FILE)  # after a resume has been accepted
    jobs = build_jobs(config, dataset, plan, plan_path, cache_dir)
    with clock.part("image_cache"):
        failed = prepare_cache(dataset, plan, ImageCache(cache_dir),
                               {(job.image_size, job.channels) for job in jobs})
    failed |= {s.record_id for s in dataset.skipped_of("unreadable")}  # for provenance

    session = None
    if previous is not None:
        results, session = _resume(previous, config)
    else:
        results = _start_results(config, dataset, plan, failed)
    done = {r["job_id"] for r in results["records"]}
    jobs = [job for job in jobs if job.job_id not in done]
    if done:
        _log(f"resume: {len(done)} finished job(s) kept, {len(jobs)} to run")
    executor = make_executor(config.executor, timeout_s=config.timeout_s,
                             **config.executor_options)  # a missing extra fails before writing
    write_results(results_path, results)
    ran: list[dict[str, Any]] = []
    try:
        signum = _execute(executor, jobs, results, session, results_path, on_record, clock,
                          ran)
    except ExecutorError as err:  # e.g. no Dask scheduler at the address: misuse
        results = _finish(results, session, results_path, "interrupted", clock)
        raise RunError(f"{err} ({len(results['records'])} record(s) kept in {results_path}; "
                       "rerun with --resume once fixed)") from err
    results = _finish(results, session, results_path,
                      "complete" if signum is None else "interrupted", clock)
    report_path = None
    if config.report:
        from cxrbench.report import render_report

        with clock.part("report"):
            report_path = render_report(results, config.out_dir / REPORT_FILE,
                                        data_root=dataset.root)
    # The timing is written last, with the report's share; this one rewrite is not in it.
    results["run"]["timing"] = clock.summary(ran)
    write_results(results_path, results)
    _log(_describe_timing(results["run"]["timing"]))
    n_ok = sum(r["status"] == "ok" for r in results["records"])
    return RunOutcome(results_path=results_path, report_path=report_path,
                      status=results["run"]["status"], n_ok=n_ok,
                      n_failed=len(results["records"]) - n_ok, signal=signum)


def _describe_timing(timing: dict[str, Any]) -> str:
    share = timing["harness_fraction"]
    return (f"time: {timing['wall_s']:.1f} s in all, {timing['plugin_s']:.1f} s in the plugins' "
            f"fit and predict, {timing['harness_s']:.1f} s harness"
            + (f" ({100 * share:.1f} %)" if share is not None else ""))


def _describe(record: dict[str, Any], i: int, n: int) -> str:
    prefix = f"[{i}/{n}] {record['job_id']}"
    if record["status"] != "ok":
        err = record.get("error") or {}
        return f"{prefix}: {record['status'].upper()} {err.get('type')}: {err.get('message')}"
    test = record["metrics"]["test"]
    auc = test.get("roc_auc")
    auc_text = "nan" if auc is None or not np.isfinite(auc) else f"{auc:.3f}"
    return (f"{prefix}: test AUC {auc_text}, acc {test['accuracy']:.3f}, "
            f"fit {record['timing']['fit_s']:.1f}s")
