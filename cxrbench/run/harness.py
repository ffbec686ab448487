"""The harness: one split plan, every plugin x seed on it, each record saved as it finishes.

Flow: data -> records -> split plan (saved, hashed) -> image cache built once per size ->
jobs -> executor -> results.json rewritten atomically after every record -> report.html.
An interrupted run (Ctrl-C or SIGTERM) keeps what it finished, writes its partial report and
exits 130 or 143; a SIGKILLed one keeps every record written before the kill (writes are
atomic). ``resume=True`` skips finished jobs.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench import __version__
from cxrbench.data import DataError, Dataset, ImageCache, default_cache_dir, load_dataset
from cxrbench.plugins.registry import get_card, model_source
from cxrbench.provenance import collect_provenance, git_info, utc_now
from cxrbench.results.io import ResultsError, read_results, write_results
from cxrbench.run.config import RunConfig
from cxrbench.run.executors import ExecutorError, make_executor
from cxrbench.run.jobs import Job
from cxrbench.scoring.thresholds import parse_rule
from cxrbench.splits import SplitPlan, make_split_plan

RESULTS_FILE = "results.json"
SPLIT_FILE = "split_plan.json"
REPORT_FILE = "report.html"

EXIT_OK, EXIT_FAILED_RECORDS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class RunError(ValueError):
    """The run cannot start as configured (bad data, mismatched resume, ...)."""


class RunTerminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that executors clean up and finished records are kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def interrupted_exit_code(err: KeyboardInterrupt) -> int:
    """The shell convention, 128 + signal number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + getattr(err, "signum", signal.SIGINT)


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


def _check_both_classes(dataset: Dataset, plan: SplitPlan) -> None:
    labels = dataset.records.set_index("record_id")["label"]
    for split in ("train", "val", "test"):
        present = set(labels.loc[list(plan.ids(split))].tolist())
        if present != {0, 1}:
            names = {0: "NORMAL", 1: "PNEUMONIA"}
            have = ", ".join(names[c] for c in sorted(present)) or "no images"
            raise RunError(
                f"the {split} split of {dataset.root} has only {have}; a pneumonia benchmark "
                "needs both NORMAL and PNEUMONIA images in train, val and test. "
                "Add the missing class folder or check the data path."
            )


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


def prepare_cache(
    dataset: Dataset, plan: SplitPlan, cache: ImageCache, shapes: set[tuple[int, int]]
) -> set[str]:
    """Decode every image once per (size, channels), split by split, in plan order.

    Jobs then load each split as exactly one cached shard (a zero-copy memmap). Returns the
    record ids that could not be decoded; they are skipped, with a warning naming them.
    """
    records = dataset.records.set_index("record_id", drop=False)
    failed: dict[str, str] = {}
    for size, channels in sorted(shapes):
        for split in ("train", "val", "test"):
            subset = records.loc[list(plan.ids(split))]
            _log(f"cache: {split} ({len(subset)} images) at {size}px x {channels}ch")
            result = cache.load(subset, size, channels, progress=sys.stderr.isatty())
            for item in result.failed:
                failed[item["record_id"]] = item["reason"]
    for record_id, reason in sorted(failed.items()):
        _log(f"warning: skipping unreadable image {record_id}: {reason}")
    return set(failed)


