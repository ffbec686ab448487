"""``cxrbench data audit PATH [--json]``: counts, sizes, unreadable files, duplicates, leakage."""

from __future__ import annotations

import argparse
import json
import sys

from cxrbench.cli.common import Formatter, add_data_argument, fail, resolve_data

EXAMPLES = """examples:
  cxrbench data audit /data/chest_xray
  cxrbench data audit /data/chest_xray --json > audit.json
  CXRBENCH_DATA=/data/chest_xray cxrbench data audit
  cxrbench data audit /data/lists/site_b.csv --allow-outside-root
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect a data set")
    verbs = data.add_subparsers(dest="data_verb", metavar="ACTION")
    p = verbs.add_parser("audit", help="audit a data set: counts, unreadable files, duplicates",
                         epilog=EXAMPLES, formatter_class=Formatter)
    add_data_argument(p, positional=True)
    p.add_argument("--json", action="store_true", help="print the audit as JSON")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: all)")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="let a CSV manifest list files outside its own folder")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.data import DataError, audit_dataset, format_audit, load_dataset

    path = resolve_data(args.data)
    if path is None:
        return fail("no data path: give PATH or set CXRBENCH_DATA")
    try:
        dataset = load_dataset(path, allow_outside_root=args.allow_outside_root)
        report = audit_dataset(dataset, workers=args.workers, progress=sys.stderr.isatty())
    except DataError as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(format_audit(report))
    return 0
