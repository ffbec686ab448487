"""A model card per saved model (``model_card.md`` beside its ``model.json``) and per model in
the report, built as data (:mod:`cxrbench.report.card_content`) from the results file alone.

Every number is read from the results, never recomputed another way: test intervals from
``statistics.records[job].test``; validation, external and subgroup intervals from
``statistics.generalisation`` (computed when the file has no external set, as the report
does: :func:`cxrbench.report.generalisation.report_generalisation`); the threshold-transfer
finding by the report's own rule (:func:`cxrbench.report.reading.threshold_shift`).
``model.json`` (optional) adds what only the saved model knows: its description, every
parameter, when and with what it was fitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxrbench.plugins.artifacts import read_model_info
from cxrbench.plugins.persistence import ArtifactError
from cxrbench.report.card_content import (
    CardContent,
    Code,
    Section,
    Table,
    estimate,
    megabytes,
    number,
    text,
)
from cxrbench.report.card_sections import (
    calibration_section,
    external_section,
    limitations_section,
    subgroups_section,
)
from cxrbench.report.generalisation import report_generalisation
from cxrbench.report.reading import threshold_shift
from cxrbench.report.records import resolved_path

PERFORMANCE_METRICS = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("accuracy", "Accuracy"),
                       ("balanced_accuracy", "Balanced accuracy"),
                       ("recall", "Sensitivity (recall)"), ("specificity", "Specificity"),
                       ("precision", "Precision (PPV)"), ("f1", "F1"))
RULES = {"youden": "Youden's J: the threshold that maximises sensitivity + specificity − 1 on "
                   "validation",
         "fixed": "a fixed threshold, given before the run",
         "sensitivity": "the highest threshold whose validation sensitivity reaches the target "
                        "(the fewest false positives at that sensitivity)"}
INTENDED_USE = text(
    "Research benchmarking: comparing pneumonia classifiers for chest X-rays under one "
    "protocol (same patient-grouped split, threshold chosen on validation, patient-bootstrap "
    "intervals). It is not a medical device: it has no regulatory clearance and was not "
    "validated for diagnosis, triage, screening or any decision about a patient.")


def card_context(results: dict[str, Any],
                 generalisation: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every card of a results file shares: its statistics and generalisation section
    (computed once for all cards; the results must carry ``statistics``)."""
    return {"results": results, "statistics": results.get("statistics") or {},
            "generalisation": generalisation or report_generalisation(results)}


def report_cards(context: dict[str, Any], order: list[str],
                 run_dir: str | Path | None) -> list[CardContent]:
    """The report's cards: one per model (in ``order``), for its representative record (the
    median-AUC seed the figures show), with ``model.json`` when the model was saved under
    ``run_dir`` and is unmodified."""
    results = context["results"]
    models = (context["statistics"].get("models") or {})
    ok = [r for r in results.get("records", []) if r.get("status") == "ok"]
    cards = []
    for model in order:
        jobs = [r for r in ok if r["model"] == model]
        if not jobs:
            continue
        job = (models.get(model) or {}).get("representative") or jobs[0]["job_id"]
        record = next((r for r in jobs if r["job_id"] == job), jobs[0])
        cards.append(build_card(context, record["job_id"],
                                model_info=_saved_info(record, run_dir)))
    return cards


def _saved_info(record: dict[str, Any], run_dir: str | Path | None) -> dict[str, Any] | None:
    artifact = record.get("model_artifact") or {}
    if run_dir is None or not artifact.get("path"):
        return None
    try:
        return dict(read_model_info(Path(run_dir) / artifact["path"],
                                    expected_sha256=artifact.get("model_json_sha256")))
    except ArtifactError:  # moved, modified or foreign: the card shows the results alone
        return None


def build_card(context: dict[str, Any], job_id: str,
               model_info: dict[str, Any] | None = None) -> CardContent:
    """The card of the ok record ``job_id`` (KeyError when there is none)."""
    results = context["results"]
    record = next(r for r in results["records"]
                  if r["job_id"] == job_id and r["status"] == "ok")
    info = model_info or {}
    data = (results.get("provenance") or {}).get("data") or {}
    synthetic = bool(data.get("synthetic"))
    subtitle = text(f"{record['model']}, seed {record.get('seed')} (job ",
                    Code(job_id), f"): {record.get('family')} model, {record.get('framework')}. ",
                    "Trained on SYNTHETIC data: its numbers say nothing about X-rays. "
                    if synthetic else "",
                    "Written by cxrbench from the run's results file; ",
                    Code("cxrbench card RUN_DIR"), " rewrites it.")
    test = ((context["statistics"].get("records") or {}).get(job_id) or {}).get("test") or {}
    sets = context["generalisation"].get("sets") or {}
    val = ((sets.get("val") or {}).get("records") or {}).get(job_id) or {}
    shifts = {key: threshold_shift(((record.get("metrics") or {}).get("val") or {}).get(key),
                                   (test.get(key) or {}).get("estimate"),
                                   (test.get(key) or {}).get("low"),
                                   (test.get(key) or {}).get("high"))
              for key in ("specificity", "recall")}
    sections = [
        _model_section(record, info),
        _use_section(data),
        _data_section(results, sets),
        _performance_section(results, val, test),
        external_section(context, record),
        subgroups_section(context, record),
        calibration_section(context, record, val, test),
        _threshold_section(record, shifts),
        limitations_section(context, record, shifts),
        _cost_section(record, info),
        _provenance_section(results, record, info),
    ]
    return CardContent(title=str(record["model"]), job_id=job_id, subtitle=subtitle,
                       sections=[s for s in sections if s is not None])