def build_jobs(config: RunConfig, dataset: Dataset, plan: SplitPlan, plan_path: Path,
               cache_dir: Path) -> list[Job]:
    return [
        Job(
            model=spec.name,
            seed=seed,
            # The path as given (a manifest's root is its folder, not the CSV file itself).
            data_path=str(Path(config.data_path).expanduser().absolute()),
            data_hash=dataset.data_hash,
            split_plan_path=str(plan_path),
            split_sha256=plan.sha256,
            cache_dir=str(cache_dir),
            threshold_rule=config.threshold_rule,
            params=dict(spec.params),
            timeout_s=spec.timeout_s if spec.timeout_s is not None else config.timeout_s,
            plugin_source=model_source(spec.name),
        )
        for spec in config.models
        for seed in config.seeds
    ]


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
        "schema_version": 1,
        "tool": {"name": "cxrbench", "version": __version__},
        "run": {
            "models": [spec.name for spec in config.models],
            "seeds": list(config.seeds),
            "threshold_rule": config.threshold_rule,
            "suite": config.suite,
            "executor": config.executor,
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


def _resume_results(path: Path, dataset: Dataset, plan: SplitPlan) -> dict[str, Any]:
    try:
        previous = read_results(path)
    except ResultsError as err:
        raise RunError(f"cannot resume: {err} (The file was left as it is; to start the run "
                       "again pass --overwrite, or choose another --out.)") from err
    if previous["split"].get("sha256") != plan.sha256:
        raise RunError(
            f"cannot resume {path}: it was made on another split plan "
            f"({previous['split'].get('sha256', '?')[:12]} != {plan.sha256[:12]}); "
            "use a new --out folder"
        )
    if previous["provenance"].get("data", {}).get("data_hash") != dataset.data_hash:
        raise RunError(f"cannot resume {path}: the data changed since it was written")
    # Failed jobs are tried again; finished ones are kept as they are.
    previous["records"] = [r for r in previous["records"] if r["status"] == "ok"]
    return previous


def run_benchmark(
    config: RunConfig, on_record: Callable[[dict[str, Any]], None] | None = None
) -> tuple[Path, int]:
    """Run the configured jobs; returns the results path and the exit code."""
    parse_rule(config.threshold_rule)
    for spec in config.models:
        get_card(spec.name)  # unknown names fail before any work
    if not config.seeds:
        raise RunError("no seeds given")
    out_dir = Path(config.out_dir)
    results_path = out_dir / RESULTS_FILE
    if results_path.exists() and not (config.resume or config.overwrite):
        raise RunError(
            f"{results_path} already exists: pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    try:
        dataset = load_dataset(config.data_path, cache_dir=cache_dir)
    except DataError as err:
        raise RunError(str(err)) from err
    plan = make_split_plan(dataset.records, val_fraction=config.val_fraction,
                           seed=config.split_seed)
    _check_both_classes(dataset, plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_path = plan.save(out_dir / SPLIT_FILE)
    cache = ImageCache(cache_dir)
    shapes = set()
    for spec in config.models:
        card = get_card(spec.name)
        shapes.add((int(spec.params.get("input_size", card.input_size)),
                    int(spec.params.get("channels", card.channels))))
    failed = prepare_cache(dataset, plan, cache, shapes)

    session: dict[str, Any] | None = None
    if config.resume and results_path.exists():
        results = _resume_results(results_path, dataset, plan)
        results["run"]["status"] = "running"
        # The commit may have moved since the file was started: say which jobs ran at which.
        session = {"started": utc_now(), "git": git_info(), "jobs": []}
        results["run"].setdefault("resumed", []).append(session)
    else:
        results = _start_results(config, dataset, plan, failed)
    done = {r["job_id"] for r in results["records"]}
    jobs = [j for j in build_jobs(config, dataset, plan, plan_path, cache_dir)
            if j.job_id not in done]
    if done:
        _log(f"resume: {len(done)} finished job(s) kept, {len(jobs)} to run")
    executor = make_executor(config.executor, timeout_s=config.timeout_s,
                             **config.executor_options)  # a missing extra fails before writing
    write_results(results_path, results)
    exit_code = EXIT_OK
    try:
        with sigterm_as_interrupt():
            for i, record in enumerate(executor.run(jobs), start=1):
                results["records"].append(record)
                if session is not None:
                    session["jobs"].append(record["job_id"])
                write_results(results_path, results)
                _log(_describe(record, i, len(jobs)))
                if on_record is not None:
                    on_record(record)
        results["run"]["status"] = "complete"
    except KeyboardInterrupt as err:
        results["run"]["status"] = "interrupted"
        exit_code = interrupted_exit_code(err)
        _log(f"interrupted ({str(err) or 'Ctrl-C'}): {len(results['records'])} record(s) kept in "
             f"{results_path}; rerun with --resume to continue")
    except ExecutorError as err:  # e.g. no Dask scheduler at the address: misuse, exit 2
        results["run"]["status"] = "interrupted"
        write_results(results_path, results)
        raise RunError(f"{err} ({len(results['records'])} record(s) kept in {results_path}; "
                       "rerun with --resume once fixed)") from err
    results["run"]["finished"] = utc_now()
    if session is not None:
        session["finished"] = results["run"]["finished"]
    write_results(results_path, results)
    if config.report:
        from cxrbench.report import render_report

        render_report(results, out_dir / REPORT_FILE, data_root=dataset.root)
    if exit_code == EXIT_OK and any(r["status"] != "ok" for r in results["records"]):
        exit_code = EXIT_FAILED_RECORDS
    return results_path, exit_code


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
