"""``cxrbench card RUN_DIR``: (re)write the model card of every saved model of a run."""

from __future__ import annotations

import argparse

from cxrbench.cli.common import Formatter, fail

EXIT_OK, EXIT_SOME_MISSING, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  cxrbench run --data /data/chest_xray --models hog_svm,pixels_logreg --save-models --out out/
  cxrbench card out/                 # out/models/<job_id>/model_card.md for every saved model
  cxrbench card out/results.json

A run with --save-models writes the cards when it ends, and `cxrbench evaluate` rewrites them
with each external set; this verb writes them again from the results file (after a merge, or
from a run made before cards existed). Every number comes from the results: the statistics
are recomputed from the records, as `cxrbench report` does. The card is not part of the saved
model's files (model.json does not list it): rewriting it keeps the model loadable.

exit codes: 0 every saved model has its card, 1 some model folders are missing (named on
stderr), 2 bad usage (no results, no saved model, a folder in use by a run or an evaluate).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("card", help="(re)write the model cards of a run's saved models",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="output folder of a `cxrbench run --save-models` (or its results.json)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from cxrbench.results.io import ResultsError, read_results
    from cxrbench.run.cards import saved_records, write_model_cards
    from cxrbench.run.evaluate import EvaluateError, folder_lock, results_path_of
    from cxrbench.stats import with_statistics

    path = results_path_of(args.run_dir)
    if not path.is_file():
        return fail(f"{path} does not exist: give the output folder of a `cxrbench run "
                    "--save-models` (or its results.json)", EXIT_USAGE)
    try:
        with folder_lock(path.parent, True, getattr(args, "command_line", None)):
            try:
                results = read_results(path)
            except ResultsError as err:
                return fail(str(err), EXIT_USAGE)
            if not saved_records(results):
                return fail(f"{path} has no saved model: run it with --save-models (models "
                            "and their cards go to OUT/models/<job_id>/)", EXIT_USAGE)
            outcome = write_model_cards(with_statistics(results), path.parent)
    except EvaluateError as err:  # the folder is in use by a run or an evaluate
        return fail(str(err), EXIT_USAGE)
    for written in outcome.written:
        print(written)
    for job_id, reason in outcome.skipped:
        print(f"{job_id}: no model card: {reason}", file=sys.stderr)
    return EXIT_SOME_MISSING if outcome.skipped else EXIT_OK