def _params(params: dict[str, Any]) -> tuple[str, ...]:
    if not params:
        return text("the plugin's defaults")
    parts: list[str] = []
    for i, (key, value) in enumerate(sorted(params.items())):
        parts += [", " if i else "", Code(f"{key}={value!r}" if isinstance(value, str)
                                          else f"{key}={value}")]
    return text(*parts)


def _model_section(record: dict[str, Any], info: dict[str, Any]) -> Section:
    facts = [("Model", text(Code(record["model"]), f" ({record.get('family')}, "
                            f"{record.get('framework')})")),
             ("Seed", text(record.get("seed"))),
             ("Input", text(f"{record.get('image_size')} px square, {record.get('channels')} "
                            "channel(s)"))]
    if info.get("description"):
        facts.insert(1, ("Description", text(info["description"])))
    facts.append(("Parameters set by the run", _params(record.get("params") or {})))
    if info.get("params"):
        facts.append(("Every parameter", _params(info["params"])))
    fit_info = record.get("fit_info") or {}
    chosen = {k: v for k, v in fit_info.items() if k in ("method", "best_epoch")}
    if isinstance(fit_info.get("chosen"), dict):
        chosen.update(fit_info["chosen"])
    if chosen:
        facts.append(("Chosen during fitting", _params(chosen)))
    artifact = record.get("model_artifact") or {}
    if artifact.get("path"):
        facts.append(("Saved model", text(Code(artifact["path"]), " (model.json sha256 ",
                                          Code(artifact.get("model_json_sha256") or "?"), ")")))
    else:
        facts.append(("Saved model", text("not saved" + (
            f": {(artifact.get('error') or {}).get('message')}" if artifact.get("error")
            else " (run with --save-models to keep it)"))))
    return Section("Model", facts=facts)


def _use_section(data: dict[str, Any]) -> Section:
    paragraphs = [INTENDED_USE]
    if data.get("synthetic"):
        population = text("Its training data are SYNTHETIC X-ray-like images generated by "
                          "cxrbench: it is a demonstration and detects nothing.")
    elif data.get("kind") == "kaggle":
        population = text(
            "Its training data are in the layout of the Kaggle \"Chest X-Ray Images "
            "(Pneumonia)\" set (Kermany et al., 2018), which holds paediatric films (children "
            "aged one to five) from one centre, Guangzhou Women and Children's Medical Center, "
            "China: one population, one hospital's equipment and protocol.")
    else:
        population = text("Its training data are the set at ",
                          Code(str(resolved_path(data.get("path")))),
                          f" (layout: {data.get('kind')}); the population it represents is "
                          "what that set's documentation says.")
    paragraphs.append(population)
    bullets = [text("Not for adults, other hospitals or scanners, other views or other "
                    "pneumonias without an external validation on such films (see below)."),
               text("Not for choosing a patient's treatment, nor for reading films without a "
                    "clinician."),
               text("Its probability is calibrated only as far as the calibration section "
                    "shows, on data like its training data.")]
    return Section("Intended use", paragraphs=paragraphs, bullets=bullets)


def _data_section(results: dict[str, Any], sets: dict[str, Any]) -> Section:
    data = (results.get("provenance") or {}).get("data") or {}
    split = results.get("split") or {}
    path = Code(str(resolved_path(data.get("path"))))
    facts = [("Data", text(path, f" (layout {data.get('kind')}, "
                           f"{data.get('n_records')} images, {len(data.get('unreadable') or [])} "
                           "unreadable)")),
             ("Data hash", text(Code(str(data.get("data_hash"))))),
             ("Split sha256", text(Code(str(split.get("sha256"))))),
             ("Split", text(f"{split.get('strategy')}; seed {split.get('seed')}, validation "
                            f"fraction {split.get('val_fraction')}")),
             ("Patient grouping", text("validation is carved from training by patient: no "
                                       "patient has images in both"))]
    rows = []
    for name, label in (("train", "training"), ("val", "validation"), ("test", "test")):
        counts = (split.get("counts") or {}).get(name) or {}
        n_patients = (sets.get(name) or {}).get("n_patients")
        rows.append([text(label), text(counts.get("normal", "–")),
                     text(counts.get("pneumonia", "–")),
                     text(sum(v for v in counts.values() if isinstance(v, int))),
                     text("–" if n_patients is None else n_patients)])
    table = Table(text("Images per split"), [text("split"), text("NORMAL"), text("PNEUMONIA"),
                                             text("images"), text("patients")], rows)
    return Section("Data and split", facts=facts, tables=[table])


