"""``cxrbench demo``: offline, no download: generate a SYNTHETIC set and run the demo suite."""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrbench.cli.common import Formatter, fail

DEMO_SUITE = "demo"
DEMO_OUT = "demo-out"

EXAMPLES = """examples:
  cxrbench demo                      # writes demo-out/results.json and demo-out/report.html
  cxrbench demo --out /tmp/demo --models majority,pixels_logreg
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="offline demo on generated synthetic X-ray-like images",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("--out", default=DEMO_OUT, help="output folder")
    p.add_argument("--models", help=f"override the {DEMO_SUITE!r} suite's models")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    p.add_argument("--cache-dir", help="cache folder (default: OUT/cache)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.cli.run import EXIT_USAGE, exit_code, print_outcome
    from cxrbench.data import make_synthetic_dataset
    from cxrbench.plugins.registry import UnknownModelError, expand_model_patterns
    from cxrbench.run.config import DEFAULT_THRESHOLD_RULE, ModelSpec, RunConfig
    from cxrbench.run.harness import RunError, run_benchmark
    from cxrbench.run.suites import load_suite

    out = Path(args.out)
    suite = load_suite(DEMO_SUITE)
    try:
        specs = ([ModelSpec(n) for n in expand_model_patterns(args.models)]
                 if args.models else suite.models)
    except UnknownModelError as err:
        return fail(str(err), EXIT_USAGE)
    data = make_synthetic_dataset(out / "synthetic-data", seed=args.seed)
    print(f"generated SYNTHETIC demo data in {data} (not real chest X-rays)")
    config = RunConfig(
        data_path=data, models=specs, seeds=suite.seeds, out_dir=out,
        threshold_rule=suite.threshold_rule or DEFAULT_THRESHOLD_RULE,
        cache_dir=Path(args.cache_dir) if args.cache_dir else out / "cache",
        overwrite=True, suite=DEMO_SUITE, command=getattr(args, "command_line", None),
    )
    try:
        outcome = run_benchmark(config)
    except RunError as err:
        return fail(str(err), EXIT_USAGE)
    print_outcome(outcome)
    return exit_code(outcome)
