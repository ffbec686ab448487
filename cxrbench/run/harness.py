"""The harness: one split plan, every plugin x seed on it, each record saved as it finishes.

Steps, one function each: validate the configuration and the folders it names -> lock the
output folder for the life of the run (``cxrbench.run.lock``: a second run on it fails at
once) -> check an existing results file (refused, or read to resume) -> load the data -> plan
the split and the jobs, and build the image cache once per input shape
(``cxrbench.run.plan``) -> only now, the run accepted, write into the output folder
(``cxrbench.run.output``): the split plan, then results.json after every record -> finish:
summary and statistics computed once, the final results and report.html written. An
interrupted run (Ctrl-C or SIGTERM) keeps what it finished and writes its partial report; a
SIGKILLed one keeps every record written before the kill (writes are atomic); a full,
read-only or forbidden output folder stops the run with one line saying what to do, its
finished records kept. ``resume=True`` skips finished jobs. ``run_benchmark`` returns a
``RunOutcome``; the CLI maps it to an exit code.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cxrbench.data import (
    DataError,
    Dataset,
    ImageCache,
    audit_dataset,
    default_cache_dir,
    load_dataset,
)
from cxrbench.files import (
    NotWritableError,
    check_writable_folder,
    is_write_fault,
    write_fault_message,
)
from cxrbench.plugins.contract import ParameterError, validate_params
from cxrbench.plugins.registry import (
    MissingRequirementsError,
    check_requirements,
    get_model_class,
)
from cxrbench.provenance import utc_now
from cxrbench.report.audit import audit_summary
from cxrbench.results.io import read_results
from cxrbench.run.cards import refresh_model_cards, saved_records
from cxrbench.run.config import RunConfig
from cxrbench.run.executors import Executor, ExecutorError, make_executor
from cxrbench.run.jobs import Job
from cxrbench.run.lock import OutputLock
from cxrbench.run.output import OutputWriteError, RunOutput
from cxrbench.run.plan import RunError, build_jobs, plan_split, prepare_cache
from cxrbench.run.session import check_resumable, existing_results, new_results, resume_results
from cxrbench.run.timing import RunClock, external_predict_seconds
from cxrbench.splits import SplitPlan
from cxrbench.stats import with_statistics
from cxrbench.stats.small_data import split_size_reasons, undefined_resample_reasons


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
def _validate(config: RunConfig, cache_dir: Path) -> None:
    """Checks what the configuration cannot check alone, before any data is read: model
    names, every hyperparameter against its plugin's declared type and range (converted in
    place, e.g. 4.0 -> 4 for an int), the modules each plugin requires (here, unless jobs run
    on Dask workers), and that the cache and output folders can be written."""
    problems = []
    for spec in config.models:
        cls = get_model_class(spec.name)  # unknown names fail before any work
        if "seed" in spec.params:
            problems.append(f"{spec.name}: seed is set by --seeds (or the suite's seeds), "
                            "not as a parameter")
            continue
        try:
            spec.params = validate_params(cls, spec.params)
        except ParameterError as err:
            problems.append(str(err))
    if problems:
        raise RunError(problems[0] if len(problems) == 1 else f"{len(problems)} invalid "
                       "parameters:\n" + "\n".join(f"- {p}" for p in problems))
    if config.executor != "dask":  # Dask workers may have what this client lacks (a GPU box)
        try:
            check_requirements(spec.name for spec in config.models)
        except MissingRequirementsError as err:
            raise RunError(str(err)) from err
    try:
        check_writable_folder(cache_dir, "cache folder", "--cache-dir")
        check_writable_folder(config.out_dir, "output folder", "--out")
    except NotWritableError as err:
        raise RunError(str(err)) from err


# ------------------------------------------------------------------------------------ load data
def _load_data(config: RunConfig, cache_dir: Path) -> Dataset:
    try:
        return load_dataset(config.data_path, cache_dir=cache_dir,
                            allow_outside_root=config.allow_outside_root)
    except DataError as err:
        raise RunError(str(err)) from err


def _prepare_cache(dataset: Dataset, plan: SplitPlan, cache_dir: Path, jobs: list[Job]
                   ) -> set[str]:
    """Every input shape the jobs need, decoded once, after checking that the cache's disk has
    room for them; a cache that cannot be written is a message (the image cache's own error,
    or one naming the folder), not a traceback."""
    cache = ImageCache(cache_dir)
    shapes = {(job.image_size, job.channels) for job in jobs}
    try:
        cache.check_space(dataset.records, shapes)  # before any image is decoded
        return prepare_cache(dataset, plan, cache, shapes)
    except DataError as err:
        raise RunError(str(err)) from err
    except OSError as err:
        if not is_write_fault(err):
            raise
        raise RunError(write_fault_message(
            err, "the image cache", err.filename or cache_dir,
            "pass --cache-dir (or set CXRBENCH_CACHE_DIR) on another disk")) from err


# -------------------------------------------------------------------------------------- execute
def _execute(executor: Executor, jobs: list[Job], results: dict[str, Any],
             session: dict[str, Any] | None, output: RunOutput,
             on_record: Callable[[dict[str, Any]], None] | None, clock: RunClock,
             ran: list[dict[str, Any]]) -> int | None:
    """Runs the jobs, saving each record as it arrives (no statistics: those come once, at
    the end). Returns the signal that interrupted the run, or None when every job ran.
    A fault writing the results (``OutputWriteError``) ends the run: see ``_stop_on_fault``."""
    records = executor.run(jobs)
    try:
        with sigterm_as_interrupt(), clock.part("jobs"):
            for i, record in enumerate(records, start=1):
                results["records"].append(record)
                ran.append(record)
                if session is not None:
                    session["jobs"].append(record["job_id"])
                with clock.part("results_writes"):
                    output.write(results)
                _log(_describe(record, i, len(jobs)))
                if on_record is not None:
                    on_record(record)
    except KeyboardInterrupt as err:
        _log(f"interrupted ({str(err) or 'Ctrl-C'}): {len(results['records'])} record(s) kept "
             f"in {output.results_path}; rerun with --resume to continue")
        return interrupting_signal(err)
    finally:
        getattr(records, "close", lambda: None)()  # stops the executor's jobs and cluster
    return None


def _stop_on_fault(err: OutputWriteError, results: dict[str, Any],
                   session: dict[str, Any] | None, output: RunOutput,
                   status: Literal["complete", "interrupted"]) -> RunError:
    """The run cannot write its results: write them once more from the reserve, with
    ``status``, and return the one-line error that says what happened and what to do."""
    _mark_ended(results, session, status)
    n = len(results["records"])
    if output.rescue(results):
        kept = (f"{n} record(s) kept in {output.results_path} (status {status}); "
                + ("rerun with --resume once fixed" if status == "interrupted"
                   else "`cxrbench report` recomputes its statistics once fixed"))
    else:
        kept = (f"{output.results_path} keeps its last complete state; rerun with --resume "
                "once fixed")
    return RunError(f"{err} ({kept})")


# --------------------------------------------------------------------------------------- finish
def _mark_ended(results: dict[str, Any], session: dict[str, Any] | None,
                status: Literal["complete", "interrupted"]) -> None:
    results["run"]["status"] = status
    results["run"]["finished"] = utc_now()
    if session is not None:
        session["finished"] = results["run"]["finished"]


def _finish(results: dict[str, Any], session: dict[str, Any] | None, output: RunOutput,
            status: Literal["complete", "interrupted"], clock: RunClock) -> dict[str, Any]:
    """Marks the run ended, computes its summary and statistics once, writes the file."""
    _mark_ended(results, session, status)
    with clock.part("statistics"):
        results = with_statistics(results)
    for reason in undefined_resample_reasons(results["statistics"]):
        _log(f"warning: small data: {reason}")
    try:
        with clock.part("results_writes"):
            output.write(results)
    except OutputWriteError as err:
        raise _stop_on_fault(err, results, session, output, status) from err
    return results


def _write_report(results: dict[str, Any], output: RunOutput, data_root: Path) -> Path:
    from cxrbench.report import render_report

    try:
        return render_report(results, output.report_path, data_root=data_root)
    except OSError as err:
        if not is_write_fault(err):
            raise
        where = Path(err.filename) if err.filename else output.report_path
        raise RunError(
            write_fault_message(err, "the report", where, "choose another --out")
            + f" ({output.results_path} holds the {results['run']['status']} run; "
            f"`cxrbench report {output.results_path} -o FILE` renders it once fixed)") from err


def run_benchmark(
    config: RunConfig, on_record: Callable[[dict[str, Any]], None] | None = None
) -> RunOutcome:
    """Run the configured jobs; returns what happened (see ``RunOutcome``).

    Raises ``RunError`` when the run cannot start (its output folder is in use or not
    writable, bad data, a refused resume, ...), before writing anything in its output folder,
    or when it cannot go on (its executor fails, its results cannot be written), with every
    finished record kept.
    """
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    missing = _missing_folders(config.out_dir)
    try:
        _validate(config, cache_dir)
        with OutputLock(config.out_dir, config.command) as lock:
            if lock.note:
                _log(f"note: {lock.note}")
            output = RunOutput(config.out_dir)
            try:
                return _run_locked(config, cache_dir, output, on_record)
            finally:
                output.drop_reserve()
    finally:
        for folder in missing:  # a refused run leaves no empty folder it created
            try:
                folder.rmdir()
            except OSError:
                break


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _run_locked(config: RunConfig, cache_dir: Path, output: RunOutput,
                on_record: Callable[[dict[str, Any]], None] | None) -> RunOutcome:
    clock = RunClock()
    previous = existing_results(config, output.results_path)
    with clock.part("load_data"):
        dataset = _load_data(config, cache_dir)
    with clock.part("split"):
        plan = plan_split(config, dataset)
    if previous is not None:
        check_resumable(previous, output.results_path, config, dataset, plan)
    jobs = build_jobs(config, dataset, plan, output.plan_path, cache_dir)
    with clock.part("image_cache"):
        failed = _prepare_cache(dataset, plan, cache_dir, jobs)
    failed |= {s.record_id for s in dataset.skipped_of("unreadable")}  # for provenance
    executor = make_executor(config.executor, timeout_s=config.timeout_s,
                             **config.executor_options)  # a missing extra fails before writing

    audit = None
    if config.audit:  # before the run is accepted: it only reads the data
        with clock.part("audit"):
            audit = audit_summary(audit_dataset(dataset, progress=True))

    # Accepted: from here on the run writes into its output folder.
    output.save_plan(plan)
    session = None
    if previous is not None:
        results, session = resume_results(previous, config)
    else:
        results = new_results(config, dataset, plan, failed)
    if audit is not None:
        results["data_audit"] = audit
    for reason in split_size_reasons(results):
        _log(f"warning: small data: {reason}")
    done = {r["job_id"] for r in results["records"]}
    jobs = [job for job in jobs if job.job_id not in done]
    if done:
        _log(f"resume: {len(done)} finished job(s) kept, {len(jobs)} to run")
    output.write(results)  # a fault here: nothing new to keep, the previous file is intact
    ran: list[dict[str, Any]] = []  # the records this session ran (for its timing)
    try:
        signum = _execute(executor, jobs, results, session, output, on_record, clock, ran)
    except ExecutorError as err:  # e.g. no Dask scheduler at the address: misuse
        results = _finish(results, session, output, "interrupted", clock)
        raise RunError(f"{err} ({len(results['records'])} record(s) kept in "
                       f"{output.results_path}; rerun with --resume once fixed)") from err
    except OutputWriteError as err:
        raise _stop_on_fault(err, results, session, output, "interrupted") from err
    results = _finish(results, session, output,
                      "complete" if signum is None else "interrupted", clock)
    if config.external and signum is None:
        with clock.part("external"):
            results = _score_external_sets(config, cache_dir, output.results_path)
    if saved_records(results):
        with clock.part("model_cards"):
            refresh_model_cards(results, output.folder)
    report_path = None
    if config.report:
        with clock.part("report"):
            report_path = _write_report(results, output, dataset.root)
    # The timing is written last, with the report's share; this one rewrite is not in it.
    scored = [spec.name for spec in config.external] if signum is None else []
    results["run"]["timing"] = clock.summary(
        ran, external_predict_s=external_predict_seconds(results, scored))
    try:
        output.write(results)
    except OutputWriteError as err:  # the results are complete already, only timing is lost
        _log(f"warning: the run's timing was not written: {err}")
    _log(_describe_timing(results["run"]["timing"]))
    n_ok = sum(r["status"] == "ok" for r in results["records"])
    return RunOutcome(results_path=output.results_path, report_path=report_path,
                      status=results["run"]["status"], n_ok=n_ok,
                      n_failed=len(results["records"]) - n_ok, signal=signum)


def _score_external_sets(config: RunConfig, cache_dir: Path,
                         results_path: Path) -> dict[str, Any]:
    """``--external NAME=PATH``: each set scored by the saved models, as `cxrbench evaluate`
    does (one code path); a set that cannot be scored is an error entry, logged."""
    from cxrbench.run.evaluate import EvaluateError, evaluate_run

    for spec in config.external:
        try:
            outcome = evaluate_run(config.out_dir, spec.path, name=spec.name,
                                   cache_dir=cache_dir, command=config.command, report=False,
                                   take_lock=False,  # the run holds its folder's lock
                                   cards=False,  # written once, after every set
                                   allow_outside_root=config.allow_outside_root)
        except EvaluateError as err:
            _log(f"external {spec.name}: not evaluated: {err}")
            continue
        if outcome.status == "error":
            _log(f"external {spec.name}: ERROR {outcome.message}")
    return read_results(results_path)


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
