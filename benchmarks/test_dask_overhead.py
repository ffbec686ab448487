"""Dask overhead: the same classical jobs locally and on a 2-worker LocalCluster, same run.

Contenders, each on a fresh copy of the same warm image cache (features are never cached
between contenders):

- ``inline``: every job one after the other in this process, each using every core (joblib),
  the floor: no per-job process, no cluster;
- ``process``: the default local executor, a fresh process per job;
- ``dask``: ``--executor dask --dask-workers 2``: a LocalCluster for the run, each job in a
  child process on its worker (timeouts and crashes isolated), cluster start and stop included;
  each worker has its own core, so jobs run two at a time, one core each;
- ``dask-in-worker``: the same cluster, jobs in the worker processes themselves
  (``isolate=False``: no per-job process, no timeouts).

The ``summary`` fixture prints, after the module, each contender's wall time and speed-up over
``inline``, and its overhead per job: the worker-seconds a job costs beyond its own fit and
predict time (loading data, starting processes, scheduling, sending results back),
``(workers x (wall - cluster start/stop) - sum of fit+predict) / jobs``. The cluster's overhead
per job is the ``dask`` figure minus the ``inline`` one. On 2 cores shared with anything else,
expect a speed-up well under 2x. Run:

    nice -n 10 .venv/bin/pytest benchmarks/test_dask_overhead.py --benchmark-only -s
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("distributed")

from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin  # noqa: E402
from cxrbench.plugins.registry import list_models, register_model  # noqa: E402
from cxrbench.run.config import ModelSpec, RunConfig  # noqa: E402
from cxrbench.run.harness import run_benchmark  # noqa: E402

WORKERS = 2
GROUP = "executors: classical jobs, 1 process vs 2-worker LocalCluster"
SEEDS = [0, 1, 2]
_WALL: dict[str, float] = {}
_N_JOBS: dict[str, int] = {}
_JOB_S: dict[str, float] = {}


@register_model
class BenchPixelsLogreg(Plugin):
    """Stand-in classical job (logistic regression on 64 px pixels) until the classical
    plugins (hog_svm, pixels_logreg) are registered; then those are benchmarked instead."""

    card = ModelCard(name="bench_pixels_logreg", family="classical", framework="sklearn",
                     description="Benchmark stand-in: logistic regression on raw pixels.",
                     input_size=64, channels=1)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(train.images, dtype=np.float32).reshape(len(train), -1) / 255.0
        self.model_ = LogisticRegression(C=0.1, max_iter=2000, random_state=self.seed)
        self.model_.fit(x, train.labels)
        self.fit_info_ = {"n_iter": int(self.model_.n_iter_[0])}

    def _predict(self, images: ImageSet) -> np.ndarray:
        x = np.asarray(images.images, dtype=np.float32).reshape(len(images), -1) / 255.0
        return self.model_.predict_proba(x)[:, 1]


MODELS = [m for m in ("hog_svm", "pixels_logreg") if m in list_models()] or [
    "bench_pixels_logreg"]
CONTENDERS = {
    "inline": ("inline", {}),
    "process": ("process", {}),
    "dask": ("dask", {"n_workers": WORKERS, "progress": False}),
    "dask-in-worker": ("dask", {"n_workers": WORKERS, "progress": False, "isolate": False}),
}


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 synthetic images: jobs of a few seconds each, so that overhead does not dominate."""
    from cxrbench.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("bench") / "cxr",
                                  n_train=(150, 150), n_test=(50, 50), size=160, seed=0)


@pytest.fixture(scope="module")
def warm_images(bench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image cache holding every image the jobs need, and nothing else."""
    cache = tmp_path_factory.mktemp("warm")
    run_benchmark(RunConfig(data_path=bench_data, models=[ModelSpec(m) for m in MODELS],
                            seeds=[0], out_dir=cache / "warmup", executor="inline",
                            cache_dir=cache / "cache", report=False))
    shutil.rmtree(cache / "cache" / "features", ignore_errors=True)
    return cache / "cache"


def _run(name: str, data: Path, out: Path, cache: Path) -> dict[str, Any]:
    executor, options = CONTENDERS[name]
    outcome = run_benchmark(RunConfig(
        data_path=data, models=[ModelSpec(m) for m in MODELS], seeds=SEEDS, out_dir=out,
        executor=executor, executor_options=dict(options), cache_dir=cache, report=False))
    assert outcome.status == "complete" and outcome.n_failed == 0
    return json.loads(outcome.results_path.read_text())


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_executor(benchmark, name, bench_data, warm_images, tmp_path):
    counter = iter(range(100))

    def setup() -> tuple[tuple, dict]:
        i = next(counter)
        cache = tmp_path / f"cache{i}"
        shutil.copytree(warm_images, cache)
        return (name, bench_data, tmp_path / f"out{i}", cache), {}

    benchmark.group = GROUP
    results = benchmark.pedantic(_run, setup=setup, rounds=1, iterations=1)
    _WALL[name] = benchmark.stats.stats.mean
    _N_JOBS[name] = len(results["records"])
    job_s = sum(r["timing"]["fit_s"] + r["timing"]["predict_s"] for r in results["records"])
    _JOB_S[name] = job_s
    benchmark.extra_info.update(models=MODELS, seeds=SEEDS, jobs=_N_JOBS[name],
                                fit_predict_s=round(job_s, 2))


def test_cluster_start_and_stop(benchmark):
    from cxrbench.run.executors.dask import DaskExecutor

    def start_stop() -> None:
        with DaskExecutor(n_workers=WORKERS)._client():
            pass

    benchmark.group = GROUP
    benchmark.pedantic(start_stop, rounds=1, iterations=1)
    _WALL["cluster start+stop"] = benchmark.stats.stats.mean


@pytest.fixture(scope="module", autouse=True)
def summary() -> Any:
    """After the module: the speed-up over ``inline`` and the overhead per job (use -s)."""
    yield
    if not {"inline", "dask", "cluster start+stop"} <= set(_WALL):
        return  # a subset was run (-k): nothing to compare
    inline, startup, n = _WALL["inline"], _WALL["cluster start+stop"], _N_JOBS["inline"]
    print(f"\n{n} jobs ({', '.join(MODELS)} x seeds {SEEDS}); cluster start+stop {startup:.1f} s")
    print(f"{'contender':<16}{'wall s':>8}{'speed-up':>10}{'fit+predict s':>15}"
          f"{'overhead s/job':>16}")
    for name in CONTENDERS:
        if name not in _WALL:
            continue
        wall, dask = _WALL[name], name.startswith("dask")
        busy = (WORKERS * (wall - startup) if dask else wall) - _JOB_S[name]
        print(f"{name:<16}{wall:>8.1f}{inline / wall:>9.2f}x{_JOB_S[name]:>15.1f}"
              f"{busy / n:>16.2f}")
    assert inline / _WALL["dask"] < WORKERS  # two workers on two cores cannot beat 2x
