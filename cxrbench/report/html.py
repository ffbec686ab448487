"""Render a results dict into one self-contained HTML file (no network, no server).

Jinja2 templates in ``templates/`` (``report.html.j2`` extends ``base.html.j2`` and includes
one partial per section), matplotlib figures inlined as SVG, thumbnails as ``data:`` URIs, CSS
and the sorting script inline. ``leaderboard.md`` and ``leaderboard.csv`` are written beside
the HTML file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

from cxrbench.files import atomic_write_text
from cxrbench.provenance import utc_now
from cxrbench.report import context, cost_figures, prediction_figures
from cxrbench.report.gallery import TOP_MODELS, build_gallery
from cxrbench.report.svg import palette
from cxrbench.report.tables import write_tables


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates_dir())),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["pval"] = format_p_value
    env.filters["sortvalue"] = sort_value
    return env


def _templates_dir() -> Path:
    from importlib.resources import files

    return Path(str(files("cxrbench._templates")))


def format_number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or digits == 0:
        return f"{int(round(value)):,}".replace(",", " ")
    return f"{value:.{digits}f}"


def format_p_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


def sort_value(value: Any) -> str:
    """The ``data-value`` the sorting script reads: a number, or empty (sorted last)."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return repr(float(value)) if math.isfinite(value) else ""
    return str(value)


def report_context(results: dict[str, Any], data_root: str | Path | None = None
                   ) -> dict[str, Any]:
    statistics = results.get("statistics") or {}
    rows = context.leaderboard_rows(results)
    order = [r["model"] for r in rows]
    inputs = context.figure_inputs(results, order)
    aucs = {r["model"]: r.get("roc_auc") for r in rows}
    colors = palette([r["model"] for r in rows if r["n_ok"]])  # same colour in every figure
    figs = {
        "curves": (prediction_figures.roc_pr_figure(inputs["curves"], aucs, colors)
                   if inputs["curves"] else None),
        "confusion": (prediction_figures.confusion_grid_figure(inputs["confusions"],
                                                               inputs["thresholds"])
                      if inputs["confusions"] else None),
        "reliability": (prediction_figures.reliability_figure(inputs["bins"], colors)
                        if inputs["bins"] else None),
        "training": cost_figures.training_curves_figure(inputs["histories"], inputs["best_epochs"],
                                                  colors),
        "cost": cost_figures.cost_quality_figure(rows, colors),
    }
    picks = context.gallery_picks(results, order, inputs["representatives"], TOP_MODELS)
    ids = ((results.get("evaluation") or {}).get("test") or {}).get("ids") or []
    root = data_root if data_root is not None else context.data_root_default(results)
    provenance = results.get("provenance") or {}
    return {
        "results": results,
        "run": results.get("run") or {},
        "progress": context.run_progress(results),
        "provenance": provenance,
        "data": provenance.get("data") or {},
        "split": results.get("split") or {},
        "evaluation": context.evaluation_summary(results),
        "synthetic": bool((provenance.get("data") or {}).get("synthetic")),
        "statistics": statistics,
        "method": statistics.get("method") or {},
        "rows": rows,
        "columns": context.leaderboard_columns(),
        "headline": context.headline(rows, statistics),
        "comparisons": context.comparison_rows(statistics, order),
        "operating_metrics": [(k, context.METRIC_LABELS[k]) for k in context.OPERATING_METRICS],
        "seed_rows": context.seed_rows(results, order),
        "seed_metrics": [(k, context.METRIC_LABELS[k]) for k in context.SEED_METRICS],
        "record_rows": context.record_rows(results, order),
        "figures": figs,
        "gallery": build_gallery(picks, ids, root) if picks else None,
        "audit": results.get("data_audit"),
        "weights": context.weights_rows(results),
        "failures": [r for r in results.get("records", []) if r["status"] != "ok"],
        "generated": utc_now(),
    }


def render_report(
    results: dict[str, Any], path: str | Path, *, data_root: str | Path | None = None
) -> Path:
    """Write the HTML report (atomically), ``leaderboard.md`` and ``leaderboard.csv`` beside it.

    ``data_root`` is where the test images are read for the gallery (default: the data path
    recorded in the results); the report is written without thumbnails when it is unreachable.
    Summary and statistics are computed here when the results do not carry them.
    """
    if "summary" not in results or "statistics" not in results:
        from cxrbench.stats import with_statistics

        results = with_statistics(results)
    values = report_context(results, data_root)
    html = template_environment().get_template("report.html.j2").render(**values)
    path = atomic_write_text(Path(path), html)
    write_tables(results, values["rows"], path.parent)
    return path
