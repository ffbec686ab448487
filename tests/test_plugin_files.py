"""Local plugin files and modules: ``--plugins my_model.py,my_pkg.plugins`` and
``CXRBENCH_PLUGINS`` for run, check and models, in job processes and on Dask workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from cxrbench.cli import main
from cxrbench.files import sha256_file
from cxrbench.plugins import registry
from cxrbench.plugins.sources import (
    PLUGINS_ENV,
    PluginImport,
    class_payload,
    importable,
    load_plugins,
    split_plugin_specs,
)
from cxrbench.results.io import read_results
from cxrbench.run.jobs import Job, run_job

PLUGIN_SOURCE = '''
import numpy as np
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin, param
from cxrbench.plugins.registry import register_model


@register_model
class {cls}(Plugin):
    card = ModelCard(name="{name}", family="baseline", framework="numpy",
                     description="Mean brightness, from a local file.", input_size=32,
                     channels=1, reference="a brightness floor")
    scale: float = param(1.0, low=0, low_exclusive=True)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.fit_info_ = {{}}

    def _predict(self, images: ImageSet) -> np.ndarray:
        mean = images.images.reshape(len(images), -1).mean(axis=1) / 255
        return np.clip(mean * self.scale, 0, 1)
'''


@pytest.fixture
def isolated_imports(monkeypatch):
    """Registry, sys.modules and sys.path as they were, after the test."""
    registry._ensure_loaded()
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_sources", dict(registry._sources))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if not name.startswith(("cxrbench", "dask", "distributed")):
            del sys.modules[name]


def plugin_file(folder: Path, module: str, name: str, cls: str = "LocalBrightness") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(PLUGIN_SOURCE.format(cls=cls, name=name))
    return path


def test_models_lists_plugins_from_a_file_and_from_a_module(isolated_imports, tmp_path, capsys,
                                                             monkeypatch):
    path = plugin_file(tmp_path / "files", "pf_models_file", "pf_from_file")
    package = tmp_path / "site" / "pf_pkg"
    plugin_file(package, "plugins", "pf_from_module", cls="ModuleBrightness")
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    assert main(["models", "pf_*", "--json", "--plugins", f"{path},pf_pkg.plugins"]) == 0
    cards = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert cards["pf_from_file"]["source"] == "pf_models_file:LocalBrightness"
    assert cards["pf_from_file"]["file"] == str(path)
    assert cards["pf_from_module"]["source"] == "pf_pkg.plugins:ModuleBrightness"
    assert cards["pf_from_module"]["file"] == str(package / "plugins.py")


def test_the_environment_variable_names_plugins_too(isolated_imports, tmp_path, capsys,
                                                    monkeypatch):
    first = plugin_file(tmp_path, "pf_env_one", "pf_env_one")
    second = plugin_file(tmp_path, "pf_env_two", "pf_env_two", cls="Other")
    monkeypatch.setenv(PLUGINS_ENV, f"{first}{os.pathsep}{second}")
    assert main(["models", "pf_env_*"]) == 0
    listed = capsys.readouterr().out
    assert "pf_env_one" in listed and "pf_env_two" in listed
    assert split_plugin_specs(f"a.py, b.py{os.pathsep}pkg.mod,a.py") == ["a.py", "b.py",
                                                                         "pkg.mod"]


def test_check_runs_the_conformance_kit_on_a_file_plugin(isolated_imports, tmp_path, capsys):
    path = plugin_file(tmp_path, "pf_check_file", "pf_check")
    code = main(["check", "pf_check", "--plugins", str(path), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 0, [r for r in results if r["status"] == "FAIL"]
    statuses = {r["check"]: r["status"] for r in results}
    assert statuses["check_import_without_frameworks"] == "PASS"  # a fresh interpreter finds it
    assert statuses["check_pickle_round_trip"] == "PASS"


@pytest.mark.slow
def test_run_with_a_plugin_file_in_job_processes(isolated_imports, synthetic_root, tmp_path,
                                                 capsys):
    path = plugin_file(tmp_path / "plugins", "pf_run_file", "pf_run")
    out = tmp_path / "out"
    code = main(["run", "--data", str(synthetic_root), "--models", "pf_run,majority",
                 "--plugins", str(path), "--out", str(out), "--no-report"])
    assert code == 0, capsys.readouterr().err
    records = {r["model"]: r for r in read_results(out / "results.json")["records"]}
    assert records["pf_run"]["status"] == "ok"
    assert records["pf_run"]["plugin"] == {"class": "pf_run_file:LocalBrightness",
                                           "file": str(path), "sha256": sha256_file(path),
                                           "sha256_of": "file"}


@pytest.mark.slow
def test_run_with_a_plugin_file_on_dask_workers(isolated_imports, synthetic_root, tmp_path,
                                                capsys):
    pytest.importorskip("distributed")
    path = plugin_file(tmp_path / "plugins", "pf_dask_file", "pf_dask")
    out = tmp_path / "out"
    code = main(["run", "--data", str(synthetic_root), "--models", "pf_dask", "--seeds", "0,1",
                 "--plugins", str(path), "--out", str(out), "--no-report",
                 "--executor", "dask", "--dask-workers", "1"])
    assert code == 0, capsys.readouterr().err
    records = read_results(out / "results.json")["records"]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert all(r["worker"]["address"] and r["plugin"]["file"] == str(path) for r in records)


def test_a_job_refuses_a_plugin_file_changed_since_the_run_planned(isolated_imports,
                                                                   synthetic_root, tmp_path):
    path = plugin_file(tmp_path, "pf_changed", "pf_changed")
    (imported,) = load_plugins([str(path)])
    assert imported == PluginImport(str(path), "pf_changed", str(path), sha256_file(path))
    stale = replace(imported, sha256="0" * 64)
    job = Job(model="pf_changed", seed=0, data_path=str(synthetic_root), data_hash="x",
              split_plan_path="/nowhere", split_sha256="x", cache_dir=str(tmp_path / "c"),
              threshold_rule="youden", image_size=32, channels=1, plugins=(stale,))
    record = run_job(job)
    assert record["status"] == "error" and record["error"]["type"] == "PluginLoadError"
    assert "changed since the run started" in record["error"]["message"]


def _written(name: str, text: str = "") -> object:
    def make(folder: Path) -> str:
        (folder / name).write_text(text)
        return str(folder / name)
    return make


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: str(d / "missing.py"), "missing.py does not exist"),
    (lambda d: "no_such_module_anywhere", "cannot import plugin module 'no_such_module_anywhere'"),
    (_written("pf_raises.py", "raise RuntimeError('broken')"),
     "importing plugin file .*pf_raises.py failed: RuntimeError: broken"),
    (_written("json.py"), "a module named 'json' is already imported"),
    (_written("my-model.py"), "not a valid module name"),
])
def test_bad_plugin_entries_are_exit_2_with_the_fix(isolated_imports, tmp_path, capsys, make,
                                                    message):
    entry = make(tmp_path)
    for argv in (["models"], ["check", "majority"],
                 ["run", "--data", str(tmp_path), "--models", "majority"]):
        assert main([*argv, "--plugins", entry]) == 2
        err = capsys.readouterr().err
        assert "cxrbench: error:" in err
        assert re.search(message, err), err


def test_classes_travel_by_reference_when_importable_else_by_value(isolated_imports, tmp_path):
    path = plugin_file(tmp_path, "pf_travel", "pf_travel")
    load_plugins([str(path)])
    assert class_payload("pf_travel") is None and class_payload("majority") is None
    local = type("Local", (registry.get_model_class("pf_travel"),), {
        "card": replace(registry.get_card("pf_travel"), name="pf_local")})
    local.__qualname__ = "f.<locals>.Local"
    registry.register_model(local)
    assert not importable(local)
    payload = class_payload("pf_local")
    assert isinstance(payload, bytes)
    # a fresh process rebuilds the class from the payload alone
    code = textwrap.dedent("""
        import sys
        from cxrbench.plugins.sources import ensure_model
        from cxrbench.plugins.registry import create_model
        ensure_model("pf_local", "", open(sys.argv[1], "rb").read())
        print(create_model("pf_local", scale=2.0).get_params())
    """)
    (tmp_path / "payload").write_bytes(payload)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "payload")],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("{'seed': 0, 'intensity': 'none', 'thorax_crop': False, "
                                   "'scale': 2.0}")


def test_the_readme_example_plugin_file_passes_the_kit(isolated_imports, capsys):
    example = Path(__file__).parent / "local_plugin" / "centre_brightness.py"
    assert main(["check", "centre_brightness", "--plugins", str(example)]) == 0, \
        capsys.readouterr().out


def test_a_new_payload_replaces_the_class_a_long_lived_worker_loaded(isolated_imports):
    """A notebook cell edited between two runs: a Dask worker that kept the first class gets
    the second from the new payload; the same payload again changes nothing."""
    from cxrbench.plugins.contract import ModelCard, Plugin, param
    from cxrbench.plugins.sources import ensure_model

    def define(default: float) -> type[Plugin]:
        class Edited(Plugin):
            card = ModelCard(name="pf_edited", family="baseline", framework="numpy",
                             description="edited", input_size=32, channels=1)
            scale: float = param(default)

        return Edited

    registry.register_model(define(1.0))
    first = class_payload("pf_edited")
    registry.register_model(define(3.0))
    second = class_payload("pf_edited")
    ensure_model("pf_edited", "", first)
    assert registry.get_model_class("pf_edited").param_specs()["scale"].default == 1.0
    ensure_model("pf_edited", "", second)
    loaded = registry.get_model_class("pf_edited")
    assert loaded.param_specs()["scale"].default == 3.0
    ensure_model("pf_edited", "", second)
    assert registry.get_model_class("pf_edited") is loaded


def test_a_notebook_class_is_hashed_by_its_source(isolated_imports):
    """A class from a notebook cell has no file: its record hashes its source text, which
    Python finds through linecache, as IPython registers each cell."""
    import linecache

    from cxrbench.plugins.sources import plugin_origin

    cell = textwrap.dedent("""
        from cxrbench.plugins.contract import ModelCard, Plugin

        class CellPlugin(Plugin):
            card = ModelCard(name="pf_cell", family="baseline", framework="numpy",
                             description="from a cell", input_size=32, channels=1)

            def _fit(self, train, val):
                pass
    """)
    filename = "<ipython-input-7-cafe>"
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    namespace = {"__name__": "pf_cell_namespace"}  # like __main__ in a kernel: no file
    exec(compile(cell, filename, "exec"), namespace)
    registry.register_model(namespace["CellPlugin"])
    origin = plugin_origin("pf_cell")
    assert origin["file"] is None and origin["sha256_of"] == "class source"
    assert len(origin["sha256"]) == 64
    linecache.cache.pop(filename)
