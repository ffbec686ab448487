"""The leaderboard as Markdown (for a pull request or a CI summary) and as CSV."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from cxrbench.files import atomic_write_text

MARKDOWN_COLUMNS = (
    ("roc_auc", "ROC AUC", 3), ("accuracy", "Accuracy", 3), ("recall", "Sensitivity", 3),
    ("specificity", "Specificity", 3), ("f1", "F1", 3), ("pr_auc", "PR AUC", 3),
    ("brier", "Brier", 3), ("fit_s", "Fit (s)", 1), ("predict_ms_per_image", "ms / image", 2),
)
INTERVAL_COLUMNS = ("roc_auc", "accuracy")  # intervals in the Markdown table (kept narrow)


def _num(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _cell(row: dict[str, Any], key: str, digits: int) -> str:
    text = _num(row.get(key), digits)
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if key in INTERVAL_COLUMNS and low is not None and high is not None and text != "–":
        text += f" [{_num(low, digits)}, {_num(high, digits)}]"
    return text


def _p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def leaderboard_markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A Markdown leaderboard with intervals, the best model marked, failures listed."""
    data = (results.get("provenance") or {}).get("data", {})
    run = results.get("run") or {}
    statistics = results.get("statistics") or {}
    lines = ["# cxrbench leaderboard", ""]
    if data.get("synthetic"):
        lines += ["> **SYNTHETIC DATA**: generated images, not chest X-rays; these numbers say "
                  "nothing about real performance.", ""]
    if run.get("status") != "complete":
        lines += [f"> Run status: **{run.get('status')}** ({len(results['records'])} "
                  "record(s) so far); the numbers may change.", ""]
    test = (results.get("evaluation") or {}).get("test") or {}
    lines.append(f"Test split: {len(test.get('labels') or [])} images, "
                 f"{len(set(test.get('groups') or []))} patients; decision threshold rule "
                 f"`{run.get('threshold_rule')}` (chosen on validation). "
                 f"Split `{str((results.get('split') or {}).get('sha256', ''))[:12]}`.")
    lines.append("")
    header = ["Model", "Seeds"] + [label for _, label, _ in MARKDOWN_COLUMNS] + ["vs best"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for row in rows:
        name = _escape(row["model"])
        if row.get("best"):
            name = f"**{name}** ◆"
        elif row.get("not_worse"):
            name += " ≈"
        p = row.get("delong_p_holm")
        versus = "best" if row.get("best") else _p_value(p)
        cells = [name, f"{row['n_ok']}/{row['n_seeds']}"]
        cells += [_cell(row, key, digits) for key, _, digits in MARKDOWN_COLUMNS]
        lines.append("| " + " | ".join(cells + [versus]) + " |")
    method = (statistics.get("method") or {}).get("bootstrap") or {}
    lines += ["", "◆ best test ROC AUC; ≈ not significantly worse than the best "
              "(DeLong, Holm-adjusted p ≥ 0.05); vs best: Holm-adjusted DeLong p-value. "
              f"Intervals: 95 % bootstrap over patients ({method.get('n_resamples', '?')} "
              f"resamples, seed {method.get('seed', '?')}) of the mean over seeds."]
    failed = [r for r in results["records"] if r["status"] != "ok"]
    if failed:
        lines += ["", f"**{len(failed)} failed job(s):**", ""]
        for r in failed:
            err = r.get("error") or {}
            message = str(err.get("message", "")).splitlines()[0][:200] if err else ""
            lines.append(f"- `{r['job_id']}`: {r['status']} {err.get('type', '')}: "
                         f"{_escape(message)}")
    return "\n".join(lines) + "\n"


def write_tables(results: dict[str, Any], rows: list[dict[str, Any]], folder: Path,
                 ) -> tuple[Path, Path]:
    """Write ``leaderboard.md`` and ``leaderboard.csv`` into ``folder``."""
    md = atomic_write_text(folder / "leaderboard.md", leaderboard_markdown(results, rows))
    csv = atomic_write_text(folder / "leaderboard.csv", pd.DataFrame(rows).to_csv(index=False))
    return md, csv
