"""Render a results dict into one self-contained HTML file (no network, no server).

Jinja2 templates in ``templates/`` (``report.html.j2`` extends ``base.html.j2`` and includes
one partial per section), matplotlib figures inlined as SVG, thumbnails as ``data:`` URIs, CSS
and scripts inline, the data the scripts read as one embedded JSON block. The Markdown and CSV
leaderboards are written beside the HTML file.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import jinja2

from cxrbench.files import atomic_write_text
from cxrbench.provenance import utc_now
from cxrbench.report import (
    calibration_figures,
    clinical,
    context,
    cost_figures,
    prediction_figures,
    reading,
    records,
)
from cxrbench.report.calibration_figures import reliability_rows
from cxrbench.report.card_content import Code
from cxrbench.report.gallery import TOP_MODELS, ImageStore, build_gallery
from cxrbench.report.generalisation import generalisation_context, report_generalisation
from cxrbench.report.hard_cases import hard_cases
from cxrbench.report.model_card import card_context, report_cards
from cxrbench.report.palette import palette
from cxrbench.report.payload import embed_json, report_payload
from cxrbench.report.saliency_context import SaliencyRequest, saliency_context
from cxrbench.report.tables import leaderboard_csv, write_tables


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
    env.filters["anchor"] = anchor
    env.tests["code"] = lambda value: isinstance(value, Code)
    return env


def anchor(job_id: str) -> str:
    """An HTML id for a record: readable, and unique through a short hash of the job id."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", job_id).strip("-")
    return f"rec-{slug}-{hashlib.sha256(job_id.encode()).hexdigest()[:6]}"


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


def _figures(results: dict[str, Any], rows: list[dict[str, Any]],
             inputs: dict[str, Any], styles: Any) -> dict[str, Any]:
    curves = inputs["curves"]
    ok_styles = {m: styles[m] for m in inputs["confusions"] if m in styles}
    stats_models = (results.get("statistics") or {}).get("models", {})
    return {
        "roc": prediction_figures.roc_figure(curves, styles) if curves else None,
        "roc_zoom": prediction_figures.roc_figure(curves, styles, zoom=True) if curves else None,
        "pr": prediction_figures.pr_figure(curves, styles) if curves else None,
        "confusion": [prediction_figures.confusion_figure(m, c, inputs["thresholds"].get(m),
                                                          ok_styles[m].index)
                      for m, c in inputs["confusions"].items() if m in ok_styles],
        "reliability": [calibration_figures.reliability_figure(
            m, b, styles[m], stats_models.get(m, {}).get("test", {}).get("ece", {})
            .get("estimate")) for m, b in inputs["bins"].items() if m in styles],
        "training": cost_figures.training_figures(inputs["histories"], inputs["best_epochs"],
                                                  styles),
        "cost": cost_figures.cost_quality_figure(rows, styles),
    }


