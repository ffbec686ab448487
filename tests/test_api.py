"""The Python API (``cxrbench.benchmark`` -> ``Benchmark``), used as a notebook would."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cxrbench
from cxrbench.cli import main
from cxrbench.plugins import registry
from cxrbench.plugins.contract import ImageSet, ModelCard, ParameterError, Plugin, param
from cxrbench.results.io import read_results
from cxrbench.run.config import ConfigError
from cxrbench.scoring.metrics import METRICS, TIMING_DIRECTIONS


@pytest.fixture
def scratch_registry(monkeypatch):
    """Plugins a test registers are gone after it."""
    registry._ensure_loaded()
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_sources", dict(registry._sources))


def brightness_class(name: str = "api_brightness", message: str = "") -> type[Plugin]:
    """A plugin class made inside a function, as in a notebook cell: it cannot be imported by
    name, so it reaches job processes by value."""

    class Brightness(Plugin):
        card = ModelCard(name=name, family="baseline", framework="numpy",
                         description="Mean brightness, scaled.", input_size=32, channels=1)
        scale: float = param(1.0, low=0, low_exclusive=True)

        def _fit(self, train: ImageSet, val: ImageSet) -> None:
            if message:
                raise RuntimeError(message)
            self.fit_info_ = {"scale": self.scale}

        def _predict(self, images: ImageSet) -> np.ndarray:
            mean = images.images.reshape(len(images), -1).mean(axis=1) / 255
            return np.clip(mean * self.scale, 0, 1)

    return Brightness


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard without the timings (they differ between two runs of the same jobs)."""
    drop = [c for c in frame.columns if c in TIMING_DIRECTIONS or c == "n_params"]
    return frame.drop(columns=drop)


@pytest.mark.slow
def test_notebook_style_run_matches_the_cli(scratch_registry, synthetic_root, tmp_path, capsys):
    """A plugin class defined in the test, beside hog_svm, through benchmark() with the
    default (process) executor, then the same run through the CLI: same split, same numbers."""
    Brightness = brightness_class()

    bench = cxrbench.benchmark(synthetic_root, models=["hog_svm", Brightness], seeds=[0, 1],
                               out=tmp_path / "api")
    assert isinstance(bench, cxrbench.Benchmark)
    assert bench.status == "complete" and bench.outcome.n_ok == 4
    assert bench.results["run"]["executor"] == "process"  # each job in its own process
    code = main(["run", "--data", str(synthetic_root), "--models", "hog_svm,api_brightness",
                 "--seeds", "0,1", "--out", str(tmp_path / "cli")])
    assert code == 0, capsys.readouterr().err
    cli = read_results(tmp_path / "cli" / "results.json")

    assert bench.split_sha256 == cli["split"]["sha256"]
    assert sorted(p.name for p in bench.out.iterdir()) == sorted(
        p.name for p in (tmp_path / "cli").iterdir())  # the same files
    board = bench.leaderboard()
    assert list(board["model"]) == list(cxrbench.results.load(tmp_path / "cli" / "results.json")
                                        ["model"])
    pd.testing.assert_frame_equal(
        comparable(board), comparable(cxrbench.results.load(tmp_path / "cli" / "results.json")))
    assert {"roc_auc_low", "roc_auc_high"} <= set(board.columns)
    cli_records = {r["job_id"]: r for r in cli["records"]}
    for record in bench.results["records"]:
        twin = cli_records[record["job_id"]]
        assert record["metrics"] == twin["metrics"]
        assert record["predictions"] == twin["predictions"]
        assert record["plugin"] == twin["plugin"]
    origin = bench.results["records"][-1]["plugin"]
    assert origin["class"].endswith("Brightness") and origin["file"] == __file__
    assert bench.results["run"]["command"] is None
    assert cli["run"]["command"][:2] == ["cxrbench", "run"]


