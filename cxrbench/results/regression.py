"""Regression checks: a candidate results file against a baseline, direction-aware per metric.

A metric regresses when it is worse than the baseline (in its own direction, from
``cxrbench.scoring.metrics.higher_is_better``) by more than its tolerance AND by more than
the noise.
The noise of a score is the half-width of the 95 % paired patient-bootstrap interval of the
difference (both files hold test predictions on the same images), else of the candidate's own
bootstrap interval (computed from its records, never read from its stored ``statistics``);
with two or more seeds on each side, 1.96 standard errors of the difference of the seed means
are added (in quadrature). Timings use the seed spread only. A model whose jobs succeeded in
the baseline regresses too when they fail in the candidate, when it is missing from the
candidate, or when its candidate records hold no scores (a metric defined in the baseline and
missing or undefined in the candidate is a regression of that metric). Runs on different data,
split plans or threshold rules are refused (exit 2; rules compare by meaning: "0.5" is
"fixed:0.5"); a different machine or backend is a warning.

    comparison = compare_files("results/baseline.json", "out/results.json")
    print(comparison.regressions); sys.exit(comparison.exit_code)

(``cxrbench compare`` renders it for the terminal and as Markdown: ``cxrbench.cli.compare``.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.results.external_view import external_name, scored_sets, with_external_split
from cxrbench.results.io import read_results
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS, higher_is_better
from cxrbench.scoring.thresholds import canonical_rule

EXIT_OK, EXIT_REGRESSION, EXIT_INCOMPARABLE = 0, 1, 2
MACHINE_FIELDS = ("hostname", "cpu_model", "cpu_count", "backend", "device")
Z95 = 1.959964


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: max(floor, absolute, relative x |baseline|)."""

    absolute: float = 0.0
    relative: float = 0.0
    floor: float = 0.0  # timings: jitter below this is never a regression
    gated: bool = True  # False: reported, never a failure

    def allowance(self, baseline: float) -> float:
        return max(self.floor, self.absolute, self.relative * abs(baseline))

    def describe(self) -> str:
        if not self.gated:
            return "off"
        parts = [f"{self.absolute:g}"] if self.absolute else []
        parts += [f"{100 * self.relative:g}%"] if self.relative else []
        text = " or ".join(parts) or "0"
        return f"{text} (min {self.floor:g})" if self.floor else text


# Scores: absolute, by metric group (cxrbench.scoring.metrics.Metric.group). AUCs are
# threshold-free and steadiest; threshold metrics move with the threshold chosen on validation
# (recall and specificity against each other); operating points are read off a step-wise ROC
# curve.
GROUP_TOLERANCES: dict[str, Tolerance] = {
    "ranking": Tolerance(absolute=0.01),
    "threshold": Tolerance(absolute=0.02),
    "calibration": Tolerance(absolute=0.01),
    "operating_point": Tolerance(absolute=0.05),
}
METRIC_TOLERANCES: dict[str, Tolerance] = {
    "precision": Tolerance(absolute=0.03),
    "recall": Tolerance(absolute=0.03),
    "specificity": Tolerance(absolute=0.03),
    "ece": Tolerance(absolute=0.02),
    # Timings: relative to the baseline, with a floor for tiny ones. Wall-clock times on a
    # shared machine swing both ways: three identical cold quick-suite runs on the busy 2-core
    # dev box differed by up to x3.75 (benchmarks/README.md, "Noise, measured"), hence +400 %
    # (5x); tighten on a dedicated runner (--fail-on fit_s:25%). Memory is steady (+-5 %).
    "fit_s": Tolerance(relative=4.0, floor=5.0),
    "predict_s": Tolerance(relative=4.0, floor=1.0),
    "predict_ms_per_image": Tolerance(relative=4.0, floor=1.0),
    "peak_rss_mb": Tolerance(relative=0.25, floor=100.0),
}


