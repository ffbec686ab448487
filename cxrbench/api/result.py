"""``Benchmark``: a finished (or interrupted) run, read from its results file, for a notebook.

Everything here reads the results file and derives from its records, as ``cxrbench report``
does: the summary and statistics are computed from the records once, on first use, never
taken from the stored copy.
"""

from __future__ import annotations

import difflib
import tempfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cxrbench.api.summary_html import benchmark_html
from cxrbench.export import DEFAULT_EXPERIMENT
from cxrbench.results.io import read_results
from cxrbench.results.leaderboard import leaderboard
from cxrbench.results.regression import Comparison, compare_results
from cxrbench.run.harness import RunOutcome
from cxrbench.run.output import REPORT_FILE, RESULTS_FILE
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS
from cxrbench.stats import with_statistics

if TYPE_CHECKING:
    from cxrbench.export.mlflow import ExportSummary


def _results_path(path: str | Path) -> Path:
    path = Path(path).expanduser()
    return path / RESULTS_FILE if path.is_dir() else path


class Benchmark:
    """The results of one run. Made by :func:`cxrbench.benchmark` or :meth:`Benchmark.load`.

    ``path`` is the results file, ``out`` its folder, ``results`` the parsed file (validated),
    ``outcome`` the run's :class:`~cxrbench.run.harness.RunOutcome` (None when loaded). When
    ``benchmark()`` was given no ``out``, the folder is temporary: it lives as long as this
    object (copy what you want to keep, or give ``out``).
    """

    def __init__(self, results: dict[str, Any], path: Path, outcome: RunOutcome | None = None,
                 temporary: tempfile.TemporaryDirectory | None = None) -> None:
        self.results = results
        self.path = Path(path)
        self.out = self.path.parent
        self.outcome = outcome
        self.mlflow: ExportSummary | None = None  # the last export to MLflow, if any
        self._temporary = temporary  # removed with this object

    @classmethod
    def load(cls, path: str | Path) -> Benchmark:
        """A results file (or a folder holding ``results.json``), read and validated."""
        path = _results_path(path)
        return cls(read_results(path), path)

    # --- what the run was ---------------------------------------------------------------------
    @property
    def status(self) -> str:
        return str(self.results["run"].get("status"))

    @property
    def split_sha256(self) -> str:
        return str(self.results["split"].get("sha256"))

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r["model"] for r in self.results["records"]))

    @cached_property
    def derived(self) -> dict[str, Any]:
        """The results with ``summary`` and ``statistics`` computed from the records."""
        return with_statistics(self.results)

    # --- tables -------------------------------------------------------------------------------
    def leaderboard(self, split: str = "test") -> pd.DataFrame:
        """One row per model, best test ROC AUC first: per metric the mean over seeds, its std
        and (test) the 95 % patient-bootstrap interval ``<metric>_low`` / ``<metric>_high``;
        timings; DeLong / McNemar p-values against the best model."""
        return leaderboard(self.derived, split)

    @property
    def records(self) -> pd.DataFrame:
        """One row per record (model x params x seed): status and error, parameters,
        threshold, ``val_<metric>`` and ``test_<metric>`` with the record's own test interval
        (``test_<metric>_low`` / ``_high``), timings, size and the plugin's source file."""
        intervals = (self.derived.get("statistics") or {}).get("records") or {}
        rows = []
        for record in self.results["records"]:
            metrics = record.get("metrics") or {}
            timing = record.get("timing") or {}
            plugin = record.get("plugin") or {}
            row: dict[str, Any] = {
                "job_id": record["job_id"], "model": record["model"],
                "family": record.get("family"), "seed": record["seed"],
                "status": record["status"],
                "error": (record.get("error") or {}).get("message"),
                "params": record.get("params") or {}, "threshold": record.get("threshold"),
                "threshold_rule": record.get("threshold_rule"),
            }
            for split in ("val", "test"):
                for name in METRICS:
                    row[f"{split}_{name}"] = (metrics.get(split) or {}).get(name)
            test_intervals = (intervals.get(record["job_id"]) or {}).get("test") or {}
            for name in METRICS:
                interval = test_intervals.get(name) or {}
                row[f"test_{name}_low"] = interval.get("low")
                row[f"test_{name}_high"] = interval.get("high")
            for name in TIMING_DIRECTIONS:
                row[name] = timing.get(name)
            row["n_params"] = record.get("n_params")
            row["plugin_file"] = plugin.get("file")
            row["plugin_sha256"] = plugin.get("sha256")
            rows.append(row)
        return pd.DataFrame(rows)

    def predictions(self, model: str, split: str = "test") -> pd.DataFrame:
        """Every image of ``split`` scored by every successful seed of ``model``: one row per
        image x seed with ``image_id``, ``patient_id``, ``label`` (1 pneumonia),
        ``probability``, the record's ``threshold`` and ``predicted`` (probability >=
        threshold, the harness's rule)."""
        if model not in self.models:
            close = difflib.get_close_matches(model, self.models, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise KeyError(f"no model {model!r} in {self.path}.{hint} Models: "
                           f"{', '.join(self.models)}")
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        evaluation = self.results["evaluation"][split]
        frames = []
        for record in self.results["records"]:
            if record["model"] != model or record["status"] != "ok":
                continue
            threshold = record.get("threshold")
            proba = record["predictions"][split]
            frame = pd.DataFrame({
                "image_id": evaluation["ids"], "patient_id": evaluation["groups"],
                "label": evaluation["labels"], "seed": record["seed"],
                "job_id": record["job_id"], "probability": proba, "threshold": threshold})
            frame["predicted"] = (frame["probability"] >= (0.5 if threshold is None
                                                           else threshold)).astype(int)
            frames.append(frame)
        if not frames:
            raise ValueError(f"{model} has no successful record in {self.path}: "
                             "see .records for its errors")
        return pd.concat(frames, ignore_index=True)

    # --- files and comparisons ----------------------------------------------------------------
    def report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report (and ``leaderboard.md`` / ``.csv`` beside it); returns its
        path (default: ``report.html`` beside the results file)."""
        from cxrbench.report import render_report

        target = Path(path) if path is not None else self.out / REPORT_FILE
        return render_report(self.derived, target,
                             data_root=(self.results["provenance"].get("data") or {}).get("path"))

    def compare(self, baseline: Benchmark | str | Path, **options: Any) -> Comparison:
        """This run as the candidate against ``baseline`` (a Benchmark or a results file): the
        regression check of ``cxrbench compare BASELINE THIS``. ``options`` as
        :func:`cxrbench.results.regression.compare_results` (tolerances, split, ...);
        ``.regressions`` lists what got worse, ``.exit_code`` is compare's."""
        other = baseline if isinstance(baseline, Benchmark) else Benchmark.load(baseline)
        return compare_results(other.results, self.results, baseline_path=other.path,
                               candidate_path=self.path, **options)

    def to_mlflow(self, tracking_uri: str | None = None,
                  experiment: str = DEFAULT_EXPERIMENT) -> ExportSummary:
        """Export to MLflow: one run per record under a parent run (idempotent; see
        ``cxrbench.export.mlflow``). Needs the ``cxrbench[mlflow]`` extra."""
        from cxrbench.export.mlflow import export_results

        self.mlflow = export_results(self.path, tracking_uri, experiment)
        return self.mlflow

    # --- display ------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        return benchmark_html(self.derived, self.leaderboard(), self.path)

    def __repr__(self) -> str:
        ok = sum(r["status"] == "ok" for r in self.results["records"])
        return (f"<Benchmark {self.status}: {len(self.models)} model(s), {ok}/"
                f"{len(self.results['records'])} records ok, split "
                f"{self.split_sha256[:12]}, {self.path}>")
