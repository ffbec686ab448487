"""``cxrbench merge A.json B.json ... -o OUT.json``: one results file from several runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrbench.cli.common import Formatter, fail

EXAMPLES = """examples:
  cxrbench merge laptop/results.json gpu/results.json -o merged/results.json
  cxrbench merge old/results.json rerun/results.json -o out/results.json --no-report

The files must share the data hash, split plan, threshold rule and evaluated images. A later
file's successful record replaces an earlier one with the same job id; every record keeps the
file and git commit it came from (its "origin"). Summary, statistics and report are recomputed.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("merge", help="merge results files of one split into one",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("results", nargs="+", help="results.json files, oldest first")
    p.add_argument("-o", "--output", required=True, help="merged results.json to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-report", action="store_true", help="skip report.html beside it")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.run.lock import OutputBusyError, OutputLock

    try:  # a run using the folder would overwrite the merge, or the merge its results
        with OutputLock(Path(args.output).parent, getattr(args, "command_line", None)):
            return _merge(args)
    except OutputBusyError as err:
        return fail(str(err))


def _merge(args: argparse.Namespace) -> int:
    from cxrbench.results.io import write_results
    from cxrbench.results.merge import MergeError, merge_files

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        return fail(f"{output} already exists: pass --overwrite or choose another -o")
    if output.resolve() in {Path(p).resolve() for p in args.results}:
        return fail(f"{output} is one of the inputs: write the merge to another file")
    try:
        merged = merge_files(args.results)
    except MergeError as err:
        return fail(str(err))
    write_results(output, merged)  # summary and statistics computed by the merge
    print(output)
    if not args.no_report:
        from cxrbench.report import render_report

        data_root = merged["provenance"].get("data", {}).get("path")
        print(render_report(merged, output.with_name("report.html"), data_root=data_root))
    return 0
