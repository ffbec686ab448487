"""``cxrbench export mlflow RESULTS.json``: log a results file to MLflow (idempotent)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cxrbench.cli.common import Formatter, fail
from cxrbench.export import DEFAULT_EXPERIMENT

if TYPE_CHECKING:
    from cxrbench.export.mlflow import ExportSummary

EXAMPLES = """examples:
  cxrbench export mlflow out/results.json                     # MLflow's default tracking URI
  cxrbench export mlflow out/results.json --tracking-uri sqlite:///mlflow.db
  cxrbench export mlflow out/results.json --tracking-uri http://127.0.0.1:5000 \\
      --experiment pneumonia

One MLflow run per record (params, validation and test metrics with their intervals, timings,
tags for the data hash, split sha256, commit, threshold rule and job id) under a parent run
per benchmark (the report, leaderboards, results and split plan as artifacts). Exporting the
same file again adds no runs. Needs the cxrbench[mlflow] extra.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a results file to another tool (mlflow)",
                              epilog=EXAMPLES, formatter_class=Formatter)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    mlflow = targets.add_parser("mlflow", help="one MLflow run per record, under a parent run",
                                epilog=EXAMPLES, formatter_class=Formatter)
    mlflow.add_argument("results", help="results.json written by `cxrbench run`")
    add_mlflow_options(mlflow, "--tracking-uri", "--experiment")
    mlflow.set_defaults(handler=run)


def add_mlflow_options(parser: argparse.ArgumentParser, uri_flag: str, experiment_flag: str
                       ) -> None:
    if uri_flag == "--tracking-uri":
        parser.add_argument(uri_flag, metavar="URI", help="MLflow tracking URI (default: "
                            "$MLFLOW_TRACKING_URI, else MLflow's default, sqlite:///mlflow.db)")
    parser.add_argument(experiment_flag, default=DEFAULT_EXPERIMENT, metavar="NAME",
                        help="MLflow experiment, made if missing")


def run(args: argparse.Namespace) -> int:
    from cxrbench.export.mlflow import TrackingError, export_results
    from cxrbench.results.io import ResultsError

    try:
        summary = export_results(args.results, args.tracking_uri, args.experiment)
    except (TrackingError, ResultsError) as err:
        return fail(str(err))
    print_summary(summary, args.experiment)
    return 0


def print_summary(summary: ExportSummary, experiment: str) -> None:
    print(f"mlflow: {len(summary.created)} record run(s) logged, {len(summary.skipped)} "
          f"already there; experiment {experiment!r} ({summary.experiment_id}) at "
          f"{summary.tracking_uri}, parent run {summary.url or summary.parent_run_id}")
