"""``cxrbench evaluate RUN_DIR --data PATH [--name NAME]``: score a run's saved models on a
labelled external set, at their validation thresholds, into ``results.json``'s ``external``."""

from __future__ import annotations

import argparse
import sys

from cxrbench.cli.common import Formatter, fail

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  cxrbench run --data /data/chest_xray --models hog_svm,hog_xgboost --save-models --out out/
  cxrbench evaluate out/ --data /data/hospital_b                 # flat NORMAL/ PNEUMONIA/
  cxrbench evaluate out/ --data /data/covid/manifest.csv --name covid
  cxrbench evaluate out/results.json --data /data/other_kaggle_layout --name other

Every image of the set is a test image, whatever its layout. Each model is loaded from
OUT/models/<job_id>/ (every file's sha256 checked) and scored at the threshold its run chose
on validation: no refit. Evaluating again with the same name replaces that entry.

exit codes: 0 every model scored, 1 the set could not be scored (an error entry is written
with its message) or some models failed, 2 bad usage (no results, no saved model, missing
data path, a folder in use), 130 interrupted (results.json unchanged).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="score a run's saved models on an external set",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="output folder of a `cxrbench run --save-models` (or its results.json)")
    p.add_argument("--data", required=True,
                   help="labelled external set: flat class folders, Kaggle layout or a CSV "
                   "manifest")
    p.add_argument("--name", help="name of the set in the results (default: the folder's or "
                   "manifest's name)")
    p.add_argument("--cache-dir", help="image/feature cache (default: $CXRBENCH_CACHE_DIR or "
                   "~/.cache/cxrbench)")
    p.add_argument("--no-report", action="store_true",
                   help="do not re-render the run's report.html")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="let the set's CSV manifest list files outside its own folder")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.run.config import ConfigError
    from cxrbench.run.evaluate import EvaluateError, evaluate_run

    try:
        outcome = evaluate_run(args.run_dir, args.data, name=args.name,
                               cache_dir=args.cache_dir,
                               command=getattr(args, "command_line", None),
                               progress=sys.stderr.isatty(), report=not args.no_report,
                               allow_outside_root=args.allow_outside_root)
    except (EvaluateError, ConfigError) as err:
        return fail(str(err), EXIT_USAGE)
    except OSError as err:  # a full or read-only disk: the results file was left as it was
        return fail(f"cannot write into {args.run_dir}: {err}; the results file was left as "
                    "it was", EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted: the results file was left as it was", file=sys.stderr)
        return 130
    print(outcome.results_path)
    if outcome.report_path is not None:
        print(outcome.report_path)
    if outcome.status == "error":
        return fail(f"external set {outcome.name!r} could not be scored: {outcome.message} "
                    f"(an error entry was written to {outcome.results_path})", EXIT_FAILED)
    if outcome.n_failed:
        print(f"{outcome.n_failed} model(s) could not be scored on {outcome.name!r}; their "
              "entries hold the reason", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
