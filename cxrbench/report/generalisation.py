"""The report's "Generalisation" section: what it shows, computed from a results dict.

For every model and data set (validation, test, each external set): ROC AUC, sensitivity and
specificity at the validation threshold, and ECE, each with its patient-bootstrap interval;
the drop from internal test to each external set; Kendall's tau between the sets' rankings;
score distributions per class (a figure); the subgroup table; and the source check. The
numbers come from ``statistics.generalisation`` (computed here when the results hold no
external set, so a plain run shows its validation, test and subgroups too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.report.svg import figure_style, to_svg
from cxrbench.stats.generalisation import generalisation_statistics

SET_METRICS = (("roc_auc", "ROC AUC"), ("recall", "Sensitivity"),
               ("specificity", "Specificity"), ("ece", "ECE"))
FIGURE_MODELS = 6  # score distributions of the first models in leaderboard order
BINS = np.linspace(0.0, 1.0, 21)


def set_label(name: str, kind: str, synthetic: bool = False) -> str:
    """How a set is named in tables: external sets say so (development sets are labelled by
    their name, which the user chooses)."""
    if kind == "internal":
        return {"val": "validation", "test": "test (internal)"}.get(name, name)
    return f"{name} (external{', SYNTHETIC' if synthetic else ''})"


def generalisation_context(results: dict[str, Any], order: list[str],
                           gen: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Everything the partial template shows; None when no set has been scored. ``gen``: the
    results' generalisation statistics (:func:`report_generalisation`), when computed already."""
    gen = gen or report_generalisation(results)
    if not gen["sets"]:
        return None
    external = results.get("external") or {}
    sets = [{"name": name, "kind": s["kind"], "n_images": s["n_images"],
             "n_pneumonia": s["n_pneumonia"], "n_patients": s["n_patients"],
             "label": set_label(name, s["kind"],
                                bool((external.get(name) or {}).get("synthetic")))}
            for name, s in gen["sets"].items()]
    models = [m for m in order if any(m in s["models"] for s in gen["sets"].values())]
    rows = [{"model": m, "cells": {s["name"]: gen["sets"][s["name"]]["models"].get(m)
                                   for s in sets}} for m in models]
    return {
        "sets": sets,
        "external_names": [s["name"] for s in sets if s["kind"] == "external"],
        "metrics": SET_METRICS,
        "rows": rows,
        "drops": _drops(gen, models),
        "ranking": [{"name": name, "label": next(s["label"] for s in sets if s["name"] == name),
                     **value} for name, value in gen["ranking"].items()],
        "subgroups": _subgroups(gen, sets, models),
        "source_checks": _source_checks(results, sets),
        "errors": [{"name": name, "path": e.get("path"),
                    "message": (e.get("error") or {}).get("message")}
                   for name, e in sorted(external.items()) if e.get("status") == "error"],
        "model_errors": [{"name": name, "job_id": job,
                          "message": (r.get("error") or {}).get("message")}
                         for name, e in sorted(external.items())
                         for job, r in (e.get("records") or {}).items()
                         if r.get("status") == "error"],
        "figure": distribution_figure(results, models[:FIGURE_MODELS], sets),
        "method": gen.get("method") or {},
    }


def report_generalisation(results: dict[str, Any]) -> dict[str, Any]:
    """``statistics.generalisation``, computed when the results hold no external set (a plain
    run still shows its validation, test and subgroup scores)."""
    return ((results.get("statistics") or {}).get("generalisation")
            or generalisation_statistics(results))


def _drops(gen: dict[str, Any], models: list[str]) -> list[dict[str, Any]]:
    return [{"name": name, "rows": [{"model": m, **values[m]} for m in models if m in values]}
            for name, values in gen["drop"].items()]


