"""The sections of a model card that read other data sets: external validation, subgroups,
calibration and the known limitations (see :mod:`cxrbench.report.model_card`)."""

from __future__ import annotations

import math
from typing import Any

from cxrbench.report.card_content import Code, Section, Table, estimate, number, text
from cxrbench.report.generalisation import set_label
from cxrbench.report.records import resolved_path

EXTERNAL_METRICS = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"),
                    ("recall", "Sensitivity"), ("specificity", "Specificity"),
                    ("accuracy", "Accuracy"))
SUBGROUP_METRICS = (("roc_auc", "ROC AUC"), ("recall", "Sensitivity"),
                    ("specificity", "Specificity"), ("accuracy", "Accuracy"))
CALIBRATION_METRICS = (("brier", "Brier score"), ("ece", "ECE"))
SOURCE_VISIBLE = 0.6  # a source check whose interval lies above this: the sources look different


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _record_scores(context: dict[str, Any], name: str, job_id: str) -> dict[str, Any]:
    sets = context["generalisation"].get("sets") or {}
    return ((sets.get(name) or {}).get("records") or {}).get(job_id) or {}


def _external_names(context: dict[str, Any]) -> list[str]:
    return sorted(context["results"].get("external") or {})


def _model_count(context: dict[str, Any], name: str, model: str) -> int:
    sets = context["generalisation"].get("sets") or {}
    return int(((sets.get(name) or {}).get("models") or {}).get(model, {}).get("n_records", 1))


def external_section(context: dict[str, Any], record: dict[str, Any]) -> Section:
    external = context["results"].get("external") or {}
    job, model = record["job_id"], record["model"]
    if not external:
        return Section("External validation", paragraphs=[text(
            "No external set has been scored. ",
            Code("cxrbench evaluate RUN_DIR --data PATH --name NAME"),
            " scores the saved models on a labelled set from another source, at this "
            "threshold, and rewrites this card.")])
    facts, scored = [], []
    for name in _external_names(context):
        entry = external[name]
        mine = (entry.get("records") or {}).get(job) or {}
        if entry.get("status") != "ok":
            message = (entry.get("error") or {}).get("message")
            facts.append((name, text(f"the set could not be scored: {message}")))
            continue
        if mine.get("status") != "ok":
            why = ((mine.get("error") or {}).get("message") if mine
                   else "this model was not saved when the set was scored")
            facts.append((name, text(f"not scored: {why}")))
            continue
        scored.append(name)
        counts = entry.get("counts") or {}
        drop = ((context["generalisation"].get("drop") or {}).get(name) or {}).get(model)
        n = _model_count(context, name, model)
        check = entry.get("source_check") or {}
        facts.append((name, text(
            Code(str(resolved_path(entry.get("path")))), f" ({entry.get('kind')}, "
            f"{counts.get('NORMAL', '?')} NORMAL, {counts.get('PNEUMONIA', '?')} PNEUMONIA"
            f"{', SYNTHETIC' if entry.get('synthetic') else ''}; data hash ",
            Code(str(entry.get("data_hash"))[:16]), "…). ROC AUC drop from test: ",
            estimate(drop), f" (mean over the model's {n} seeds)" if n > 1 else "", ". ",
            "Source check (training vs this set's images): ROC AUC "
            f"{estimate({**check, 'estimate': check.get('roc_auc')})}."
            if check.get("status") == "ok" else "")))
    tables = []
    if scored:
        test = ((context["statistics"].get("records") or {}).get(job) or {}).get("test") or {}
        rows = [[text(label), text(estimate(test.get(key))),
                 *[text(estimate(_record_scores(context, name, job).get(key))) for name in scored]]
                for key, label in EXTERNAL_METRICS]
        tables.append(Table(text("At the validation threshold: test vs external sets"),
                            [text("metric"), text("test (internal)"),
                             *[text(set_label(name, "external")) for name in scored]], rows))
    return Section("External validation", facts=facts, tables=tables, notes=[text(
        "External sets are scored with the saved model as it is (no refit, no new threshold); "
        "the drop's interval comes from independent resamples of test and external patients. "
        "A source check near 1 means the set's films are easy to tell from the training films, "
        "so its scores mix pneumonia with the source.")] if scored else [])


def _subgroup_scores(entry: dict[str, Any], job: str, model: str) -> tuple[dict[str, Any], bool]:
    """The record's own scores in a subgroup, or (older files) its model's seed mean."""
    if job in (entry.get("records") or {}):
        return entry["records"][job], False
    return (entry.get("models") or {}).get(model) or {}, bool(entry.get("models"))


