"""``cxrbench report RESULTS.json [-o FILE]``: render the HTML report of a results file.

The file is validated, and its summary and statistics are recomputed from its records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrbench.cli.common import Formatter, fail

EXAMPLES = """examples:
  cxrbench report out/results.json                 # writes out/report.html
  cxrbench report out/results.json -o review.html
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="render the HTML report of a results file",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("results", help="results.json written by `cxrbench run`")
    p.add_argument("-o", "--output", help="HTML file (default: report.html beside the results)")
    p.add_argument("--data", help="data root, for thumbnails (default: the path in the results)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.report import render_report
    from cxrbench.results.io import ResultsError, read_results
    from cxrbench.stats import with_statistics

    try:
        results = read_results(args.results)
    except ResultsError as err:
        return fail(str(err))
    results = with_statistics(results)  # from the records, never the stored (maybe stale) copy
    output = Path(args.output) if args.output else Path(args.results).with_name("report.html")
    data_root = args.data or results["provenance"].get("data", {}).get("path")
    render_report(results, output, data_root=data_root)
    print(output)
    return 0
