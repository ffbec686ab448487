"""The leaderboard as Markdown (for a pull request or a CI summary) and as CSV."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from cxrbench.files import atomic_write_text
from cxrbench.report.markdown import code_span, escape_markdown
from cxrbench.results.leaderboard import EXTERNAL_METRICS, external_column

MARKDOWN_COLUMNS = (
    ("roc_auc", "ROC AUC", 3), ("accuracy", "Accuracy", 3), ("recall", "Sensitivity", 3),
    ("specificity", "Specificity", 3), ("f1", "F1", 3), ("pr_auc", "PR AUC", 3),
    ("brier", "Brier", 3), ("fit_s", "Fit (s)", 1), ("predict_ms_per_image", "ms / image", 2),
)
INTERVAL_COLUMNS = ("roc_auc", "accuracy")  # intervals in the Markdown table (kept narrow)
CSV_METRICS = ("roc_auc", "pr_auc", "accuracy", "precision", "recall",
               "specificity", "f1", "brier", "ece")
CSV_TIMINGS = (("fit_s", 3), ("predict_ms_per_image", 4), ("peak_rss_mb", 1))


def _num(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def external_names(results: dict[str, Any]) -> list[str]:
    """External sets that were scored (error entries have no column)."""
    return sorted(name for name, e in (results.get("external") or {}).items()
                  if e.get("status") == "ok")


def _cell(row: dict[str, Any], key: str, digits: int) -> str:
    text = _num(row.get(key), digits)
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    interval = key in INTERVAL_COLUMNS or key.startswith("ext_")
    if interval and low is not None and high is not None and text != "–":
        text += f" [{_num(low, digits)}, {_num(high, digits)}]"
    return text


def _p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


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
    small = results.get("small_data") or {}
    if small.get("flagged"):
        lines += ["> **Small data**: " + escape_markdown("; ".join(small.get("reasons") or [])),
                  ""]
    test = (results.get("evaluation") or {}).get("test") or {}
    lines.append(f"Test split: {len(test.get('labels') or [])} images, "
                 f"{len(set(test.get('groups') or []))} patients; decision threshold rule "
                 f"{code_span(run.get('threshold_rule'))} (chosen on validation). "
                 f"Split {code_span(str((results.get('split') or {}).get('sha256', ''))[:12])}.")
    lines.append("")
    external = external_names(results)
    header = (["Model", "Seeds"] + [label for _, label, _ in MARKDOWN_COLUMNS]
              + [f"ROC AUC {escape_markdown(name)} (external)" for name in external]
              + ["vs best"])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for row in rows:
        name = escape_markdown(row["model"])
        if row.get("best"):
            name = f"**{name}** ◆"
        elif row.get("not_worse"):
            name += " ≈"
        p = row.get("delong_p_holm")
        versus = "best" if row.get("best") else _p_value(p)
        cells = [name, f"{row['n_ok']}/{row['n_seeds']}"]
        cells += [_cell(row, key, digits) for key, _, digits in MARKDOWN_COLUMNS]
        cells += [_cell(row, external_column(name), 3) for name in external]
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
            lines.append(f"- {code_span(r['job_id'])}: {escape_markdown(r['status'])} "
                         f"{escape_markdown(err.get('type', ''))}: {escape_markdown(message)}")
    return "\n".join(lines) + "\n"


def leaderboard_csv(results: dict[str, Any], rows: list[dict[str, Any]],
                    commits: dict[str, list[str]]) -> str:
    """The leaderboard as CSV: rounded, with what the numbers were made on (data, split,
    threshold rule, commits) on every row, and ``SYNTHETIC`` in the ``data`` column of a
    synthetic run. ``commits`` maps a model to the commits of its records."""
    data = (results.get("provenance") or {}).get("data") or {}
    split = (results.get("split") or {}).get("sha256")
    out = []
    for row in rows:
        line: dict[str, Any] = {"model": row["model"], "family": row.get("family"),
                                "seeds_ok": row.get("n_ok"), "seeds": row.get("n_seeds")}
        for key in CSV_METRICS:
            for suffix in ("", "_low", "_high"):
                line[key + suffix] = _round(row.get(key + suffix), 4)
        for key, digits in CSV_TIMINGS:
            line[key] = _round(row.get(key), digits)
        for name in external_names(results):  # each external set scored: its columns
            for metric in EXTERNAL_METRICS:
                key = external_column(name, metric)
                for suffix in (("", "_low", "_high") if metric == "roc_auc" else ("",)):
                    line[key + suffix] = _round(row.get(key + suffix), 4)
        line["n_params"] = row.get("n_params")
        p = row.get("delong_p_holm")
        line["delong_p_holm"] = float(f"{p:.3g}") if _finite(p) else None
        line["best"] = bool(row.get("best"))
        line["not_worse"] = bool(row.get("not_worse"))
        line["threshold_rule"] = (results.get("run") or {}).get("threshold_rule")
        line["data"] = "SYNTHETIC" if data.get("synthetic") else "real"
        line["data_hash"] = data.get("data_hash")
        line["split_sha256"] = split
        line["commits"] = " ".join(c[:12] for c in commits.get(row["model"], []))
        out.append(line)
    table = pd.DataFrame(out)
    if "n_params" in table:  # whole numbers, empty where unknown (not 411489.0)
        table["n_params"] = table["n_params"].astype("Int64")
    return table.to_csv(index=False)


def table_paths(html_path: Path) -> tuple[Path, Path]:
    """``leaderboard.md``/``.csv`` beside ``report.html``; beside any other name the tables
    take its stem (``review.html`` -> ``review.leaderboard.md``), so ``report -o`` into a
    folder never replaces another run's tables."""
    prefix = "" if html_path.name == "report.html" else f"{html_path.stem}."
    return (html_path.with_name(f"{prefix}leaderboard.md"),
            html_path.with_name(f"{prefix}leaderboard.csv"))


def write_tables(results: dict[str, Any], rows: list[dict[str, Any]], html_path: Path,
                 csv_text: str) -> tuple[Path, Path]:
    """Write the Markdown and CSV leaderboards that go with the HTML report at ``html_path``."""
    md_path, csv_path = table_paths(html_path)
    md = atomic_write_text(md_path, leaderboard_markdown(results, rows))
    csv = atomic_write_text(csv_path, csv_text)
    return md, csv


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _round(value: Any, digits: int) -> float | None:
    return round(float(value), digits) if _finite(value) else None