def default_tolerances() -> dict[str, Tolerance]:
    """The tolerance of every compared quantity: each metric in METRICS, then the timings."""
    out = {name: METRIC_TOLERANCES.get(name) or GROUP_TOLERANCES.get(
        getattr(metric, "group", "threshold"), Tolerance(absolute=0.02))
        for name, metric in METRICS.items()}
    out.update({name: METRIC_TOLERANCES[name] for name in TIMING_DIRECTIONS})
    return out


class CompareError(ValueError):
    """A bad --fail-on specification or comparison option."""


def parse_fail_on(items: Iterable[str]) -> dict[str, Tolerance]:
    """``["roc_auc:0.02", "fit_s:50%", "peak_rss_mb:off"]`` -> overrides of the defaults.

    A plain number is absolute (the metric's units) and replaces the whole default; ``N%`` is
    relative to the baseline and keeps the metric's noise floor; ``off`` reports only.
    """
    overrides: dict[str, Tolerance] = {}
    for item in items:
        metric, sep, text = item.partition(":")
        metric, text = metric.strip(), text.strip().lstrip("+")
        if not sep or not text:
            raise CompareError(f"--fail-on {item!r} must look like METRIC:TOLERANCE, "
                               "e.g. roc_auc:0.02 or fit_s:50%")
        defaults = default_tolerances()
        if metric not in defaults:
            raise CompareError(f"--fail-on {item!r}: unknown metric {metric!r}; "
                               f"known: {', '.join(defaults)}")
        default = defaults[metric]
        if text.lower() in ("off", "none"):
            overrides[metric] = replace(default, gated=False)
            continue
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise CompareError(f"--fail-on {item!r}: {text!r} is not a number, N% or 'off'"
                               ) from None
        if not math.isfinite(value) or value < 0:
            raise CompareError(f"--fail-on {item!r}: the tolerance must be >= 0")
        overrides[metric] = (Tolerance(relative=value, floor=default.floor) if text.endswith("%")
                             else Tolerance(absolute=value))
    return overrides


@dataclass
class MetricDelta:
    metric: str
    baseline: float | None
    candidate: float | None
    worse_by: float | None  # > 0: worse in the metric's direction
    allowed: float
    noise: float
    noise_source: str  # "paired bootstrap", "candidate's bootstrap CI", "seed std", "none"
    status: str  # regression | within noise | within tolerance | better | same | undefined | off


@dataclass
class ModelComparison:
    model: str
    status: str  # compared | added | missing | removed | failed | empty | fixed | failed in both
    seeds: list[int] = field(default_factory=list)
    deltas: list[MetricDelta] = field(default_factory=list)
    failed_jobs: list[str] = field(default_factory=list)  # ok in baseline, failing now
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        out = [f"{self.model}: {job}" for job in self.failed_jobs]
        for d in self.deltas:
            if d.status == "regression" and d.candidate is None:
                out.append(f"{self.model}: {d.metric} {_fmt(d.baseline)} -> missing (not "
                           "recorded, or undefined, in the candidate)")
            elif d.status == "regression":
                out.append(f"{self.model}: {d.metric} {_fmt(d.baseline)} -> {_fmt(d.candidate)} "
                           f"(worse by {_fmt(d.worse_by)}; allowed {_fmt(d.allowed)}, "
                           f"noise {_fmt(d.noise)} from {d.noise_source})")
        return out