def _subgroups(gen: dict[str, Any], sets: list[dict[str, Any]],
               models: list[str]) -> list[dict[str, Any]]:
    out = []
    for s in sets:
        for name, entry in (gen["subgroups"].get(s["name"]) or {}).items():
            own = ("recall" if entry["classes"] == ["PNEUMONIA"] else
                   "specificity" if entry["classes"] == ["NORMAL"] else "accuracy")
            out.append({"set": s["label"], "subgroup": name, "n_images": entry["n_images"],
                        "n_patients": entry["n_patients"], "classes": entry["classes"],
                        "own_metric": own,
                        "models": [{"model": m, "own": entry["models"][m].get(own),
                                    "roc_auc": entry["models"][m].get("roc_auc")}
                                   for m in models if m in entry["models"]]})
    return out


def _source_checks(results: dict[str, Any], sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    internal = results.get("source_check") or {}
    external = results.get("external") or {}
    rows = []
    for s in sets:
        check = (internal.get(s["name"]) if s["kind"] == "internal"
                 else (external.get(s["name"]) or {}).get("source_check"))
        if check:
            rows.append({"label": s["label"], **check})
    return rows


def _probabilities(results: dict[str, Any], job: str, set_name: str, kind: str
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    if kind == "internal":
        section = (results.get("evaluation") or {}).get(set_name) or {}
        record = next((r for r in results["records"] if r["job_id"] == job), {})
        p = (record.get("predictions") or {}).get(set_name)
    else:
        section = (results.get("external") or {}).get(set_name) or {}
        p = ((section.get("records") or {}).get(job) or {}).get("predictions")
    labels = section.get("labels") or []
    if p is None or len(p) != len(labels) or not len(labels):
        return None
    return np.asarray(labels, int), np.asarray(p, float)


def distribution_figure(results: dict[str, Any], models: list[str],
                        sets: list[dict[str, Any]]) -> str | None:
    """Histograms of the probability of pneumonia per class: a row per model (its median-AUC
    seed), a column per set, the validation threshold as a line. A shift shows as the two
    humps moving against the line from validation to test to an external set."""
    import matplotlib.pyplot as plt

    stats_models = (results.get("statistics") or {}).get("models") or {}
    records = {r["job_id"]: r for r in results["records"] if r["status"] == "ok"}
    jobs = {}
    for m in models:
        job = (stats_models.get(m) or {}).get("representative")
        jobs[m] = job if job in records else next(
            (j for j, r in records.items() if r["model"] == m), None)
    panels = [(m, s) for m in models if jobs[m] for s in sets]
    if not panels:
        return None
    with figure_style():
        fig, axes = plt.subplots(len(models), len(sets), squeeze=False, sharex=True,
                                 figsize=(2.3 * len(sets) + 0.8, 1.55 * len(models) + 0.9))
        for i, m in enumerate(models):
            threshold = records[jobs[m]].get("threshold") if jobs[m] else None
            for j, s in enumerate(sets):
                ax = axes[i][j]
                data = _probabilities(results, jobs[m], s["name"], s["kind"]) if jobs[m] else None
                if data is None:
                    ax.set_axis_off()
                    continue
                y, p = data
                for label, color, name in ((0, "#0072B2", "normal"),
                                           (1, "#D55E00", "pneumonia")):
                    if (y == label).any():
                        ax.hist(p[y == label], bins=BINS, density=True, histtype="stepfilled",
                                alpha=0.45, color=color, label=name)
                if threshold is not None:
                    ax.axvline(threshold, color="#333333", lw=1, ls="--")
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(s["label"], fontsize=9)
                if j == 0:
                    ax.set_ylabel(m if len(m) <= 20 else m[:19] + "…", fontsize=8)
        for ax in axes[-1]:
            ax.set_xlabel("P(pneumonia)", fontsize=8)
        handles, labels = next((ax.get_legend_handles_labels() for row in axes for ax in row
                                if ax.get_legend_handles_labels()[0]), ([], []))
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
        return to_svg(fig, "fig-shift", "Probability of pneumonia per class on each data set, "
                      "per model, with the validation threshold")

