"""``cxrbench compare BASELINE.json CANDIDATE.json``: fail CI on a regression beyond tolerance."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cxrbench.cli.common import Formatter, fail
from cxrbench.scoring.metrics import TIMING_DIRECTIONS

EXAMPLES = """examples:
  cxrbench compare results/baseline.json out/results.json
  cxrbench compare results/baseline.json out/results.json --markdown "$GITHUB_STEP_SUMMARY"
  cxrbench compare base.json new.json --fail-on roc_auc:0.02 --fail-on fit_s:100%
  cxrbench compare base.json new.json --ignore-timing --json comparison.json
  cxrbench compare base.json new.json --split external:hospital_b   # both evaluated on it

tolerances (--fail-on METRIC:TOL, repeatable): a plain number is absolute in the metric's
units (roc_auc:0.02, fit_s:5 seconds); N% is relative to the baseline and keeps the timing
noise floor (fit_s:50%); 'off' reports the metric but never fails on it. Each metric is
compared in its own direction (higher AUC is better, lower time is better). A drop counts
only when it exceeds both its tolerance and the noise (the candidate's bootstrap interval when
the results have one, else the seed spread); --strict drops the noise allowance.

exit codes: 0 no regression, 1 regression (each one listed), 2 incomparable runs (different
data, split plan or threshold rule) or bad usage.
"""

HEADLINE = ("roc_auc", "pr_auc", "balanced_accuracy", "recall", "specificity",
            "fit_s", "predict_ms_per_image")
SHORT = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "balanced_accuracy": "bal. acc",
         "recall": "sens.", "specificity": "spec.", "fit_s": "fit s",
         "predict_ms_per_image": "ms/img"}


def _split(text: str) -> str:
    if text in ("test", "val") or (text.startswith("external:") and len(text) > 9):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use test, val or external:NAME")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="compare a run with a baseline; exit 1 on regression",
                              epilog=EXAMPLES, formatter_class=Formatter)
    p.add_argument("baseline", help="baseline results.json (e.g. results/baseline.json)")
    p.add_argument("candidate", help="candidate results.json (the new run)")
    p.add_argument("--fail-on", action="append", default=[], metavar="METRIC:TOL",
                   help="override a tolerance, e.g. roc_auc:0.02, fit_s:50%%, peak_rss_mb:off")
    p.add_argument("--ignore-timing", action="store_true",
                   help="report timings and memory but never fail on them")
    p.add_argument("--strict", action="store_true",
                   help="fail on any change beyond tolerance, ignoring intervals and seed spread")
    p.add_argument("--split", default="test", type=_split,
                   help="compare the metrics of this split: test, val, or external:NAME (an "
                   "external set scored by `cxrbench evaluate` in both files)")
    p.add_argument("--markdown", metavar="FILE",
                   help="append a Markdown summary to FILE (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--json", metavar="FILE", help="write the full comparison as JSON ('-': stdout)")
    p.set_defaults(handler=run)


def _cell(delta: Any, markdown: bool) -> str:
    if delta is None or delta.candidate is None:
        return "n/a"
    timing = delta.metric in TIMING_DIRECTIONS
    value = f"{delta.candidate:.{0 if delta.candidate >= 100 else 2}f}" if timing \
        else f"{delta.candidate:.3f}"
    if delta.baseline is None or delta.candidate == delta.baseline:
        return value
    diff = delta.candidate - delta.baseline
    change = (f"{100 * diff / delta.baseline:+.0f}%" if timing and delta.baseline
              else f"{diff:+.3f}")
    if delta.status == "regression":
        return f"**{value} ({change})**" if markdown else f"[bold red]{value} ({change})[/]"
    return f"{value} ({change})"


def _verdict(model: Any) -> str:
    if model.regressions:
        return "REGRESSION"
    if model.status != "compared":
        return model.status
    return "ok (noise)" if any(d.status == "within noise" for d in model.deltas) else "ok"


def _rows(comparison: Any, markdown: bool) -> list[list[str]]:
    from cxrbench.report.markdown import escape_markdown  # (the report package is heavy)

    rows = []
    for model in comparison.models:
        by_metric = {d.metric: d for d in model.deltas}
        name = escape_markdown(model.model) if markdown else model.model
        rows.append([name, _verdict(model), ",".join(map(str, model.seeds)) or "-",
                     *(_cell(by_metric.get(m), markdown) for m in HEADLINE)])
    return rows


def _headline(comparison: Any) -> str:
    if comparison.incomparable:
        return "INCOMPARABLE: the runs cannot be compared"
    n = len(comparison.regressions)
    return f"{n} REGRESSION(S)" if n else "no regression"


def _run_line(which: str, info: dict[str, Any], markdown: bool = False) -> str:
    commit = (info.get("commit") or "?")[:10] + ("+dirty" if info.get("dirty") else "")
    text = (f"(commit {commit}, {info.get('date') or '?'}, suite {info.get('suite') or '-'}, "
            f"host {info.get('hostname') or '?'})")
    if markdown:  # every part comes from the results files: escaped
        from cxrbench.report.markdown import code_span, escape_markdown

        return f"{which}: {code_span(info.get('path'))} {escape_markdown(text)}"
    return f"{which}: {info.get('path')} {text}"


def _notes(comparison: Any) -> list[str]:
    notes = [f"{m.model}: {m.status}" for m in comparison.models
             if m.status in ("added", "removed", "fixed", "failed in both")]
    notes += [f"{m.model}: {note}" for m in comparison.models for note in m.notes]
    return notes


def to_markdown(comparison: Any) -> str:
    """A Markdown summary for a CI job page (GitHub's $GITHUB_STEP_SUMMARY); everything that
    comes from the results files is escaped (``cxrbench.report.markdown``)."""
    from cxrbench.report.markdown import escape_markdown

    lines = [f"## cxrbench compare: {_headline(comparison)}", "",
             f"- {_run_line('Baseline', comparison.baseline, markdown=True)}",
             f"- {_run_line('Candidate', comparison.candidate, markdown=True)}", ""]
    if comparison.incomparable:
        lines += [f"- {escape_markdown(reason)}" for reason in comparison.incomparable]
        return "\n".join(lines) + "\n"
    header = ["model", "verdict", "seeds", *(SHORT[m] for m in HEADLINE)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(comparison, markdown=True)]
    lines += ["", f"{comparison.split} split; candidate value (change from baseline)."]
    for title, items in (("Regressions", comparison.regressions),
                         ("Warnings", comparison.warnings), ("Notes", _notes(comparison))):
        if items:
            lines += ["", f"### {title}", *(f"- {escape_markdown(item)}" for item in items)]
    lines += ["", "Tolerances: " + "; ".join(f"{m} {t}" for m, t in comparison.tolerances.items())]
    return "\n".join(lines) + "\n"


def print_terminal(comparison: Any, file: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, width=None if file.isatty() else 150, highlight=False)
    console.print(f"[bold]cxrbench compare[/]: {_headline(comparison)}")
    console.print(_run_line("baseline ", comparison.baseline), markup=False)
    console.print(_run_line("candidate", comparison.candidate), markup=False)
    for reason in comparison.incomparable:
        console.print(f"[red]incomparable:[/] {reason}")
    if comparison.incomparable:
        return
    table = Table(title=f"{comparison.split} split: candidate value (change from baseline)")
    for name in ("model", "verdict", "seeds", *(SHORT[m] for m in HEADLINE)):
        table.add_column(name, justify="left" if name in ("model", "verdict") else "right")
    for row in _rows(comparison, markdown=False):
        style = "red" if row[1] == "REGRESSION" else None
        table.add_row(*row[:1], f"[{style}]{row[1]}[/]" if style else row[1], *row[2:])
    console.print(table)
    for title, items, style in (("regressions", comparison.regressions, "bold red"),
                                ("warnings", comparison.warnings, "yellow"),
                                ("notes", _notes(comparison), "dim")):
        for item in items:
            console.print(f"[{style}]{title[:-1]}:[/] ", end="")
            console.print(item, markup=False)


def run(args: argparse.Namespace) -> int:
    from cxrbench.results.io import ResultsError
    from cxrbench.results.regression import CompareError, compare_files, parse_fail_on

    try:
        comparison = compare_files(
            args.baseline, args.candidate, tolerances=parse_fail_on(args.fail_on),
            split=args.split, ignore_timing=args.ignore_timing, use_noise=not args.strict)
    except (ResultsError, CompareError) as err:
        return fail(str(err))
    print_terminal(comparison, sys.stderr if args.json == "-" else sys.stdout)
    if args.markdown:
        with Path(args.markdown).open("a", encoding="utf-8") as handle:
            handle.write(to_markdown(comparison))
    if args.json:
        text = json.dumps(comparison.to_dict(), indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    code = comparison.exit_code
    print(f"exit {code}: {_headline(comparison)}", file=sys.stderr)
    return code
