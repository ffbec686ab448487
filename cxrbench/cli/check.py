"""``cxrbench check NAME [NAME...|PATTERN]``: run the plugin conformance kit.

Prints one row per plugin x check (PASS, FAIL, XFAIL, XPASS, SKIP) with the failure messages;
exits 1 if any check fails, 2 for an unknown model or check name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys

from cxrbench.cli.common import Formatter, add_plugins_argument, fail, load_cli_plugins

EXAMPLES = """examples:
  cxrbench check hog_svm
  cxrbench check 'hog_*' majority
  cxrbench check cnn_strong --input-size 32        # deep plugins: small images, seconds a check
  cxrbench check my_model --checks check_predict_proba,check_pickle_round_trip --json
  cxrbench check my_model --plugins path/to/my_model.py   # a plugin in a local file

A plugin declares checks it is known to fail in its card:
  ModelCard(..., known_failures={"check_pickle_round_trip": "why"})  -> reported as XFAIL
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check", help="check that model plugins honour the plugin contract",
        description="Run the conformance checks (cxrbench.plugins.conformance) on "
                    "registered plugins, on a tiny synthetic data set.",
        epilog=EXAMPLES, formatter_class=Formatter,
    )
    p.add_argument("models", nargs="+", metavar="NAME",
                   help="model names or fnmatch patterns (comma-separated lists are fine)")
    p.add_argument("--input-size", type=int, default=None, metavar="PX",
                   help="check on PX-pixel images instead of each card's input size (faster)")
    p.add_argument("--checks", default=None,
                   help="comma-separated check names to run (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_plugins_argument(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.plugins.conformance import CHECKS_BY_NAME, check_plugin, format_results
    from cxrbench.plugins.registry import UnknownModelError, expand_model_patterns
    from cxrbench.plugins.sources import PluginLoadError

    try:
        load_cli_plugins(args)
        names = expand_model_patterns(",".join(args.models))
    except (UnknownModelError, PluginLoadError) as err:
        return fail(str(err))
    checks = None
    if args.checks:
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
        unknown = [c for c in checks if c not in CHECKS_BY_NAME]
        if unknown:
            return fail(f"unknown check(s) {unknown}; available: {', '.join(CHECKS_BY_NAME)}")
    if args.input_size is not None and args.input_size < 8:
        return fail(f"--input-size must be at least 8 pixels, got {args.input_size}")
    results = []
    for name in names:
        print(f"checking {name} ...", file=sys.stderr, flush=True)
        results.extend(check_plugin(name, input_size=args.input_size, checks=checks))
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    else:
        print(format_results(results, width=shutil.get_terminal_size((100, 20)).columns - 4))
    return 1 if any(r.failed for r in results) else 0
