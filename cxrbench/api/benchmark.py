"""``cxrbench.benchmark(...)``: a whole run from Python, returning a :class:`Benchmark`.

It is what ``cxrbench run`` calls (the CLI only parses its options into these arguments), so
both write the same files with the same numbers, with the same isolation: each job in its own
process unless ``executor="inline"``. Defaults are ``RunConfig``'s (``cxrbench.run.config``).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrbench.api.models import ModelsArg, apply_overrides, model_specs
from cxrbench.api.result import Benchmark
from cxrbench.export import DEFAULT_EXPERIMENT
from cxrbench.export.mlflow import TrackingError, check_tracking
from cxrbench.plugins.sources import load_plugins, resolve_plugin_specs
from cxrbench.results.io import read_results
from cxrbench.run.config import (
    DEFAULT_EXECUTOR,
    DEFAULT_SEEDS,
    DEFAULT_SPLIT_SEED,
    DEFAULT_SUITE,
    DEFAULT_THRESHOLD_RULE,
    DEFAULT_VAL_FRACTION,
    ExternalSpec,
    RunConfig,
)
from cxrbench.run.harness import run_benchmark
from cxrbench.run.suites import load_suite
from cxrbench.scoring.thresholds import ThresholdRule


def benchmark(
    data: str | Path,
    models: ModelsArg | None = None,
    seeds: Sequence[int] | None = None,
    out: str | Path | None = None,
    *,
    suite: str | Path | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    threshold_rule: str | ThresholdRule | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    split_seed: int = DEFAULT_SPLIT_SEED,
    cache_dir: str | Path | None = None,
    executor: str = DEFAULT_EXECUTOR,
    executor_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    model_timeouts: Mapping[str, float] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    report: bool = True,
    allow_outside_root: bool = False,
    carve_test: bool = False,
    audit: bool = False,
    plugins: str | Sequence[str] | None = None,
    mlflow: str | bool | None = None,
    mlflow_experiment: str = DEFAULT_EXPERIMENT,
    save_models: bool = False,
    external: Sequence[ExternalSpec] = (),
    on_record: Callable[[dict[str, Any]], None] | None = None,
    command: Sequence[str] | None = None,
) -> Benchmark:
    """Run ``models`` x ``seeds`` on one split plan of ``data``; returns the :class:`Benchmark`.

    ``models``: registered names or patterns (``"hog_*"``), ``Plugin`` subclasses, unfitted
    instances (see ``cxrbench.api.models``), or None for ``suite`` (default: the
    ``quick`` suite, as ``cxrbench run``). ``seeds``, ``threshold_rule`` and ``timeout``
    default to the suite's, else the run's defaults. ``out``: the output folder (results.json,
    split_plan.json, report.html, leaderboards); None: a temporary folder kept with the
    returned Benchmark. ``params``: ``{model: {key: value}}`` overrides, as ``--param``;
    ``model_timeouts``: ``{model: seconds}``. ``allow_outside_root`` and ``carve_test``: the
    data layer's options (as ``--allow-outside-root`` and ``--carve-test``); ``audit``: audit
    the data into the results (``--audit``). ``plugins``:
    local plugin files or modules to import first (default ``$CXRBENCH_PLUGINS``).
    ``executor_options``: for
    ``executor="dask"`` (``scheduler``, ``n_workers``, ``resources``, ``worker_cache_dir``).
    ``mlflow``: a tracking URI (True: MLflow's default) to export the results to when the run
    ends, into ``mlflow_experiment`` (``cxrbench.export.mlflow``); the store is checked before
    the run starts, and an export that fails afterwards is a ``MlflowExportWarning`` (the
    results are kept: ``Benchmark.to_mlflow()`` tries again).
    ``save_models``: write each fitted model to ``OUT/models/<job_id>/`` (or the suite's
    ``save_models``); ``external``: labelled sets (``ExternalSpec(name, path)``) every saved
    model is scored on after the jobs, with the suite's external sets first (implies
    ``save_models``).
    ``command``: the command line to record (the CLI's argv; None from Python).

    Raises ``ConfigError``, ``UnknownModelError``, ``ParameterError``, ``PluginLoadError``,
    ``TrackingError`` or ``RunError`` (all but the second ``ValueError``s) before any job runs
    when the run cannot start. Failed jobs are records (``Benchmark.records``); an interrupted
    run returns what it finished (``Benchmark.status == "interrupted"``).
    """
    imported = load_plugins(resolve_plugin_specs(plugins))  # before the registry is read
    chosen = load_suite(str(suite or DEFAULT_SUITE)) if (suite or models is None) else None
    specs = model_specs(models) if models is not None else chosen.models  # type: ignore[union-attr]
    apply_overrides(specs, params, model_timeouts)
    temporary = None
    if out is None:
        temporary = tempfile.TemporaryDirectory(prefix="cxrbench-")
        out = temporary.name
    config = RunConfig(
        data_path=Path(data).expanduser(),
        models=specs,
        seeds=list(seeds) if seeds is not None
        else (chosen.seeds if chosen else list(DEFAULT_SEEDS)),
        out_dir=Path(out),
        threshold_rule=threshold_rule or (chosen.threshold_rule if chosen else None)
        or DEFAULT_THRESHOLD_RULE,
        val_fraction=val_fraction,
        split_seed=split_seed,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        executor=executor,
        executor_options=dict(executor_options or {}),
        timeout_s=timeout if timeout is not None else (chosen.timeout_s if chosen else None),
        resume=resume,
        overwrite=overwrite,
        suite=chosen.name if chosen else None,
        report=report,
        command=list(command) if command is not None else None,
        allow_outside_root=allow_outside_root,
        carve_test=carve_test,
        audit=audit,
        plugins=imported,
        save_models=bool(save_models or (chosen.save_models if chosen else False)),
        external=[*(chosen.external if chosen else []), *external],
    )
    tracking_uri = None
    if mlflow is not None and mlflow is not False:
        tracking_uri = check_tracking(None if mlflow is True else mlflow or None)
    outcome = run_benchmark(config, on_record=on_record)
    result = Benchmark(read_results(outcome.results_path), outcome.results_path, outcome,
                       temporary)
    if tracking_uri is not None:
        try:
            result.to_mlflow(tracking_uri, mlflow_experiment)
        except TrackingError as err:  # the run's results stay: export them later
            warnings.warn(MlflowExportWarning(f"{err}; the results are kept in "
                                              f"{outcome.results_path}: export them with "
                                              "`cxrbench export mlflow` or .to_mlflow()"),
                          stacklevel=2)
    return result


class MlflowExportWarning(UserWarning):
    """The run finished but exporting it to MLflow failed (its results are kept)."""