def subgroups_section(context: dict[str, Any], record: dict[str, Any]) -> Section | None:
    groups = context["generalisation"].get("subgroups") or {}
    job, model = record["job_id"], record["model"]
    rows, seed_mean = [], False
    for name, subgroups in groups.items():
        kind = "internal" if name in ("val", "test") else "external"
        for subgroup, entry in subgroups.items():
            scores, mean = _subgroup_scores(entry, job, model)
            seed_mean |= mean
            own = set(entry.get("metrics") or [])
            cells = [text(estimate(scores.get(key)) if key in own and scores else "–")
                     for key, _ in SUBGROUP_METRICS]
            rows.append([text(set_label(name, kind)), text(subgroup),
                         text(f"{entry.get('n_images')} ({entry.get('n_patients')})"),
                         text(", ".join(entry.get("classes") or [])), *cells])
    if not rows:
        return None
    notes = [text("A one-class subgroup is scored with every image of the other class in its "
                  "set: its own metric is sensitivity (pneumonia) or specificity (normal). "
                  "Subgroups under 5 images are listed, not scored.")]
    if seed_mean:
        notes.append(text("This results file holds subgroup scores per model only: they are "
                          "the mean over the model's seeds."))
    return Section("Subgroups", tables=[Table(
        text("Per subgroup, at the validation threshold"),
        [text("set"), text("subgroup"), text("images (patients)"), text("classes"),
         *[text(label) for _, label in SUBGROUP_METRICS]], rows)], notes=notes)


def calibration_section(context: dict[str, Any], record: dict[str, Any], val: dict[str, Any],
                        test: dict[str, Any]) -> Section:
    names = [n for n in _external_names(context)
             if _record_scores(context, n, record["job_id"])]
    header = [text("metric"), text("validation"), text("test"),
              *[text(set_label(n, "external")) for n in names]]
    rows = [[text(label), text(estimate(val.get(key))), text(estimate(test.get(key))),
             *[text(estimate(_record_scores(context, n, record["job_id"]).get(key)))
               for n in names]] for key, label in CALIBRATION_METRICS]
    binning = ((context["statistics"].get("method") or {}).get("calibration") or {})
    return Section("Calibration", tables=[Table(text("Lower is better"), header, rows)],
                   notes=[text("Brier: mean squared error of the probability. ECE: expected "
                               "calibration error over "
                               f"{binning.get('bins', 10)} bins ({binning.get('binning', '')})."
                               )])


def _subgroup_gaps(context: dict[str, Any], record: dict[str, Any]) -> list[tuple[str, ...]]:
    """Subgroups whose own metric's interval lies wholly below the set's overall value."""
    out = []
    for name, subgroups in (context["generalisation"].get("subgroups") or {}).items():
        overall = _record_scores(context, name, record["job_id"])
        for subgroup, entry in subgroups.items():
            scores, _ = _subgroup_scores(entry, record["job_id"], record["model"])
            classes = entry.get("classes") or []
            key = {("PNEUMONIA",): "recall", ("NORMAL",): "specificity"}.get(tuple(classes))
            mine, whole = (scores.get(key) or {}) if key else {}, overall.get(key or "") or {}
            if _finite(mine.get("high")) and _finite(whole.get("estimate")) and (
                    mine["high"] < whole["estimate"]):
                label = "sensitivity" if key == "recall" else "specificity"
                kind = "internal" if name in ("val", "test") else "external"
                out.append(text(f"Lower {label} on the {subgroup} subgroup of "
                                f"{set_label(name, kind)}: {estimate(mine)}, against "
                                f"{number(whole['estimate'])} on the whole set."))
    return out


def limitations_section(context: dict[str, Any], record: dict[str, Any],
                        shifts: dict[str, Any]) -> Section:
    results = context["results"]
    bullets = []
    moved = [f"{label} {number(shifts[key]['val'])} on validation, {number(shifts[key]['test'])}"
             " on test" for key, label in (("specificity", "specificity"),
                                            ("recall", "sensitivity")) if shifts[key]["outside"]]
    if moved:
        bullets.append(text(
            "The validation threshold does not carry over to test: " + "; ".join(moved)
            + " (each validation value outside the test value's 95 % interval). The operating "
            "point moves between sources; a new site needs its own threshold check."))
    for reason in (results.get("small_data") or {}).get("reasons") or []:
        bullets.append(text(f"Small data: {reason}."))
    source = ((results.get("source_check") or {}).get("test") or {})
    if source.get("status") == "ok" and _finite(source.get("low")) and (
            source["low"] > SOURCE_VISIBLE):
        bullets.append(text("The official test films are distinguishable from the training "
                            "films by appearance alone (source check ROC AUC "
                            f"{estimate({**source, 'estimate': source.get('roc_auc')})})."))
    for name in _external_names(context):
        drop = ((context["generalisation"].get("drop") or {}).get(name) or {}).get(
            record["model"])
        if drop and _finite(drop.get("low")) and drop["low"] > 0:
            bullets.append(text(f"ROC AUC falls by {estimate(drop)} from test to {name}: the "
                                "test split overstates performance on that source."))
    bullets += _subgroup_gaps(context, record)
    bullets.append(text("One training set, one split: the intervals reflect test-set sampling "
                        "for this seed, not the spread over training seeds (the report's seed "
                        "table shows it)."))
    return Section("Known limitations", bullets=bullets)
