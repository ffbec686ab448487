"""Deep training on CPU, side by side: precision, XLA, threads, batch prefetching.

Each arm trains the plugin for one or two epochs on the real split in a fresh process
(``train_probe.py``), arms interleaved round by round (``abtest.py``), so a change in the
machine's load falls on every arm alike. Recorded per arm: median epoch seconds (each epoch's
wall time, validation scoring included), fit wall and CPU seconds, validation ROC AUC after
each epoch, and the machine note (CPU model, bfloat16 flags, load, date). Test images are never
scored here. Which arms became defaults, and why, is in ``benchmarks/README.md``.

    CXRBENCH_LONG_BENCHMARKS=1 CXRBENCH_DATA=... pytest benchmarks/test_training.py \\
        --benchmark-json=out/training.json [-k precision] [CXRBENCH_AB_ROUNDS=3]

Slow (about 40 minutes for the precision group on 2 busy cores): run the group you need.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

import pytest
from abtest import interleave, machine_note, run_probe

ROUNDS = int(os.environ.get("CXRBENCH_AB_ROUNDS", "2"))
EPOCHS = int(os.environ.get("CXRBENCH_AB_EPOCHS", "2"))  # per probe; 1 = the first epoch only
TRAIN_LIMIT = int(os.environ.get("CXRBENCH_AB_TRAIN_LIMIT", "0"))  # N random train images; 0: all
DEEP = ["cnn_seed", "cnn_strong", "transfer_mobilenetv2", "transfer_mobilenet", "mlp_baseline"]


def _short(model: str, epochs: int) -> dict[str, Any]:
    """Parameters for a short probe: ``epochs`` epochs (transfer: 1 head + the rest tuning)."""
    if model.startswith("transfer"):
        return {"head_epochs": 1, "epochs": max(1, epochs - 1)}
    return {"epochs": epochs}


def _arm(model: str, params: dict[str, Any], env: dict[str, str] | None = None):
    args = [model] + [f"--param={k}={json.dumps(v)}" for k, v in params.items()]
    if TRAIN_LIMIT:
        args.append(f"--train-limit={TRAIN_LIMIT}")
    return lambda: run_probe("train_probe.py", args, env=env)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    # The first epoch of a fresh process includes graph tracing (and XLA compilation): the
    # steady-state figure is the median of the later epochs of each phase, when there are any.
    steady = [s for run in runs for i, s in enumerate(run["epoch_s"])
              if i > 0 and run["phases"][i] == run["phases"][i - 1]]
    return {
        "epoch_s_median": round(statistics.median(steady), 2) if steady else None,
        "first_epoch_s_median": round(statistics.median(r["epoch_s"][0] for r in runs), 2),
        "fit_s_median": round(statistics.median(r["fit_s"] for r in runs), 2),
        "fit_cpu_s_median": round(statistics.median(r["fit_cpu_s"] for r in runs), 2),
        "val_auc_last_epoch": [r["val_auc_per_epoch"][-1] for r in runs],
        "load_1min": [r["load_1min"] for r in runs],
        "precision_used": runs[0]["precision"]["used"] if runs[0].get("precision") else None,
        "execution": runs[0].get("execution"),
    }


def _compare(benchmark, arms: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    before = machine_note()
    results = benchmark.pedantic(lambda: interleave(arms, ROUNDS), rounds=1, iterations=1)
    table = {name: _summary(runs) for name, runs in results.items()}
    benchmark.extra_info.update(machine=before, load_after=os.getloadavg()[0], rounds=ROUNDS,
                                arms=table, runs=results)
    print(json.dumps(table, indent=1))
    return table


@pytest.fixture(autouse=True)
def _needs_data(long_benchmark, real_data_root, bench_cache_dir):  # type: ignore[no-untyped-def]
    pytest.importorskip("keras")


@pytest.mark.benchmark(group="training: precision")
@pytest.mark.parametrize("model", DEEP)
def test_precision(benchmark, model: str) -> None:  # type: ignore[no-untyped-def]
    short = _short(model, EPOCHS)
    table = _compare(benchmark, {
        p: _arm(model, {**short, "precision": p, "jit_compile": False})
        for p in ("float32", "bfloat16")})
    assert table["bfloat16"]["precision_used"] == "bfloat16"


@pytest.mark.benchmark(group="training: XLA")
@pytest.mark.parametrize("model", ["cnn_seed", "cnn_strong"])
def test_xla(benchmark, model: str) -> None:  # type: ignore[no-untyped-def]
    short = _short(model, EPOCHS)
    table = _compare(benchmark, {
        f"jit_compile={j}": _arm(model, {**short, "precision": "float32", "jit_compile": j})
        for j in (False, True)})
    assert table["jit_compile=True"]["execution"]["jit_compile"] is True


@pytest.mark.benchmark(group="training: threads")
def test_threads(benchmark) -> None:  # type: ignore[no-untyped-def]
    short = {**_short("cnn_seed", EPOCHS), "precision": "float32"}
    settings = {"default": {}, "intra1_inter1": {"intra": "1", "inter": "1"},
                "intra4_inter2": {"intra": "4", "inter": "2"}}
    _compare(benchmark, {
        name: _arm("cnn_seed", short, {"TF_NUM_INTRAOP_THREADS": s["intra"],
                                       "TF_NUM_INTEROP_THREADS": s["inter"]} if s else None)
        for name, s in settings.items()})


@pytest.mark.benchmark(group="training: batch prefetching")
@pytest.mark.parametrize("model", DEEP)
def test_loader_workers(benchmark, model: str) -> None:  # type: ignore[no-untyped-def]
    # at each plugin's default precision: what a run trains with
    short = _short(model, EPOCHS)
    table = _compare(benchmark, {f"loader_workers={w}": _arm(model, {**short, "loader_workers": w})
                                 for w in (1, 2)})
    # the batches are the same with any number of loader threads, and so is the model
    aucs = {name: arm["val_auc_last_epoch"] for name, arm in table.items()}
    assert aucs["loader_workers=1"] == aucs["loader_workers=2"], aucs
