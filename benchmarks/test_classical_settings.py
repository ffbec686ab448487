"""Classical plugins' execution settings, side by side on the real split.

How XGBoost's OpenMP threads wait (``OMP_WAIT_POLICY``: ACTIVE spins, the runtime's default;
PASSIVE sleeps, what ``cxrbench`` sets; the ACTIVE arm only with ``CXRBENCH_AB_SPIN=1``, it is
very slow on a busy machine), its ``max_bin`` (histogram resolution), and the SVM's
kernel cache (``cache_mb``), each arm fitted in a fresh process (``train_probe.py``), rounds
interleaved (``abtest.py``). The features are computed once before the first round (the
feature cache then serves every arm), so the arms time the learners themselves. Recorded per
arm: fit wall and CPU seconds (medians) and validation ROC AUC; test images are never scored.

    CXRBENCH_LONG_BENCHMARKS=1 CXRBENCH_DATA=... pytest benchmarks/test_classical_settings.py -s \\
        --benchmark-json=out/classical.json
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

import pytest
from abtest import interleave, machine_note, run_probe

ROUNDS = int(os.environ.get("CXRBENCH_AB_ROUNDS", "2"))


def _arm(model: str, params: dict[str, Any]):  # type: ignore[no-untyped-def]
    params = dict(params)
    env = {"OMP_WAIT_POLICY": params.pop("omp", "PASSIVE")}
    args = [model, "--predict"] + [f"--param={k}={json.dumps(v)}" for k, v in params.items()]
    return lambda: run_probe("train_probe.py", args, env=env)


def _compare(benchmark, model: str, arms: dict[str, dict[str, Any]]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    note = machine_note()
    _arm(model, next(iter(arms.values())))()  # fills the feature cache, not timed
    runs = benchmark.pedantic(
        lambda: interleave({name: _arm(model, p) for name, p in arms.items()}, ROUNDS),
        rounds=1, iterations=1)
    table = {name: {"fit_s_median": round(statistics.median(r["fit_s"] for r in rs), 2),
                    "fit_cpu_s_median": round(statistics.median(r["fit_cpu_s"] for r in rs), 2),
                    "val_auc": [r["val_auc"] for r in rs],
                    "load_1min": [r["load_1min"] for r in rs]}
             for name, rs in runs.items()}
    benchmark.extra_info.update(machine=note, rounds=ROUNDS, arms=table, runs=runs)
    print(json.dumps(table, indent=1))
    return table


@pytest.fixture(autouse=True)
def _needs_data(long_benchmark, real_data_root, bench_cache_dir):  # type: ignore[no-untyped-def]
    return real_data_root


@pytest.mark.benchmark(group="classical: xgboost")
def test_xgboost_bins_and_threads(benchmark) -> None:  # type: ignore[no-untyped-def]
    arms = {"PASSIVE max_bin=256": {"omp": "PASSIVE", "max_bin": 256, "n_jobs": 2},
            "PASSIVE max_bin=64": {"omp": "PASSIVE", "max_bin": 64, "n_jobs": 2}}
    if os.environ.get("CXRBENCH_AB_SPIN") == "1":  # slow on a busy machine: opt-in
        arms["ACTIVE max_bin=256"] = {"omp": "ACTIVE", "max_bin": 256, "n_jobs": 2}
    table = _compare(benchmark, "hog_xgboost", arms)
    if "ACTIVE max_bin=256" in table:  # how threads wait never changes the model
        assert table["ACTIVE max_bin=256"]["val_auc"] == table["PASSIVE max_bin=256"]["val_auc"]


@pytest.mark.benchmark(group="classical: svm")
def test_svm_kernel_cache(benchmark) -> None:  # type: ignore[no-untyped-def]
    table = _compare(benchmark, "hog_svm", {"cache_mb=200": {"cache_mb": 200.0},
                                            "cache_mb=1000": {"cache_mb": 1000.0}})
    assert table["cache_mb=200"]["val_auc"] == table["cache_mb=1000"]["val_auc"]
