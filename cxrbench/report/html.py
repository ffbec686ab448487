"""Render a results dict into one self-contained HTML file (no network, no server)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

from cxrbench.metrics import METRICS, TIMING_DIRECTIONS
from cxrbench.results import atomic_write_text, leaderboard

TIMING_LABELS = {
    "fit_s": "Fit (s)",
    "predict_s": "Predict (s)",
    "predict_ms_per_image": "Predict (ms/img)",
    "peak_rss_mb": "Peak RSS (MB)",
}


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates_dir())),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    return env


def _templates_dir() -> Path:
    from importlib.resources import files

    return Path(str(files("cxrbench._templates")))


def format_number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def report_context(results: dict[str, Any]) -> dict[str, Any]:
    board = leaderboard(results)
    return {
        "results": results,
        "run": results["run"],
        "provenance": results["provenance"],
        "split": results["split"],
        "rows": board.to_dict("records") if not board.empty else [],
        "metrics": [(name, m.label, m.higher_is_better) for name, m in METRICS.items()],
        "timings": [(name, TIMING_LABELS[name]) for name in TIMING_DIRECTIONS],
        "failures": [r for r in results["records"] if r["status"] != "ok"],
        "synthetic": bool(results["provenance"].get("data", {}).get("synthetic")),
    }


def render_report(
    results: dict[str, Any], path: str | Path, *, data_root: str | Path | None = None
) -> Path:
    """Write the HTML report for ``results`` to ``path`` (atomically) and return the path."""
    html = template_environment().get_template("report.html.j2").render(**report_context(results))
    return atomic_write_text(Path(path), html)