def report_context(results: dict[str, Any], data_root: str | Path | None = None,
                   saliency: SaliencyRequest | None = None,
                   run_dir: str | Path | None = None) -> dict[str, Any]:
    statistics = results.get("statistics") or {}
    rows = context.leaderboard_rows(results)
    order = [r["model"] for r in rows]
    gen = report_generalisation(results)  # once, for the section and the model cards
    inputs = context.figure_inputs(results, order)
    styles = palette([r["model"] for r in rows if r["n_ok"]])  # one look per model everywhere
    picks = context.gallery_picks(results, order, inputs["representatives"], len(order))
    ids = ((results.get("evaluation") or {}).get("test") or {}).get("ids") or []
    provenance = results.get("provenance") or {}
    data = dict(provenance.get("data") or {})
    data["path"] = records.resolved_path(data.get("path"))
    root = data_root if data_root is not None else records.resolved_path(data.get("path"))
    store = ImageStore(root)
    top = picks[:TOP_MODELS]
    gallery = build_gallery(top, ids, store) if top else None
    hard = hard_cases(top, picks, ids, store) if store.available else None
    saliency_view = saliency_context(results, saliency, top, gallery, hard, ids,
                                     store.root if store.available else None, styles) \
        if saliency is not None else None
    details = records.record_details(results, order)
    commits: dict[str, list[str]] = {}
    for detail in details:
        commit = detail["provenance"].get("commit") or "unknown"
        if detail["status"] == "ok" and commit not in commits.setdefault(detail["model"], []):
            commits[detail["model"]].append(commit)
    csv_text = leaderboard_csv(results, rows, commits)
    payload = report_payload(results, order, inputs["representatives"], csv_text, store.large)
    best = context.headline(rows, statistics)
    return {
        "results": results,
        "run": results.get("run") or {},
        "progress": context.run_progress(results),
        "provenance": provenance,
        "data": data,
        "split": results.get("split") or {},
        "evaluation": context.evaluation_summary(results),
        "prevalence": reading.split_prevalence(results),
        "synthetic": bool(data.get("synthetic")),
        "statistics": statistics,
        "method": statistics.get("method") or {},
        "rows": rows,
        "n_ok_records": sum(r["status"] == "ok" for r in results.get("records", [])),
        "columns": context.leaderboard_columns(),
        "families": sorted({r["family"] for r in rows if r.get("family")}),
        "headline": best,
        "ties": reading.headline_ties(rows, best["row"]) if best else [],
        "transfer": reading.threshold_transfer(results, rows),
        "comparisons": [{**c, "verdict": reading.verdict(c)}
                        for c in context.comparison_rows(statistics, order)],
        "operating_metrics": [(k, context.METRIC_LABELS[k]) for k in context.OPERATING_METRICS],
        "clinical": clinical.clinical_rows(results, order),
        "clinical_metrics": clinical.CLINICAL_METRICS,
        "seed_rows": context.seed_rows(results, order),
        "seed_metrics": [(k, context.METRIC_LABELS[k]) for k in context.SEED_METRICS],
        "record_rows": context.record_rows(results, order),
        "details": details,
        "job_id_note": records.JOB_ID_NOTE,
        "provenance_groups": records.provenance_groups(results),
        "cpus": records.cpu_models(results),
        "styles": styles,
        "figures": _figures(results, rows, inputs, styles),
        "curve_rows": context.curve_rows(results, inputs, rows),
        "reliability_rows": {m: reliability_rows(b) for m, b in inputs["bins"].items()},
        "histories": inputs["histories"],
        "gallery": gallery,
        "hard": hard,
        "saliency": saliency_view,
        "audit": results.get("data_audit"),
        "weights": context.weights_rows(results),
        "failures": [r for r in results.get("records", []) if r["status"] != "ok"],
        "payload": embed_json(payload),
        "csv_text": csv_text,
        "generalisation": generalisation_context(results, order, gen),
        "model_cards": report_cards(card_context(results, gen), order, run_dir),
        "generated": utc_now(),
    }


def render_report(
    results: dict[str, Any], path: str | Path, *, data_root: str | Path | None = None,
    saliency: SaliencyRequest | None = None,
    run_dir: str | Path | None = None,
) -> Path:
    """Write the HTML report (atomically) and its Markdown and CSV leaderboards beside it
    (``leaderboard.*`` beside ``report.html``, ``NAME.leaderboard.*`` beside ``NAME.html``).

    ``data_root`` is where the test images are read for the gallery (default: the data path
    recorded in the results); the report is written without thumbnails when it is unreachable.
    Summary and statistics are computed here when the results do not carry them.
    ``saliency`` (off by default: it loads the saved models and costs time) adds occlusion and
    Grad-CAM overlays and the outside-thorax summary (:mod:`cxrbench.report.saliency_context`).
    ``run_dir`` holds the run's saved models (``models/<job_id>/``), read for the model cards
    (default: the report's folder).
    """
    if "summary" not in results or "statistics" not in results:
        from cxrbench.stats import with_statistics

        results = with_statistics(results)
    values = report_context(results, data_root, saliency,
                            Path(path).parent if run_dir is None else run_dir)
    html = template_environment().get_template("report.html.j2").render(**values)
    path = atomic_write_text(Path(path), html)
    write_tables(results, values["rows"], path, values["csv_text"])
    return path