def _performance_section(results: dict[str, Any], val: dict[str, Any],
                         test: dict[str, Any]) -> Section:
    rows = [[text(label), text(estimate(val.get(key))), text(estimate(test.get(key)))]
            for key, label in PERFORMANCE_METRICS]
    boot = (((results.get("statistics") or {}).get("method") or {}).get("bootstrap") or {})
    note = text(f"Estimate and 95 % patient-bootstrap interval ({boot.get('n_resamples')} "
                f"resamples of patients, seed {boot.get('seed')}, percentile), at the record's "
                "validation threshold. Test images were never used for fitting, model "
                "selection or the threshold.")
    return Section("Validation and test performance",
                   tables=[Table(text("This record (one seed)"),
                                 [text("metric"), text("validation"), text("test")], rows)],
                   notes=[note])


def _threshold_section(record: dict[str, Any], shifts: dict[str, Any]) -> Section:
    rule = str(record.get("threshold_rule"))
    kind = rule.split(":")[0]
    facts = [("Threshold", text(number(record.get("threshold"), 4),
                                " (probability of pneumonia at or above it: PNEUMONIA)")),
             ("Rule", text(Code(rule), f": {RULES.get(kind, 'as recorded')}; chosen on the "
                           "validation split only"))]
    for key, label in (("recall", "Sensitivity"), ("specificity", "Specificity")):
        shift = shifts[key]
        facts.append((f"{label} at it", text(
            f"validation {number(shift['val'])}, test {number(shift['test'])}",
            " (validation outside the test interval)" if shift["outside"] else "")))
    return Section("Decision threshold", facts=facts)


def _cost_section(record: dict[str, Any], info: dict[str, Any]) -> Section:
    timing = record.get("timing") or {}
    artifact = record.get("model_artifact") or {}
    n_params = record.get("n_params") if record.get("n_params") is not None else info.get(
        "n_params")
    facts = [("Fit", text(f"{number(timing.get('fit_s'), 2)} s")),
             ("Prediction", text(f"{number(timing.get('predict_ms_per_image'), 3)} ms per image "
                                 f"(test split, {number(timing.get('predict_s'), 2)} s)")),
             ("Peak memory", text(f"{number(timing.get('peak_rss_mb'), 0)} MB (job process)")),
             ("Size on disk", text(megabytes(artifact.get("bytes")) if artifact.get("path")
                                   else "not saved")),
             ("Parameters", text("not reported by the plugin" if n_params is None
                                 else f"{int(n_params):,}".replace(",", " ")))]
    return Section("Cost", facts=facts, notes=[text(
        "Measured on the run's machine (see provenance); timings depend on its load.")])


def _provenance_section(results: dict[str, Any], record: dict[str, Any],
                        info: dict[str, Any]) -> Section:
    prov = results.get("provenance") or {}
    git = prov.get("git") or {}
    plugin = record.get("plugin") or {}
    packages = ", ".join(f"{k} {v}" for k, v in sorted((prov.get("packages") or {}).items()))
    facts = [("Commit", text(Code(str(git.get("commit") or "unknown")),
                             " (uncommitted changes)" if git.get("dirty") else "")),
             ("Packages", text(packages or "not recorded")),
             ("Python and machine", text(f"Python {prov.get('python')}, {prov.get('platform')}, "
                                         f"{prov.get('cpu_count')} CPU(s) {prov.get('cpu_model')},"
                                         f" backend {prov.get('backend')} on "
                                         f"{prov.get('device')}")),
             ("Data hash", text(Code(str((prov.get("data") or {}).get("data_hash"))))),
             ("Split sha256", text(Code(str(prov.get("split_sha256"))))),
             ("Plugin", text(Code(str(plugin.get("class"))), " from ",
                             Code(str(plugin.get("file"))), f" (sha256 of its "
                             f"{plugin.get('sha256_of') or 'source'}: ",
                             Code(str(plugin.get("sha256"))), ")")
              if plugin else text("not recorded")),
             ("Run", text(f"started {(results.get('run') or {}).get('started')}, record "
                          f"finished {record.get('finished')}"))]
    if info.get("created"):
        facts.append(("Model saved", text(f"{info['created']}, cxrbench "
                                          f"{(info.get('versions') or {}).get('cxrbench')}")))
    return Section("Provenance", facts=facts)
