"""The compact HTML summary a notebook shows for a ``Benchmark``: what ran on which data and
split, the leaderboard with intervals, and the failed jobs. Every value is escaped."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

STYLE = ("font-family:sans-serif;font-size:13px;border-collapse:collapse;"
         "margin:4px 0")
CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:{align}"
HEAD = "padding:2px 8px;border-bottom:2px solid #888;text-align:{align}"
TEXT_COLUMNS = ("model", "family")  # left-aligned; numbers right-aligned
MAX_ERROR_CHARS = 200


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _with_interval(row: pd.Series, metric: str) -> str:
    text = _num(row.get(metric))
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if text != "–" and _num(low) != "–" and _num(high) != "–":
        text += f" [{_num(low)}, {_num(high)}]"
    return text


COLUMNS = (
    ("model", "model", lambda row: escape(str(row["model"]))),
    ("family", "family", lambda row: escape(str(row.get("family") or ""))),
    ("seeds ok", "successful seeds / seeds run", lambda row: f"{row['n_ok']}/{row['n_seeds']}"),
    ("ROC AUC [95 % CI]", "test ROC AUC, mean over seeds, patient bootstrap interval",
     lambda row: _with_interval(row, "roc_auc")),
    ("accuracy", "test accuracy at the validation-chosen threshold",
     lambda row: _with_interval(row, "accuracy")),
    ("sensitivity", "test recall", lambda row: _num(row.get("recall"))),
    ("specificity", "test specificity", lambda row: _num(row.get("specificity"))),
    ("fit s", "mean fit time over seeds", lambda row: _num(row.get("fit_s"), 1)),
)


def _table(board: pd.DataFrame) -> str:
    def align(label: str) -> str:
        return "left" if label in TEXT_COLUMNS else "right"

    head = "".join(f'<th style="{HEAD.format(align=align(label))}" title="{escape(tip)}">'
                   f"{escape(label)}</th>" for label, tip, _ in COLUMNS)
    body = []
    for _, row in board.iterrows():
        cells = "".join(f'<td style="{CELL.format(align=align(label))}">{cell(row)}</td>'
                        for label, _, cell in COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    return f'<table style="{STYLE}"><tr>{head}</tr>{"".join(body)}</table>'


def benchmark_html(results: dict[str, Any], board: pd.DataFrame, path: Path) -> str:
    """The summary of ``results`` (with statistics) and its leaderboard ``board``."""
    run, split = results["run"], results["split"]
    data = (results.get("provenance") or {}).get("data") or {}
    records = results["records"]
    ok = sum(r["status"] == "ok" for r in records)
    synthetic = (' <b style="color:#b00">SYNTHETIC data</b>' if data.get("synthetic") else "")
    n_test = len(((results.get("evaluation") or {}).get("test") or {}).get("ids") or [])
    lines = [
        f"<b>cxrbench</b> · {escape(str(run.get('status')))} · {len(board)} model(s) × seeds "
        f"{escape(', '.join(map(str, run.get('seeds') or [])))} · {ok}/{len(records)} "
        "records ok",
        f"data {escape(str(data.get('path', '?')))}{synthetic} · split sha256 "
        f"<code>{escape(str(split.get('sha256', '?'))[:12])}</code> · {n_test} test images · "
        f"threshold rule {escape(str(run.get('threshold_rule')))}",
        f"results <code>{escape(str(path))}</code>",
    ]
    parts = [f'<div style="{STYLE}">' + "<br>".join(lines) + "</div>"]
    if not board.empty:
        parts.append(_table(board))
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        items = "".join(
            f"<li><code>{escape(r['job_id'])}</code>: {escape(r['status'])} "
            f"{escape(str((r.get('error') or {}).get('type')))}: "
            f"{escape(str((r.get('error') or {}).get('message'))[:MAX_ERROR_CHARS])}</li>"
            for r in failed)
        parts.append(f'<div style="{STYLE}">Failed jobs:<ul>{items}</ul></div>')
    return '<div class="cxrbench-benchmark">' + "".join(parts) + "</div>"
