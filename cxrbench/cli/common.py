"""Helpers shared by the CLI verbs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DATA_ENV = "CXRBENCH_DATA"


def fail(message: str, code: int = 2) -> int:
    """Print a user-facing error (no traceback) and return the exit code."""
    print(f"cxrbench: error: {message}", file=sys.stderr)
    return code


def add_data_argument(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    help_text = f"data folder or CSV manifest (default: ${DATA_ENV})"
    if positional:
        parser.add_argument("data", nargs="?", help=help_text)
    else:
        parser.add_argument("--data", help=help_text)


def resolve_data(value: str | None) -> Path | None:
    """The data path from the option, else from $CXRBENCH_DATA, else None."""
    value = value or os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def parse_int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps example epilogs as written and shows each real default once: not when the help
    already names it (``default: $CXRBENCH_DATA``), nor when it is None, False or a list."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == []
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def add_plugins_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugins", metavar="FILE.py|MODULE,...",
        help="local plugin files or modules to import before the registry is read, "
             "comma-separated (default: $CXRBENCH_PLUGINS, comma- or os.pathsep-separated); "
             "job processes and Dask workers import them too")


def load_cli_plugins(args: argparse.Namespace) -> None:
    """Import ``--plugins`` (else ``$CXRBENCH_PLUGINS``): their plugins join the registry."""
    from cxrbench.plugins.sources import load_plugins, resolve_plugin_specs

    load_plugins(resolve_plugin_specs(getattr(args, "plugins", None)))