@dataclass
class Comparison:
    baseline: dict[str, Any]  # short descriptions of both runs: path, commit, date, suite
    candidate: dict[str, Any]
    split: str
    models: list[ModelComparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    incomparable: list[str] = field(default_factory=list)
    tolerances: dict[str, str] = field(default_factory=dict)

    @property
    def regressions(self) -> list[str]:
        return [r for m in self.models for r in m.regressions]

    @property
    def exit_code(self) -> int:
        if self.incomparable:
            return EXIT_INCOMPARABLE
        return EXIT_REGRESSION if self.regressions else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["regressions"] = self.regressions
        data["exit_code"] = self.exit_code
        return data


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if abs(value) >= 1 else f"{value:.3f}"


def describe_run(results: dict[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    prov = results.get("provenance", {})
    git = prov.get("git") or {}
    run = results.get("run", {})
    return {"path": str(path) if path else None, "commit": git.get("commit"),
            "dirty": git.get("dirty"), "date": prov.get("date"), "suite": run.get("suite"),
            "status": run.get("status"), "hostname": prov.get("hostname")}


def check_comparable(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """Reasons the two runs cannot be compared (empty when they can)."""
    reasons = []
    checks = {
        "data hash (provenance.data.data_hash)": lambda r: r["provenance"].get("data", {})
        .get("data_hash"),
        "split plan (split.sha256)": lambda r: r["split"].get("sha256"),
        "threshold rule (run.threshold_rule)": lambda r: (
            canonical_rule(r["run"]["threshold_rule"])
            if r["run"].get("threshold_rule") is not None else None),
    }
    for what, get in checks.items():
        b, c = get(baseline), get(candidate)
        if b is None or c is None:
            reasons.append(f"{what} is missing from the {'baseline' if b is None else 'candidate'}"
                           "; re-run it with this cxrbench to record it")
        elif b != c:
            reasons.append(f"different {what}: baseline {str(b)[:16]} vs candidate {str(c)[:16]}. "
                           "Results are only comparable on the same data, split plan and "
                           "threshold rule: run the candidate with the baseline's settings, or "
                           "refresh the baseline on purpose")
    return reasons


def _external_comparable(baseline: dict[str, Any], candidate: dict[str, Any],
                         name: str) -> list[str]:
    """Reasons two files cannot be compared on external set ``name`` (scored in both, on the
    same images)."""
    sets = {"baseline": scored_sets(baseline).get(name), "candidate": scored_sets(candidate)
            .get(name)}
    missing = [side for side, entry in sets.items() if entry is None]
    if missing:
        known = sorted(set(scored_sets(baseline)) | set(scored_sets(candidate)))
        return [f"external set {name!r} was not scored in the {' and '.join(missing)} "
                f"(scored sets: {', '.join(known) or 'none'}); run `cxrbench evaluate` on both"]
    if sets["baseline"].get("data_hash") != sets["candidate"].get("data_hash") or (
            sets["baseline"].get("ids") != sets["candidate"].get("ids")):
        return [f"external set {name!r} holds other images in the two files (data hash "
                f"{str(sets['baseline'].get('data_hash'))[:12]} vs "
                f"{str(sets['candidate'].get('data_hash'))[:12]}): not comparable"]
    return []


def machine_warnings(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    bp, cp = baseline["provenance"], candidate["provenance"]
    warnings = [f"machine differs: {name} {bp.get(name)!r} vs {cp.get(name)!r} "
                "(timings are not comparable across machines; consider --ignore-timing)"
                for name in MACHINE_FIELDS if bp.get(name) != cp.get(name)]
    bpk, cpk = bp.get("packages") or {}, cp.get("packages") or {}
    changed = [f"{n} {bpk.get(n, '-')} -> {cpk.get(n, '-')}"
               for n in sorted(set(bpk) | set(cpk)) if n != "cxrbench" and bpk.get(n) != cpk.get(n)]
    if changed:
        warnings.append("package versions differ: " + ", ".join(changed))
    for which, results in (("baseline", baseline), ("candidate", candidate)):
        status = results["run"].get("status")
        if status not in (None, "complete"):
            warnings.append(f"the {which} run is {status!r}, not complete: models it lacks "
                            + ("fail the comparison" if which == "candidate"
                               else "are reported as added"))
    return warnings


def _seed_values(records: list[dict[str, Any]], split: str, metric: str) -> list[float] | None:
    """Finite values of a metric over records; None when no record has the metric at all."""
    if metric in TIMING_DIRECTIONS:
        raw = [r.get("timing", {}).get(metric) for r in records]
        known = any(metric in r.get("timing", {}) for r in records)
    else:
        raw = [r["metrics"].get(split, {}).get(metric) for r in records]
        known = any(metric in r["metrics"].get(split, {}) for r in records)
    return [float(v) for v in raw if v is not None and math.isfinite(v)] if known else None


def _interval(statistics: dict[str, Any] | None, model: str, split: str, metric: str
              ) -> tuple[float, float] | None:
    """The 95 % interval of a model's seed-mean metric in ``compute_statistics``'s output."""
    node = (((statistics or {}).get("models") or {}).get(model) or {}).get(split) or {}
    interval = node.get(metric) or {}
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    return float(low), float(high)


class PairedBootstrap:
    """Paired patient bootstrap of candidate minus baseline, on the same evaluation images.

    Both runs are scored on each resample (the same patients, drawn as in ``cxrbench.stats``),
    so what the two have in common cancels: the interval of the difference is the test-set
    sampling noise of the *change*, far narrower than either run's own interval.
    """

    def __init__(self, evaluation: dict[str, Any]) -> None:
        from cxrbench.stats.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, patient_weights

        self.labels = np.asarray(evaluation["labels"], dtype=np.int64)
        self.weights = patient_weights(evaluation["groups"], DEFAULT_RESAMPLES, DEFAULT_SEED)

    @classmethod
    def for_runs(cls, baseline: dict[str, Any], candidate: dict[str, Any],
                 split: str) -> PairedBootstrap | None:
        """None unless both runs were scored on the same images, with patient groups."""
        b = (baseline.get("evaluation") or {}).get(split) or {}
        c = (candidate.get("evaluation") or {}).get(split) or {}
        same = b.get("ids") and b.get("ids") == c.get("ids") and b.get("labels") == c.get(
            "labels") and len(b.get("groups") or []) == len(b["ids"])
        return cls(b) if same else None

    def _seed_mean(self, records: list[dict[str, Any]], split: str
                   ) -> dict[str, np.ndarray] | None:
        from cxrbench.stats.weighted import resample_metrics

        samples = []
        for record in records:
            p = (record.get("predictions") or {}).get(split)
            if p is None or len(p) != len(self.labels):
                return None
            threshold = 0.5 if record.get("threshold") is None else float(record["threshold"])
            samples.append(resample_metrics(self.labels, np.asarray(p, dtype=np.float64),
                                            threshold, self.weights))
        return {k: np.mean([s[k] for s in samples], axis=0) for k in samples[0]}

    def half_widths(self, base: list[dict[str, Any]], cand: list[dict[str, Any]],
                    split: str) -> dict[str, float]:
        """Metric -> half-width of the 95 % interval of the difference (empty: no predictions)."""
        from cxrbench.stats.bootstrap import percentile_interval

        b, c = self._seed_mean(base, split), self._seed_mean(cand, split)
        if b is None or c is None:
            return {}
        out = {}
        for metric in b:
            low, high = percentile_interval(c[metric] - b[metric])
            if math.isfinite(low) and math.isfinite(high):
                out[metric] = (high - low) / 2
        return out


def _noise(base: list[float], cand: list[float], half_width: float | None, source: str
           ) -> tuple[float, str]:
    """Bootstrap half-width and 1.96 SE of the seed means, combined in quadrature."""
    seed = 0.0
    if len(base) >= 2 and len(cand) >= 2:
        seed = Z95 * math.sqrt(np.var(base, ddof=1) / len(base)
                               + np.var(cand, ddof=1) / len(cand))
    if half_width is None:
        return seed, "seed std" if len(base) >= 2 and len(cand) >= 2 else "none"
    label = f"{source} + seed std" if seed else source
    return math.sqrt(half_width ** 2 + seed ** 2), label


def compare_metric(metric: str, base: list[float] | None, cand: list[float] | None,
                   tolerance: Tolerance, half_width: float | None = None,
                   half_width_source: str = "bootstrap", *, use_noise: bool = True
                   ) -> MetricDelta:
    """One metric of one model: seed means, direction-aware difference, verdict.

    ``None`` means the metric was not recorded (an older file): not comparable, not a failure;
    an empty list means it was recorded but undefined (NaN), which after a defined baseline
    value is a regression.
    """
    b = float(np.mean(base)) if base else None
    c = float(np.mean(cand)) if cand else None
    allowed = tolerance.allowance(b or 0.0)
    noise, source = (_noise(base or [], cand or [], half_width, half_width_source)
                     if use_noise else (0.0, "off"))
    if b is None or c is None:
        worse_by = None  # a baseline value lost in the candidate (missing or NaN) regresses
        status = "regression" if b is not None and tolerance.gated else "undefined"
    else:
        worse_by = (b - c) if higher_is_better(metric) else (c - b)
        if worse_by <= 0:
            status = "same" if worse_by == 0 else "better"
        elif not tolerance.gated:
            status = "off"
        elif worse_by <= allowed:
            status = "within tolerance"
        elif worse_by <= noise:
            status = "within noise"
        else:
            status = "regression"
    return MetricDelta(metric, b, c, worse_by, allowed, noise, source, status)


def _by_model(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in results["records"]:
        grouped.setdefault(record["model"], []).append(record)
    return grouped


def _error_text(records: list[dict[str, Any]]) -> str:
    err = next((r.get("error") or {} for r in records if r["status"] != "ok"), {})
    return f"{err.get('type', 'error')}: {str(err.get('message', ''))[:200]}"


def compare_model(model: str, base_recs: list[dict[str, Any]], cand_recs: list[dict[str, Any]],
                  *, split: str, tolerances: Mapping[str, Tolerance], metrics: Iterable[str],
                  statistics: Any = None, paired: PairedBootstrap | None = None,
                  use_noise: bool = True) -> ModelComparison:
    base_ok = {r["seed"]: r for r in base_recs if r["status"] == "ok"}
    cand_ok = {r["seed"]: r for r in cand_recs if r["status"] == "ok"}
    cand_failed = {r["seed"]: r for r in cand_recs if r["status"] != "ok"}
    result = ModelComparison(model, "compared")
    if not base_ok and not cand_ok:
        result.status = "failed in both"
        return result
    if not base_ok:
        result.status = "fixed"
        result.notes.append("failed in the baseline, succeeds now")
        return result
    newly_failed = sorted(s for s in base_ok if s in cand_failed)
    result.failed_jobs = [f"{cand_failed[s]['job_id']} {cand_failed[s]['status']} "
                          f"({_error_text([cand_failed[s]])})" for s in newly_failed]
    if not cand_ok:
        result.status = "failed"
        if not result.failed_jobs:  # the candidate ran other seeds, all failing
            result.failed_jobs = [f"all {len(cand_recs)} job(s) failed ({_error_text(cand_recs)})"]
        return result
    seeds = sorted(set(base_ok) & set(cand_ok))
    if not seeds:  # disjoint seeds: compare every successful seed, and say so
        result.notes.append(f"no seed in common (baseline {sorted(base_ok)}, candidate "
                            f"{sorted(cand_ok)}): comparing means over different seeds")
        b_recs, c_recs = list(base_ok.values()), list(cand_ok.values())
    else:
        b_recs, c_recs = [base_ok[s] for s in seeds], [cand_ok[s] for s in seeds]
        only = sorted((set(base_ok) | set(cand_ok)) - set(seeds) - set(newly_failed))
        if only:
            result.notes.append(f"seed(s) {only} ran in only one file; compared on {seeds}")
    result.seeds = seeds or sorted(cand_ok)
    b_params, c_params = b_recs[0].get("params") or {}, c_recs[0].get("params") or {}
    if b_params != c_params:
        keys = sorted(set(b_params) | set(c_params))
        result.notes.append("params differ: " + ", ".join(
            f"{k} {b_params.get(k)!r} -> {c_params.get(k)!r}"
            for k in keys if b_params.get(k) != c_params.get(k)))
    paired_half = paired.half_widths(b_recs, c_recs, split) if paired and use_noise else {}
    for metric in metrics:
        half, source = paired_half.get(metric), "paired bootstrap"
        if half is None and metric not in TIMING_DIRECTIONS:
            interval = _interval(statistics, model, split, metric)
            half, source = (abs(interval[1] - interval[0]) / 2 if interval else None,
                            "candidate's bootstrap CI")
        result.deltas.append(compare_metric(
            metric, _seed_values(b_recs, split, metric), _seed_values(c_recs, split, metric),
            tolerances[metric], half, source, use_noise=use_noise))
    scores = [d for d in result.deltas if d.metric not in TIMING_DIRECTIONS
              and d.baseline is not None]
    if scores and all(d.candidate is None for d in scores):  # one line, not one per metric
        result.status = "empty"
        result.failed_jobs.append(f"no {split} scores in the candidate: its successful "
                                  f"record(s) {[r['job_id'] for r in c_recs]} hold no metrics")
        for d in scores:
            d.status = "undefined"
    return result


def missing_model(model: str, base_recs: list[dict[str, Any]]) -> ModelComparison:
    """A baseline model the candidate does not have: a regression if it succeeded before."""
    ok = [r["job_id"] for r in base_recs if r["status"] == "ok"]
    if not ok:
        return ModelComparison(model, "removed", notes=["failed in the baseline, absent now"])
    return ModelComparison(model, "missing", failed_jobs=[
        f"missing from the candidate (it succeeded in the baseline: {', '.join(ok)})"])


def compare_results(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    split: str = "test",
    ignore_timing: bool = False,
    use_noise: bool = True,
    baseline_path: str | Path | None = None,
    candidate_path: str | Path | None = None,
) -> Comparison:
    """Compare two parsed results files; see the module docstring for the rule."""
    merged = default_tolerances()
    unknown = set(tolerances or {}) - set(merged)
    if unknown:
        raise CompareError(f"tolerances for unknown metric(s) {sorted(unknown)}; "
                           f"known: {', '.join(merged)}")
    merged.update(tolerances or {})
    if ignore_timing:
        merged.update({m: replace(merged[m], gated=False) for m in TIMING_DIRECTIONS})
    comparison = Comparison(describe_run(baseline, baseline_path),
                            describe_run(candidate, candidate_path), split,
                            tolerances={m: t.describe() for m, t in merged.items()})
    comparison.incomparable = check_comparable(baseline, candidate)
    name = external_name(split)
    if name is not None and not comparison.incomparable:
        comparison.incomparable = _external_comparable(baseline, candidate, name)
        if not comparison.incomparable:
            baseline = with_external_split(baseline, name)
            candidate = with_external_split(candidate, name)
    if comparison.incomparable:
        return comparison
    comparison.warnings = machine_warnings(baseline, candidate)
    base, cand = _by_model(baseline), _by_model(candidate)
    paired = PairedBootstrap.for_runs(baseline, candidate, split) if use_noise else None
    statistics = None  # the candidate's own intervals: the noise when the runs are not paired
    if use_noise and paired is None and split == "test":
        from cxrbench.stats import with_statistics  # scipy: only when it is needed

        statistics = with_statistics(candidate)["statistics"]
    for model in [*base, *(m for m in cand if m not in base)]:
        if model not in cand:
            comparison.models.append(missing_model(model, base[model]))
        elif model not in base:
            comparison.models.append(ModelComparison(model, "added"))
        else:
            comparison.models.append(compare_model(
                model, base[model], cand[model], split=split, tolerances=merged,
                metrics=list(merged), statistics=statistics, paired=paired,
                use_noise=use_noise))
    return comparison


def compare_files(baseline_path: str | Path, candidate_path: str | Path,
                  **options: Any) -> Comparison:
    """Read (and validate) both files, then compare; ResultsError names a damaged file."""
    return compare_results(read_results(baseline_path), read_results(candidate_path),
                           baseline_path=baseline_path, candidate_path=candidate_path, **options)
