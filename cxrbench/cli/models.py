"""``cxrbench models [PATTERN] [--json]``: list registered plugins (never imports TensorFlow),
and say which need modules that are not installed (e.g. the ``deep`` extra)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json

from cxrbench.cli.common import Formatter, add_plugins_argument, fail, load_cli_plugins
from cxrbench.plugins.contract import BUILTIN_FAMILIES
from cxrbench.plugins.registry import (
    MissingRequirementsError,
    check_requirements,
    get_card,
    list_models,
    missing_requirements,
    model_source,
)
from cxrbench.plugins.sources import plugin_origin

EXAMPLES = """examples:
  cxrbench models
  cxrbench models 'hog_*'
  cxrbench models --family transfer --json
  cxrbench models --plugins my_model.py,my_pkg.plugins     # local plugins listed too
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list registered model plugins", epilog=EXAMPLES,
                              formatter_class=Formatter)
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'hog_*'")
    p.add_argument("--exclude", action="append", default=[], help="pattern to leave out")
    p.add_argument("--family", help="only this family (built in: "
                                    f"{', '.join(BUILTIN_FAMILIES)}; plugins may add their own)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_plugins_argument(p)
    p.set_defaults(handler=run)


def no_match_message(pattern: str, family: str | None) -> str:
    """What to say when nothing matches: close names for a plain name, else the families."""
    message = f"no model matches {pattern!r}" + (f" in family {family!r}" if family else "")
    every = list_models()
    close = difflib.get_close_matches(pattern, every, n=3, cutoff=0.5)
    if close:
        return f"{message}. Did you mean: {', '.join(close)}?"
    families = sorted({get_card(name).family for name in every})
    return (f"{message}. Available: {', '.join(every)} (families: {', '.join(families)}); "
            "patterns use shell wildcards, e.g. 'hog_*'")


def run(args: argparse.Namespace) -> int:
    from cxrbench.plugins.sources import PluginLoadError

    try:
        load_cli_plugins(args)
    except PluginLoadError as err:
        return fail(str(err))
    names = list_models(args.pattern, exclude=args.exclude, family=args.family)
    if args.json and not names:
        return fail(no_match_message(args.pattern, args.family))
    if args.json:
        cards = []
        for name in names:
            card = dataclasses.asdict(get_card(name))
            card["source"] = model_source(name)
            card["file"] = plugin_origin(name)["file"]
            card["missing"] = missing_requirements(get_card(name))  # not importable here
            cards.append(card)
        print(json.dumps(cards, indent=1))
        return 0
    if not names:
        return fail(no_match_message(args.pattern, args.family))
    width = max(len(n) for n in names)
    for name in names:
        card = get_card(name)
        print(f"{name:<{width}}  {card.family:<9} {card.framework:<12} "
              f"{card.input_size}px x{card.channels}  {card.description}")
    try:
        check_requirements(names)
    except MissingRequirementsError as err:
        print(f"\nnote: {err}")
    return 0
