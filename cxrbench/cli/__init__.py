"""The ``cxrbench`` command line: one module per verb (``add_parser`` + ``run``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cxrbench import __version__
from cxrbench.cores import prefer_passive_openmp

VERB_MODULES = ("models", "data", "run", "evaluate", "predict", "card", "report", "compare",
                "merge", "check", "demo", "weights", "export")

EPILOG = """examples:
  cxrbench demo                                   # offline, synthetic data, ~1 minute
  cxrbench data audit /data/chest_xray
  cxrbench models 'hog_*'
  cxrbench run --data /data/chest_xray --models hog_svm,majority --seeds 0,1,2 --out out/
  cxrbench run --data /data/chest_xray --models hog_svm --save-models --out out/
  cxrbench evaluate out/ --data /data/other_hospital --name hospital_b
  cxrbench predict 'out/models/hog_svm[seed=0]' new_films/
  cxrbench card out/                              # (re)write each saved model's model card
  cxrbench report out/results.json -o out/report.html
  cxrbench compare results/baseline.json out/results.json
  cxrbench check hog_svm
  cxrbench export mlflow out/results.json --tracking-uri sqlite:///mlflow.db
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrbench",
        description="Benchmark pneumonia detectors on chest X-rays on identical patient-grouped "
        "splits, and report metrics with their uncertainty.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cxrbench {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for name in VERB_MODULES:
        importlib.import_module(f"cxrbench.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    prefer_passive_openmp()  # before scikit-learn or XGBoost loads an OpenMP runtime
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = ["cxrbench", *argv]  # as given: recorded in the results (run.command)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full, read-only or forbidden disk: a message, not a traceback
        from cxrbench.files import is_write_fault, write_fault_message

        if not is_write_fault(err):
            raise
        print(f"cxrbench: error: {write_fault_message(err, 'file', err.filename or '?')}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
