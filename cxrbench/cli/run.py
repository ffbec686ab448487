"""``cxrbench run``: every selected plugin x seed on one split plan; results.json + report.html."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cxrbench.cli.common import Formatter, fail, parse_int_list, resolve_data

EXAMPLES = """examples:
  cxrbench run --data /data/chest_xray --models hog_svm,majority --seeds 0 --out out/
  cxrbench run --data /data/chest_xray --suite full --out out/full
  cxrbench run --models 'hog_*' --seeds 0,1,2 --out out/ --resume     # data from $CXRBENCH_DATA
  cxrbench run --models hog_svm --param hog_svm.cell_size=8 --threshold-rule sensitivity:0.95

exit codes: 0 all jobs ok, 1 some jobs failed (listed in the results and the report),
2 bad usage or data, 130 interrupted (finished records are kept; use --resume).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run plugins x seeds and write results + report",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("--data", help="data folder or CSV manifest (default: $CXRBENCH_DATA)")
    p.add_argument("--suite", help="built-in suite name (quick, full, ...) or a .toml path; "
                   "default 'quick' when --models is not given")
    p.add_argument("--models", help="comma-separated names or patterns, e.g. 'hog_*,majority'")
    p.add_argument("--seeds", type=parse_int_list, help="comma-separated seeds (default: suite's)")
    p.add_argument("--out", default="out", help="output folder for results.json and report.html")
    p.add_argument("--resume", action="store_true", help="continue a run: skip finished jobs")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results.json")
    p.add_argument("--threshold-rule", help="'0.5', 'youden' or 'sensitivity:0.95' "
                   "(chosen on validation; default: the suite's, else youden)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="validation share of train")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split plan")
    p.add_argument("--cache-dir", help="image/feature cache (default: $CXRBENCH_CACHE_DIR or "
                   "~/.cache/cxrbench)")
    p.add_argument("--executor", default="process", choices=["process", "inline", "dask"],
                   help="where jobs run")
    p.add_argument("--scheduler", help="Dask scheduler address (with --executor dask)")
    p.add_argument("--timeout", type=float, help="per-job timeout in seconds")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.KEY=VALUE",
                   help="override a hyperparameter (VALUE parsed as JSON, else a string)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.set_defaults(handler=run)


def parse_param_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        model, dot, param = key.partition(".")
        if not (sep and dot and model and param):
            raise ValueError(f"--param {item!r} must look like MODEL.KEY=VALUE")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        overrides.setdefault(model, {})[param] = parsed
    return overrides


def build_config(args: argparse.Namespace) -> Any:
    from cxrbench.harness import ModelSpec, RunConfig
    from cxrbench.registry import expand_model_patterns
    from cxrbench.suite import load_suite

    data = resolve_data(args.data)
    if data is None:
        raise ValueError("no data: pass --data PATH or set CXRBENCH_DATA "
                         "(or try `cxrbench demo` for an offline synthetic run)")
    suite = load_suite(args.suite or "quick") if (args.suite or not args.models) else None
    if args.models:
        specs = [ModelSpec(name) for name in expand_model_patterns(args.models)]
    else:
        assert suite is not None
        specs = suite.models
    overrides = parse_param_overrides(args.param)
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"--param names model(s) not in this run: {sorted(unknown)}")
    for spec in specs:
        spec.params.update(overrides.get(spec.name, {}))
    executor_options = {"scheduler": args.scheduler} if args.scheduler else {}
    return RunConfig(
        data_path=data,
        models=specs,
        seeds=args.seeds or (suite.seeds if suite else [0]),
        out_dir=Path(args.out),
        threshold_rule=args.threshold_rule or (suite.threshold_rule if suite else None)
        or "youden",
        val_fraction=args.val_fraction,
        split_seed=args.split_seed,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        executor=args.executor,
        executor_options=executor_options,
        timeout_s=args.timeout if args.timeout is not None
        else (suite.timeout_s if suite else None),
        resume=args.resume,
        overwrite=args.overwrite,
        suite=suite.name if suite else None,
        report=not args.no_report,
    )


def run(args: argparse.Namespace) -> int:
    from cxrbench.harness import RunError, run_benchmark
    from cxrbench.registry import UnknownModelError
    from cxrbench.suite import SuiteError

    try:
        config = build_config(args)
        results_path, code = run_benchmark(config)
    except (RunError, SuiteError, UnknownModelError, ValueError) as err:
        return fail(str(err))
    print(results_path)
    if config.report:
        print(results_path.with_name("report.html"))
    return code
