"""``cxrbench report RESULTS.json [-o FILE]``: render the HTML report of a results file.

The file is validated, and its summary and statistics are recomputed from its records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrbench.cli.common import Formatter, fail

EXAMPLES = """examples:
  cxrbench report out/results.json                 # out/report.html + out/leaderboard.{md,csv}
  cxrbench report out/results.json -o review.html  # review.html + review.leaderboard.{md,csv}
  cxrbench report out/results.json --audit         # also audit the data the run used
  cxrbench report out/results.json --saliency      # where the saved models look (slow)

The Markdown and CSV leaderboards are written beside the HTML file: leaderboard.md/.csv beside
report.html, NAME.leaderboard.md/.csv beside any other NAME.html. Files of another run are
never replaced without --overwrite.

--saliency loads the models the run saved (`cxrbench run --save-models`), verified by their
sha256, and adds occlusion maps (every model) and Grad-CAM (Keras networks) on the gallery's
and hard cases' images, and the share of saliency outside the central thorax region per model.
It takes time (progress is printed); without saved models the report is as without it.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="render the HTML report of a results file",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("results", help="results.json written by `cxrbench run`")
    p.add_argument("-o", "--output", help="HTML file (default: report.html beside the results)")
    p.add_argument("--data", help="data root, for thumbnails and --audit (default: the path "
                   "recorded in the results)")
    p.add_argument("--audit", action="store_true", help="audit the data (counts, duplicates, "
                   "patients in several splits) and show it; the data must have the run's hash")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing leaderboard files beside an -o target elsewhere")
    p.add_argument("--saliency", action="store_true", help="add saliency maps and the "
                   "outside-thorax summary, from the run's saved models (slow)")
    # Defaults live in cxrbench.report.saliency_context (not imported here: it is slow).
    p.add_argument("--saliency-images", type=_positive, metavar="N", help="at most N of the "
                   "images shown per model get maps (default: all the gallery and hard cases "
                   "show)")
    p.add_argument("--saliency-sample", type=_non_negative, metavar="N", help="random test "
                   "images per model for the summary only (default: 16)")
    p.set_defaults(handler=run)


def _count(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
    return value


def _positive(text: str) -> int:
    return _count(text, 1)


def _non_negative(text: str) -> int:
    return _count(text, 0)


def run(args: argparse.Namespace) -> int:
    from cxrbench.data import DataError
    from cxrbench.report import SaliencyRequest, render_report
    from cxrbench.report.audit import AuditMismatch, audit_for_results
    from cxrbench.report.tables import table_paths
    from cxrbench.results.io import ResultsError, read_results
    from cxrbench.stats import with_statistics

    try:
        results = read_results(args.results)
    except ResultsError as err:
        return fail(str(err))
    results = with_statistics(results)  # from the records, never the stored (maybe stale) copy
    results_dir = Path(args.results).resolve().parent
    output = Path(args.output) if args.output else Path(args.results).with_name("report.html")
    if output.suffix.lower() not in (".html", ".htm"):
        return fail(f"-o {output}: the report is an HTML file; name it NAME.html")
    existing = [p for p in table_paths(output) if p.exists()]
    if existing and output.resolve().parent != results_dir and not args.overwrite:
        return fail(f"{', '.join(map(str, existing))} already exist(s) beside {output} and "
                    "belong(s) to another report: choose another -o or pass --overwrite")
    data_root = args.data or results["provenance"].get("data", {}).get("path")
    if args.audit:
        if not data_root:
            return fail("--audit needs the data: pass --data PATH")
        try:
            results["data_audit"] = audit_for_results(results, data_root, progress=True)
        except (AuditMismatch, DataError) as err:
            return fail(str(err))
    saliency = None
    if args.saliency:
        given = {"max_images": args.saliency_images, "sample": args.saliency_sample}
        saliency = SaliencyRequest(run_dir=results_dir,
                                   **{k: v for k, v in given.items() if v is not None})
    path = render_report(results, output, data_root=data_root, saliency=saliency,
                         run_dir=results_dir)
    for written in (path, *table_paths(path)):
        print(written)
    return 0
