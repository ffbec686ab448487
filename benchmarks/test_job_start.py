"""Starting job processes: forked from cxrbench's preloaded server vs spawned, side by side.

Each arm is one whole ``cxrbench run`` in a fresh process (``--models majority,pixels_logreg,
hog_mlp --seeds 0,1,2 --save-models`` on the real data, image and feature caches warmed first,
so both arms do the same work), with ``CXRBENCH_JOB_START`` set to ``forkserver`` (the default)
or ``spawn`` (the old behaviour); rounds interleaved. Reported per arm from the run's own
``run.timing``: wall, plugin and harness seconds, and ``jobs_outside_plugins`` (starting each
job's process, its imports, loading its data, scoring, saving its model). The scores of the
two arms must be identical: only how the processes start differs.

    CXRBENCH_DATA=... pytest benchmarks/test_job_start.py -s [CXRBENCH_AB_ROUNDS=3]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from abtest import interleave, machine_note

ROUNDS = int(os.environ.get("CXRBENCH_AB_ROUNDS", "3"))
MODELS = "majority,pixels_logreg,hog_mlp"


def _run(data: Path, out: Path, start: str) -> dict[str, Any]:
    cli = Path(sys.executable).with_name("cxrbench")
    env = {**os.environ, "CXRBENCH_JOB_START": start}
    subprocess.run([str(cli), "run", "--data", str(data), "--models", MODELS, "--seeds",
                    "0,1,2", "--save-models", "--no-report", "--out", str(out), "--overwrite"],
                   env=env, check=True, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    timing = results["run"]["timing"]
    return {"wall_s": timing["wall_s"], "plugin_s": timing["plugin_s"],
            "harness_s": timing["harness_s"],
            "jobs_outside_plugins_s": timing["parts_s"]["jobs_outside_plugins"],
            "peak_rss_mb": {r["job_id"]: round(r["timing"]["peak_rss_mb"])
                            for r in results["records"]},
            "test_auc": {r["job_id"]: r["metrics"]["test"]["roc_auc"]
                         for r in results["records"]}}


@pytest.mark.benchmark(group="job processes")
def test_forkserver_vs_spawn(benchmark, real_data_root, bench_cache_dir, tmp_path):  # type: ignore[no-untyped-def]
    _run(real_data_root, tmp_path / "warm", "spawn")  # fills the image and feature caches
    arms = {start: (lambda start=start: _run(real_data_root, tmp_path / start, start))
            for start in ("forkserver", "spawn")}
    before = machine_note()
    runs = benchmark.pedantic(lambda: interleave(arms, ROUNDS), rounds=1, iterations=1)
    table = {name: {key: statistics.median(r[key] for r in arm)
                    for key in ("wall_s", "plugin_s", "harness_s", "jobs_outside_plugins_s")}
             for name, arm in runs.items()}
    for name, arm in runs.items():
        table[name]["peak_rss_mb"] = arm[0]["peak_rss_mb"]
    benchmark.extra_info.update(machine=before, load_after=os.getloadavg()[0], rounds=ROUNDS,
                                arms=table, runs=runs)
    print(json.dumps(table, indent=1))
    assert runs["forkserver"][0]["test_auc"] == runs["spawn"][0]["test_auc"]
