"""``cxrbench predict MODEL_DIR PATH... [--csv FILE] [--json]``: a saved model's probability
of pneumonia for image files (one row per image: path, probability, label at its threshold)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from cxrbench.cli.common import Formatter, fail

EXIT_OK, EXIT_NONE_READ, EXIT_USAGE = 0, 1, 2
PROGRESS_FROM = 100  # images: a progress bar from this many on (on a terminal)

EXAMPLES = """examples:
  cxrbench predict 'out/models/hog_svm[seed=0]' new_films/
  cxrbench predict 'out/models/hog_svm[seed=0]' a.png b.jpeg --csv predictions.csv
  cxrbench predict 'out/models/transfer_mobilenetv2[seed=0]' films/ --json > p.json

Images are decoded as the model's training images were (same decoder version, size and
channels); the label is PNEUMONIA when the probability reaches the threshold the model's run
chose on validation. The model folder is verified first (every file's sha256). Files that
cannot be decoded are listed on stderr (and under "skipped" with --json) and left out.

exit codes: 0 predictions written, 1 no file could be decoded, 2 bad usage (a missing path, no
image files, a model folder that is missing, modified or made with another decoder).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="apply a saved model to image files",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("model_dir", metavar="MODEL_DIR",
                   help="a saved model folder: OUT/models/<job_id> of `cxrbench run "
                   "--save-models`")
    p.add_argument("paths", metavar="PATH", nargs="+", help="image files or folders of them")
    p.add_argument("--csv", metavar="FILE", help="also write the rows to this CSV file")
    p.add_argument("--json", action="store_true",
                   help="print JSON (model, predictions, skipped) instead of a table")
    p.add_argument("--model-sha256", metavar="HEX",
                   help="refuse the model unless its model.json has this sha256 (the run "
                   "records it as model_artifact.model_json_sha256)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cxrbench.files import atomic_write_text
    from cxrbench.plugins.persistence import ArtifactError
    from cxrbench.run.predict import PredictError, collect_images, predict_files

    try:
        n_files = len(collect_images(args.paths))
        outcome = predict_files(args.model_dir, args.paths,
                                progress=sys.stderr.isatty() and n_files >= PROGRESS_FROM,
                                expected_sha256=args.model_sha256)
    except (PredictError, ArtifactError) as err:
        return fail(str(err), EXIT_USAGE)
    for path, reason in outcome.skipped:
        print(f"warning: skipping unreadable image {path}: {reason}", file=sys.stderr)
    rows = [(p.path, f"{p.probability:.6f}", p.label) for p in outcome.predictions]
    if args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "probability", "label"])
        writer.writerows(rows)
        try:
            atomic_write_text(args.csv, buffer.getvalue())
        except OSError as err:
            return fail(f"cannot write {args.csv}: {err}", EXIT_USAGE)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=1))
    else:
        width = max([len("path")] + [len(r[0]) for r in rows])
        print(f"{'path':<{width}}  probability  label")
        for path, probability, label in rows:
            print(f"{path:<{width}}  {probability:>11}  {label}")
    info = outcome.model.info
    print(f"{len(rows)} image(s) scored by {info['model']} ({info.get('job_id')}) at threshold "
          f"{outcome.model.threshold:.4f}; {len(outcome.skipped)} skipped; "
          f"{outcome.seconds:.1f} s", file=sys.stderr)
    return EXIT_OK if rows else EXIT_NONE_READ