def test_instances_get_their_own_rows_and_their_parameters(scratch_registry, synthetic_root,
                                                           tmp_path):
    Brightness = brightness_class()
    bench = cxrbench.benchmark(synthetic_root, models=[Brightness, Brightness(scale=2.0),
                                                      "majority"],
                               seeds=[0], out=tmp_path / "o", executor="inline", report=False)
    assert sorted(bench.leaderboard()["model"]) == [
        "api_brightness", "api_brightness(scale=2.0)", "majority"]
    params = dict(zip(bench.records["model"], bench.records["params"], strict=True))
    assert params == {"api_brightness": {}, "api_brightness(scale=2.0)": {"scale": 2.0},
                      "majority": {}}
    # An instance left at its defaults is its class; the run's seeds replace its own seed.
    again = cxrbench.benchmark(synthetic_root, models=[Brightness(seed=7)], seeds=[1],
                               out=tmp_path / "o2", executor="inline", report=False)
    assert list(again.records["job_id"]) == ["api_brightness[seed=1]"]


def test_bad_models_and_values_stop_before_any_work(scratch_registry, synthetic_root, tmp_path):
    Brightness = brightness_class()
    out = tmp_path / "o"
    with pytest.raises(ConfigError, match="given more than once"):
        cxrbench.benchmark(synthetic_root, models=[Brightness, "api_brightness"], out=out)
    with pytest.raises(ParameterError, match="invalid value -1"):
        cxrbench.benchmark(synthetic_root, models=[Brightness(scale=-1)], out=out)
    with pytest.raises(ParameterError, match="scale"):
        cxrbench.benchmark(synthetic_root, models=[Brightness],
                           params={"api_brightness": {"scale": "big"}}, out=out)
    with pytest.raises(ConfigError, match="not in this run"):
        cxrbench.benchmark(synthetic_root, models="majority", params={"hog_svm": {}}, out=out)
    with pytest.raises(ConfigError, match="is not a model"):
        cxrbench.benchmark(synthetic_root, models=[42], out=out)
    fitted = registry.create_model("majority")
    fitted.is_fitted_ = True
    with pytest.raises(ConfigError, match="unfitted"):
        cxrbench.benchmark(synthetic_root, models=[fitted], out=out)
    with pytest.raises(ValueError, match="already registered by cxrbench.plugins.baseline"):
        cxrbench.benchmark(synthetic_root, models=[brightness_class("majority")], out=out)
    with pytest.raises(ConfigError, match="Dask executor only"):
        cxrbench.benchmark(synthetic_root, models="majority", out=out,
                           executor_options={"n_workers": 2})
    assert not out.exists()


def test_redefining_a_class_replaces_it(scratch_registry, synthetic_root, tmp_path):
    """A notebook cell run again defines a new class of the same name: it replaces the old."""
    first, second = brightness_class(), brightness_class()
    assert first is not second
    for cls in (first, second):
        cxrbench.benchmark(synthetic_root, models=[cls], out=tmp_path / cls.__name__,
                           executor="inline", report=False, overwrite=True)
        assert registry.get_model_class("api_brightness") is cls


