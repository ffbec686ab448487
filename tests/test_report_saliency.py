"""``report --saliency`` on a real (synthetic-data) run with saved models: overlays where models
were saved, the report unchanged where they were not, a modified model refused with its reason
while the rest of the report is written."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from saved_runs import run_saved

from cxrbench.cli import main
from cxrbench.plugins.artifacts import DERIVED_FILES
from cxrbench.report import SaliencyRequest, render_report
from cxrbench.report.html import report_context
from cxrbench.stats import with_statistics

pytestmark = pytest.mark.slow

MODELS = "pixels_logreg,majority"  # fast; majority's constant answer has no saliency at all


@pytest.fixture(scope="module")
def world(synthetic_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("saliency")
    run_dir = base / "run"
    results = run_saved(synthetic_root, run_dir, base / "cache", models=MODELS,
                        extra=("--no-report",))
    return SimpleNamespace(run_dir=run_dir, results=with_statistics(results),
                           data=synthetic_root)


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">.*?</section>', html, re.S)
    assert found, f"no section {name}"
    return found.group(0)


def _request(run_dir: Path) -> SaliencyRequest:
    return SaliencyRequest(run_dir=run_dir, sample=4, progress=lambda message: None)


def test_saved_models_give_overlays_and_the_summary(world, tmp_path):
    values = report_context(world.results, world.data, _request(world.run_dir))
    saliency = values["saliency"]
    entries = {e["model"]: e for e in saliency["models"]}
    assert entries.keys() == set(MODELS.split(","))
    logreg = entries["pixels_logreg"]
    assert logreg["status"] == "ok" and logreg["methods"] == ["occlusion"]
    assert "not a Keras network" in logreg["gradcam_note"]
    assert logreg["n_random"] == 4 and logreg["n_shown"] >= 1
    assert logreg["max_p_diff"] < 1e-6  # the saved model scores as the run did
    shown = saliency["maps"]["pixels_logreg"]
    assert all(item["overlays"]["occlusion"].startswith("data:image/png;base64,")
               for item in shown.values())
    # A constant model: occlusion changes nothing, so no image has a share.
    assert all(share is None for share in entries["majority"]["shares"]["occlusion"]["random"])
    assert saliency["figure"] and "<svg" in saliency["figure"]

    html = render_report(world.results, tmp_path / "r.html", data_root=world.data,
                         saliency=_request(world.run_dir)).read_text()
    gallery = _section(html, "gallery")
    items = [i for m in values["gallery"]["models"] if m["model"] == "pixels_logreg"
             for i in m["items"]]
    assert items and gallery.count('alt="occlusion saliency of pixels_logreg') == len(items)
    section = _section(html, "saliency")
    assert 'id="figure-saliency"' in section and "pixels_logreg[seed=0]" in section
    assert 'href="#saliency"' in html


def test_without_saved_models_the_gallery_is_unchanged(world, tmp_path):
    plain = render_report(world.results, tmp_path / "plain.html",
                          data_root=world.data).read_text()
    assert 'id="saliency"' not in plain and "data:image/png" not in plain
    unsaved = copy.deepcopy(world.results)
    for record in unsaved["records"]:
        record.pop("model_artifact", None)
    asked = render_report(unsaved, tmp_path / "asked.html", data_root=world.data,
                          saliency=_request(world.run_dir)).read_text()
    for name in ("gallery", "hard-cases"):
        assert _section(asked, name) == _section(plain, name)
    section = _section(asked, "saliency")
    assert section.count("no saved model: run with --save-models") == 2
    assert "data:image/png" not in asked


def test_a_modified_model_is_refused_and_the_report_is_still_written(world, tmp_path):
    run_dir = Path(shutil.copytree(world.run_dir, tmp_path / "run"))
    record = next(r for r in world.results["records"] if r["model"] == "pixels_logreg")
    folder = run_dir / record["model_artifact"]["path"]
    # a file of the model (model.json and the model card are descriptions, not loaded)
    target = sorted(p for p in folder.iterdir() if p.name not in DERIVED_FILES)[0]
    target.write_bytes(target.read_bytes() + b"tampered")
    html = render_report(world.results, tmp_path / "r.html", data_root=world.data,
                         saliency=_request(run_dir)).read_text()
    section = _section(html, "saliency")
    assert "saved model refused" in section and "was modified after the model was saved" \
        in section
    assert "<td class=\"text\">ok</td>" in section  # majority's model is still used
    assert "occlusion saliency of pixels_logreg" not in html


def test_cli_report_saliency(world, tmp_path, capsys):
    run_dir = Path(shutil.copytree(world.run_dir, tmp_path / "run"))
    results = run_dir / "results.json"
    code = main(["report", str(results), "--data", str(world.data), "--saliency",
                 "--saliency-sample", "2", "--saliency-images", "3"])
    err = capsys.readouterr().err
    assert code == 0
    assert "saliency: pixels_logreg[seed=0]: 5 image(s)" in err and "done in" in err
    html = (run_dir / "report.html").read_text()
    assert 'id="saliency"' in html


def test_cli_rejects_a_bad_image_count(world, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(world.run_dir / "results.json"), "--saliency-images", "0"])
    assert exit_info.value.code == 2
    assert "expected a whole number >= 1" in capsys.readouterr().err


def test_untrusted_ids_in_overlay_captions_are_escaped(world, tmp_path):
    """A results file naming a model with markup: the saliency table shows it as text."""
    crafted = copy.deepcopy(world.results)
    for record in crafted["records"]:
        record["model_artifact"] = {"path": "models/<img src=x onerror=alert(1)>"}
    html = render_report(crafted, tmp_path / "r.html", data_root=world.data,
                         saliency=_request(world.run_dir)).read_text()
    section = _section(html, "saliency")
    assert "<img src=x" not in section and "&lt;img src=x" in section
    json.dumps(crafted)  # still plain JSON
