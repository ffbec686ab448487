"""``cxrbench run``: every selected plugin x seed on one split plan; results.json + report.html."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from cxrbench.cli.common import (
    Formatter,
    add_plugins_argument,
    fail,
    parse_int_list,
    resolve_data,
)
from cxrbench.cli.export import add_mlflow_options, print_summary
from cxrbench.run.config import (
    DEFAULT_EXECUTOR,
    DEFAULT_SEEDS,
    DEFAULT_SPLIT_SEED,
    DEFAULT_SUITE,
    DEFAULT_THRESHOLD_RULE,
    DEFAULT_VAL_FRACTION,
    EXECUTORS,
    check_timeout,
)

EXIT_OK, EXIT_FAILED_JOBS, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  cxrbench run --data /data/chest_xray --models hog_svm,majority --seeds 0 --out out/
  cxrbench run --data /data/chest_xray --suite full --out out/full
  cxrbench run --models 'hog_*' --seeds 0,1,2 --out out/ --resume     # data from $CXRBENCH_DATA
  cxrbench run --models hog_svm --param 'hog_svm.cells=[16]' --threshold-rule sensitivity:0.95
  cxrbench run --models 'hog_*,cnn_*' --timeout 600,cnn_seed=3600 --out out/
  cxrbench run --models hog_svm,hog_xgboost --save-models --out out/   # + OUT/models/<job_id>/
  cxrbench run --models hog_svm --external hospital_b=/data/hosp_b --external covid=/data/c.csv
  cxrbench run --models hog_svm --seeds 0,1 --executor dask --dask-workers 2 --out out/
  cxrbench run --suite full --executor dask --scheduler tcp://10.0.0.5:8786 \\
      --cache-dir /shared/cxrcache --dask-gpu-resource GPU=1 --out out/full
  cxrbench run --models my_model,hog_svm --plugins my_model.py --out out/   # a local plugin file
  cxrbench run --models hog_svm --mlflow sqlite:///mlflow.db --out out/    # then log to MLflow

exit codes: 0 all jobs ok, 1 some jobs failed or timed out (listed in the results and the
report), 2 bad usage or data (or a --mlflow export that failed after the run; the results are
kept), 130 interrupted by Ctrl-C, 143 by SIGTERM (finished records and a partial report are
kept; rerun with --resume to continue).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run plugins x seeds and write results + report",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("--data", help="data folder or CSV manifest (default: $CXRBENCH_DATA)")
    p.add_argument("--suite", help="built-in suite name (quick, full, ...) or a .toml path "
                   f"(default: {DEFAULT_SUITE!r} when --models is not given)")
    p.add_argument("--models", help="comma-separated names or patterns, e.g. 'hog_*,majority'")
    p.add_argument("--seeds", type=parse_int_list, help="comma-separated seeds (default: the "
                   f"suite's, else {','.join(map(str, DEFAULT_SEEDS))})")
    p.add_argument("--out", default="out", help="output folder for results.json and report.html")
    p.add_argument("--resume", action="store_true", help="continue a run: skip finished jobs")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results.json")
    p.add_argument("--threshold-rule", help="'fixed:0.5', 'youden' or 'sensitivity:0.95' "
                   "(chosen on validation; default: the suite's, else "
                   f"{DEFAULT_THRESHOLD_RULE})")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help="validation share of train")
    p.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED,
                   help="seed of the split plan")
    p.add_argument("--cache-dir", help="image/feature cache (default: $CXRBENCH_CACHE_DIR or "
                   "~/.cache/cxrbench)")
    p.add_argument("--executor", default=DEFAULT_EXECUTOR, choices=EXECUTORS,
                   help="where jobs run")
    p.add_argument("--timeout", metavar="SECONDS|MODEL=SECONDS,...",
                   help="per-job timeout: '600' for every job, 'cnn_seed=3600' for one model, "
                   "or both, comma-separated (overrides the suite's timeout_s)")
    dask = p.add_argument_group("dask (with --executor dask; needs the cxrbench[dask] extra)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="address of an existing Dask scheduler; without it a local "
                      "cluster lives for the run")
    dask.add_argument("--dask-workers", type=int, metavar="N",
                      help="worker processes of the local cluster; one per core if not given")
    dask.add_argument("--dask-gpu-resource", nargs="?", const="GPU=1", metavar="NAME=COUNT",
                      help="pin jobs whose card sets accelerator (the Keras plugins) to workers "
                      "advertising "
                      "this Dask resource, e.g. started with `dask worker ADDR --resources "
                      "GPU=1` (flag alone: GPU=1; on a local cluster one worker advertises it)")
    dask.add_argument("--worker-cache-dir", metavar="PATH",
                      help="image cache folder on the workers when they do not share the "
                      "client's file system; the --cache-dir path if not given")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.KEY=VALUE",
                   help="override a hyperparameter; VALUE is JSON: 8, 0.5, true, null, "
                   "[16, 24], \"rbf\" (an unknown KEY is answered with the valid ones)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--audit", action="store_true",
                   help="audit the data (unreadable images, duplicates within and across "
                   "splits and labels, patients in several splits, odd sizes) before the jobs, "
                   "into the results and the report's Data audit section; decodes every image "
                   "once more")
    p.add_argument("--save-models", action="store_true",
                   help="save each fitted model to OUT/models/<job_id>/ (model.json with every "
                   "file's sha256, weights in formats that load without executing code), for "
                   "`cxrbench evaluate` and `cxrbench predict` (also: save_models = true in a "
                   "suite)")
    p.add_argument("--external", action="append", default=[], metavar="NAME=PATH",
                   help="after the jobs, score every saved model on this labelled external set "
                   "(any layout cxrbench reads; every image is a test image) at its validation "
                   "threshold, as `cxrbench evaluate` does; repeatable; implies --save-models")
    add_data_options(p)
    add_plugins_argument(p)
    tracking = p.add_argument_group("MLflow (needs the cxrbench[mlflow] extra)")
    tracking.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                          help="when the run ends, log it to MLflow (one run per record under a "
                          "parent run, as `cxrbench export mlflow`); URI: the tracking store, "
                          "checked before the run (flag alone: $MLFLOW_TRACKING_URI, else "
                          "MLflow's default)")
    add_mlflow_options(tracking, "--mlflow", "--mlflow-experiment")
    p.set_defaults(handler=run)


def add_data_options(p: argparse.ArgumentParser) -> None:
    """How a data set is read and split (flags of the data layer)."""
    data = p.add_argument_group("data")
    data.add_argument("--allow-outside-root", action="store_true",
                      help="let a CSV manifest list files outside its own folder (refused by "
                      "default: a manifest's data root is its folder)")
    data.add_argument("--carve-test", action="store_true",
                      help="when the data has splits but no test rows, carve a test split "
                      "from train by patient (an error otherwise)")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")
def parse_external(items: list[str]) -> list[Any]:
    """``["hosp_b=/data/b", ...]`` -> ExternalSpecs (a missing path is refused before work)."""
    from cxrbench.run.config import ExternalSpec

    specs = []
    for item in items:
        name, sep, path = item.partition("=")
        if not (sep and name and path):
            raise ValueError(f"--external {item!r} must look like NAME=PATH, e.g. "
                             "hospital_b=/data/hospital_b")
        spec = ExternalSpec(name.strip(), Path(path))
        if not spec.path.exists():
            raise ValueError(f"--external {item!r}: {spec.path} does not exist")
        specs.append(spec)
    return specs


def parse_param_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["hog_svm.cells=[16]"]`` -> {"hog_svm": {"cells": [16]}}; each VALUE must be JSON."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        model, dot, param = key.partition(".")
        if not (sep and dot and model and param):
            raise ValueError(f"--param {item!r} must look like MODEL.KEY=VALUE, e.g. "
                             "--param 'hog_svm.cells=[16]'")
        try:
            parsed = json.loads(value, parse_constant=_not_json)
        except ValueError as err:
            raise ValueError(
                f"--param {item!r}: {value!r} is not a JSON value ({err}); write numbers as "
                "8 or 0.5, true/false, null, lists as [16, 24], and quote strings: "
                f"--param '{key}=\"{value}\"'") from None
        overrides.setdefault(model, {})[param] = parsed
    return overrides


def parse_timeouts(text: str | None) -> tuple[float | None, dict[str, float]]:
    """``"600,cnn_seed=3600"`` -> (600.0, {"cnn_seed": 3600.0})."""
    default: float | None = None
    per_model: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        model, sep, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--timeout {item!r}: expected SECONDS or MODEL=SECONDS") from None
        seconds = float(check_timeout(number, f"--timeout {item!r}"))  # finite, positive
        if sep:
            per_model[model] = seconds
        else:
            default = seconds
    return default, per_model


def parse_resource(text: str) -> dict[str, float]:
    """``"GPU=1"`` -> {"GPU": 1.0}; a bare name counts 1."""
    name, sep, value = text.partition("=")
    try:
        amount = float(value) if sep else 1.0
    except ValueError:
        amount = -1.0
    if not name.strip() or amount <= 0:
        raise ValueError(f"--dask-gpu-resource {text!r}: expected NAME=COUNT, e.g. GPU=1")
    return {name.strip(): amount}


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options for the chosen executor; Dask-only options without --executor dask are misuse."""
    given = {
        "scheduler": args.scheduler,
        "n_workers": args.dask_workers,
        "resources": parse_resource(args.dask_gpu_resource) if args.dask_gpu_resource else None,
        "worker_cache_dir": args.worker_cache_dir,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if given and args.executor != "dask":
        flags = ", ".join("--" + {"n_workers": "dask-workers", "resources": "dask-gpu-resource"}
                          .get(key, key.replace("_", "-")) for key in given)
        raise ValueError(f"{flags}: for the Dask executor only; add --executor dask")
    if "scheduler" in given and "n_workers" in given:
        raise ValueError("--dask-workers sizes the local cluster; with --scheduler the "
                         "cluster's own workers are used")
    if given.get("n_workers", 1) < 1:
        raise ValueError("--dask-workers must be at least 1")
    return given


def benchmark_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The options as ``cxrbench.benchmark()`` arguments (the API's defaults are RunConfig's)."""
    data = resolve_data(args.data)
    if data is None:
        raise ValueError("no data: pass --data PATH or set CXRBENCH_DATA "
                         "(or try `cxrbench demo` for an offline synthetic run)")
    default_timeout, model_timeouts = parse_timeouts(args.timeout)
    return {
        "data": data,
        "models": args.models or None,
        "seeds": args.seeds,
        "out": Path(args.out),
        "suite": args.suite,
        "params": parse_param_overrides(args.param),
        "threshold_rule": args.threshold_rule,
        "val_fraction": args.val_fraction,
        "split_seed": args.split_seed,
        "cache_dir": Path(args.cache_dir) if args.cache_dir else None,
        "executor": args.executor,
        "executor_options": executor_options(args),
        "timeout": default_timeout,
        "model_timeouts": model_timeouts,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "report": not args.no_report,
        "plugins": args.plugins,
        "allow_outside_root": args.allow_outside_root,
        "carve_test": args.carve_test,
        "audit": args.audit,
        "mlflow": args.mlflow,
        "mlflow_experiment": args.mlflow_experiment,
        "save_models": args.save_models,
        "external": parse_external(args.external),
        "command": getattr(args, "command_line", None),
    }


def interrupted_exit_code(signum: int) -> int:
    """The shell convention, 128 + signal number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + signum


def exit_code(outcome: Any) -> int:
    """A ``RunOutcome`` as an exit code: 0 all ok, 1 some jobs failed, 128 + N on signal N."""
    if outcome.interrupted:
        return interrupted_exit_code(outcome.signal or signal.SIGINT)
    return EXIT_FAILED_JOBS if outcome.n_failed else EXIT_OK


def print_outcome(outcome: Any) -> None:
    print(outcome.results_path)
    if outcome.report_path is not None:
        print(outcome.report_path)


def run(args: argparse.Namespace) -> int:
    from cxrbench.api import MlflowExportWarning, benchmark
    from cxrbench.plugins.registry import UnknownModelError
    from cxrbench.run.harness import RunError, interrupting_signal

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MlflowExportWarning)
            result = benchmark(**benchmark_arguments(args))
    except (RunError, UnknownModelError, ValueError) as err:  # ConfigError, SuiteError too
        return fail(str(err), EXIT_USAGE)
    except KeyboardInterrupt as err:  # before any job ran: nothing new to keep
        print("interrupted", file=sys.stderr)
        return interrupted_exit_code(interrupting_signal(err))
    assert result.outcome is not None
    print_outcome(result.outcome)
    for warning in caught:
        if not issubclass(warning.category, MlflowExportWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    if result.mlflow is not None:
        print_summary(result.mlflow, args.mlflow_experiment)
    elif args.mlflow is not None:  # the run is done, its export failed: exit 2, results kept
        failed = [str(w.message) for w in caught if issubclass(w.category, MlflowExportWarning)]
        fail("; ".join(failed) or "the MLflow export failed")
        return exit_code(result.outcome) or EXIT_USAGE
    return exit_code(result.outcome)