def test_benchmark_tables_report_compare_and_html(scratch_registry, synthetic_root, tmp_path):
    hostile = "<script>alert('x')</script>"
    models = ["majority", brightness_class(), brightness_class("api_fails", message=hostile)]
    bench = cxrbench.benchmark(synthetic_root, models=models, seeds=[0, 1], out=tmp_path / "a",
                               executor="inline", report=False)
    n_test = len(bench.results["evaluation"]["test"]["ids"])

    records = bench.records
    assert len(records) == 6 and set(records["status"]) == {"ok", "error"}
    assert records.loc[records["model"] == "api_fails", "error"].eq(hostile).all()
    ok = records[records["status"] == "ok"]
    assert ok["test_roc_auc_low"].notna().all()
    assert (ok["test_roc_auc_low"] <= ok["test_roc_auc"]).all()
    assert (ok["test_roc_auc"] <= ok["test_roc_auc_high"]).all()
    assert {f"val_{m}" for m in METRICS} <= set(records.columns)
    stored = {r["job_id"]: r for r in bench.results["records"]}
    for row in ok.itertuples():
        assert row.test_accuracy == stored[row.job_id]["metrics"]["test"]["accuracy"]

    predictions = bench.predictions("api_brightness")
    assert len(predictions) == 2 * n_test and set(predictions["seed"]) == {0, 1}
    record = stored["api_brightness[seed=0]"]
    seed0 = predictions[predictions["seed"] == 0]
    assert seed0["probability"].tolist() == record["predictions"]["test"]
    assert seed0["predicted"].tolist() == [int(p >= record["threshold"])
                                           for p in record["predictions"]["test"]]
    with pytest.raises(KeyError, match="Did you mean: api_brightness"):
        bench.predictions("api_brightnes")
    with pytest.raises(ValueError, match="no successful record"):
        bench.predictions("api_fails")

    report = bench.report()
    assert report == bench.out / "report.html" and "api_brightness" in report.read_text()
    assert (bench.out / "leaderboard.csv").is_file()

    loaded = cxrbench.Benchmark.load(bench.out)  # a folder, or the results file itself
    pd.testing.assert_frame_equal(loaded.leaderboard(), bench.leaderboard())
    same = loaded.compare(bench)
    assert same.exit_code == 0 and not same.regressions and not same.incomparable
    other = cxrbench.benchmark(synthetic_root, models="majority", split_seed=1, out=tmp_path / "b",
                               executor="inline", report=False)
    assert other.compare(bench).incomparable  # another split plan: not comparable

    html = bench._repr_html_()
    assert hostile not in html and "&lt;script&gt;" in html
    assert "api_brightness" in html and bench.split_sha256[:12] in html
    assert "SYNTHETIC" in html and "Failed jobs" in html
    assert "complete" in repr(bench)


def test_out_none_is_a_temporary_folder_kept_with_the_benchmark(synthetic_root):
    bench = cxrbench.benchmark(synthetic_root, models="majority", executor="inline")
    folder = bench.out
    assert (folder / "results.json").is_file() and (folder / "report.html").is_file()
    del bench
    gc.collect()
    assert not folder.exists()


@pytest.mark.slow
def test_a_class_defined_in_main_runs_in_job_processes(synthetic_root, tmp_path):
    """As in a notebook: the class lives in __main__ (here `python -c`), which no job process
    can import, and the default process executor still runs it."""
    code = textwrap.dedent(f"""
        import numpy as np, cxrbench
        from cxrbench.plugins.contract import ModelCard, Plugin

        class Darkness(Plugin):
            card = ModelCard(name="main_darkness", family="baseline", framework="numpy",
                             description="1 - mean brightness.", input_size=32, channels=1)

            def _fit(self, train, val):
                pass

            def _predict(self, images):
                return 1 - images.images.reshape(len(images), -1).mean(axis=1) / 255

        bench = cxrbench.benchmark({str(synthetic_root)!r}, models=[Darkness], seeds=[0],
                                   out={str(tmp_path / "out")!r}, report=False)
        print(bench.records[["job_id", "status", "error"]].to_json(orient="records"))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert rows == [{"job_id": "main_darkness[seed=0]", "status": "ok", "error": None}]
    record = read_results(tmp_path / "out" / "results.json")["records"][0]
    assert record["plugin"]["class"] == "__main__:Darkness"
    assert record["plugin"]["file"] is None  # python -c: no file, and no source to hash


def test_package_root_exports_the_api():
    assert "benchmark" in dir(cxrbench) and cxrbench.Benchmark.__module__ == "cxrbench.api.result"
    with pytest.raises(AttributeError, match="no attribute 'benchmrk'"):
        cxrbench.benchmrk  # noqa: B018


def test_the_records_note_where_builtin_plugins_come_from(synthetic_root, tmp_path):
    bench = cxrbench.benchmark(synthetic_root, models="majority", out=tmp_path,
                               executor="inline", report=False)
    plugin = bench.results["records"][0]["plugin"]
    assert plugin["class"] == "cxrbench.plugins.baseline:Majority"
    assert Path(plugin["file"]).name == "baseline.py" and plugin["sha256_of"] == "file"
    from cxrbench.files import sha256_file

    assert plugin["sha256"] == sha256_file(plugin["file"])
