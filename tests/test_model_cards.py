"""Model cards: ``model_card.md`` beside every saved model (written by ``run --save-models``,
rewritten by ``evaluate`` and ``cxrbench card``) and one card per model in the report, with the
results file's own numbers, the threshold-transfer rule of the report, and every untrusted
string escaped."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from saved_runs import shifted_copy
from test_untrusted_text import PAYLOADS, assert_inert

from cxrbench.cli import main
from cxrbench.plugins.artifacts import CARD_FILE, load_model
from cxrbench.report import render_report
from cxrbench.report.card_content import render_markdown
from cxrbench.report.model_card import build_card, card_context
from cxrbench.results.io import read_results
from cxrbench.stats import with_statistics
from cxrbench.stats.generalisation import generalisation_statistics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(synthetic_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("cards")
    cache = base / "cache"
    out = base / "run"
    code = main(["run", "--data", str(synthetic_root), "--models", "majority,pixels_logreg",
                 "--seeds", "0,1", "--executor", "inline", "--save-models", "--cache-dir",
                 str(cache), "--out", str(out)])
    assert code == 0
    return SimpleNamespace(run=out, cache=cache,
                           shifted=shifted_copy(synthetic_root / "test", base / "shifted"))


@pytest.fixture
def run_dir(world, tmp_path):
    return Path(shutil.copytree(world.run, tmp_path / "run"))


def card_of(run_dir: Path, job_id: str) -> str:
    return (run_dir / "models" / job_id / CARD_FILE).read_text()


def table_row(card: str, label: str, after: str) -> list[str]:
    """The cells of the first table row starting with ``label`` after the heading ``after``."""
    section = card[card.index(after):]
    line = next(line for line in section.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def shown(entry: dict) -> str:
    """An estimate and its interval as a card writes them (a true minus sign)."""
    text = f"{entry['estimate']:.3f} ({entry['low']:.3f}, {entry['high']:.3f})"
    return text.replace("-", "\N{MINUS SIGN}")


def test_a_card_beside_every_saved_model_and_the_model_still_loads(world):
    results = read_results(world.run / "results.json")
    saved = [r for r in results["records"] if (r.get("model_artifact") or {}).get("path")]
    assert len(saved) == 4
    for record in saved:
        folder = world.run / record["model_artifact"]["path"]
        card = (folder / CARD_FILE).read_text()
        assert card.startswith(f"# Model card: {record['model']}")
        assert record["model_artifact"]["model_json_sha256"] in card
        assert "not a medical device" in card and "SYNTHETIC" in card
        for heading in ("Intended use", "Data and split", "Validation and test performance",
                        "External validation", "Subgroups", "Calibration",
                        "Decision threshold", "Known limitations", "Cost", "Provenance"):
            assert f"## {heading}" in card, heading
        assert results["split"]["sha256"] in card
        # model.json does not list the card: the folder still verifies and loads
        load_model(folder, expected_sha256=record["model_artifact"]["model_json_sha256"])


def test_card_metrics_and_intervals_are_the_results_files(world):
    results = read_results(world.run / "results.json")  # as written by the run
    generalisation = generalisation_statistics(results)
    for record in results["records"]:
        job = record["job_id"]
        card = card_of(world.run, job)
        test = results["statistics"]["records"][job]["test"]
        val = generalisation["sets"]["val"]["records"][job]
        for key, label in (("roc_auc", "ROC AUC"), ("specificity", "Specificity"),
                           ("accuracy", "Accuracy")):
            cells = table_row(card, label, "## Validation and test performance")
            if test[key]["low"] is not None:
                assert cells[1] == shown(test[key]), (job, key)
            if val[key]["low"] is not None:
                assert cells[0] == shown(val[key]), (job, key)
        brier = table_row(card, "Brier score", "## Calibration")
        assert brier[1] == shown(test["brier"])
        assert f"{record['threshold']:.4f}" in card and "`youden`" in card
        scored = [(name, e) for name, e in generalisation["subgroups"]["test"].items()
                  if e["models"]]
        assert scored  # each seed's own subgroup scores, not the model's seed mean
        for name, entry in scored:
            own = "recall" if entry["classes"] == ["PNEUMONIA"] else "specificity"
            row = next(line for line in card.splitlines()
                       if line.startswith(f"| test (internal) | {name} |"))
            assert f"| {shown(entry['records'][job][own])} |" in row


def test_evaluate_adds_the_external_set_to_every_card(world, run_dir):
    job = "pixels_logreg[seed=1]"
    assert "No external set has been scored" in card_of(run_dir, job)
    assert main(["evaluate", str(run_dir), "--data", str(world.shifted), "--name", "shifted",
                 "--cache-dir", str(world.cache)]) == 0
    results = read_results(run_dir / "results.json")
    external = results["statistics"]["generalisation"]["sets"]["shifted"]["records"]
    drop = results["statistics"]["generalisation"]["drop"]["shifted"]["pixels_logreg"]
    for record in results["records"]:
        card = card_of(run_dir, record["job_id"])
        assert "No external set has been scored" not in card
        cells = table_row(card, "ROC AUC", "## External validation")
        assert cells[1] == shown(external[record["job_id"]]["roc_auc"])
    card = card_of(run_dir, job)
    assert f"drop from test: {shown(drop)} (mean over the model's 2 seeds)" in card
    assert "shifted (external)" in table_row(card, "metric", "## Calibration")


def test_card_verb_rewrites_the_cards(world, run_dir, tmp_path, capsys):
    card = run_dir / "models" / "majority[seed=0]" / CARD_FILE
    before = card.read_text()
    card.unlink()
    assert main(["card", str(run_dir)]) == 0
    assert card.read_text() == before  # the same results give the same card
    assert str(card) in capsys.readouterr().out
    shutil.rmtree(run_dir / "models" / "majority[seed=1]")
    assert main(["card", str(run_dir / "results.json")]) == 1
    assert "majority[seed=1]: no model card: no model folder" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    results = json.loads((run_dir / "results.json").read_text())
    for record in results["records"]:
        record.pop("model_artifact", None)
    (bare / "results.json").write_text(json.dumps(results))
    assert main(["card", str(bare)]) == 2
    assert "has no saved model" in capsys.readouterr().err
    assert main(["card", str(tmp_path / "nowhere")]) == 2


def test_threshold_transfer_limitation_follows_the_reports_rule(world):
    results = with_statistics(read_results(world.run / "results.json"))
    job = "pixels_logreg[seed=0]"
    test = results["statistics"]["records"][job]["test"]["specificity"]
    record = next(r for r in results["records"] if r["job_id"] == job)
    for val_spec, shifts in ((test["high"] + 0.01, True), (test["estimate"], False)):
        changed = copy.deepcopy(results)
        next(r for r in changed["records"] if r["job_id"] == job)["metrics"]["val"][
            "specificity"] = min(val_spec, 1.0) if shifts and test["high"] < 0.99 else val_spec
        if shifts and test["high"] >= 0.99:
            pytest.skip("the synthetic test interval reaches 1: no validation value lies above")
        card = render_markdown(build_card(card_context(changed), job))
        assert ("does not carry over to test: specificity" in card) is shifts
    assert record["threshold_rule"] == "youden"


def test_report_shows_one_card_per_model(world, tmp_path):
    results = with_statistics(read_results(world.run / "results.json"))
    html = render_report(results, tmp_path / "report.html", run_dir=world.run).read_text()
    cards = re.findall(r'<details class="record model-card" id="([^"]+)">\s*<summary><span '
                       r'class="mono">([^<]+)</span> <span class="muted">· ([^<]+)</span>', html)
    assert sorted(model for _, model, _ in cards) == ["majority", "pixels_logreg"]
    for _, model, job in cards:
        assert job == results["statistics"]["models"][model]["representative"]
    # model.json was read (under run_dir): the description is on the card
    assert "Logistic regression on standardised" in html
    assert 'href="#model-cards"' in html


def test_hostile_names_and_params_are_escaped(world, tmp_path):
    results = copy.deepcopy(read_results(world.run / "results.json"))
    for record, payload in zip(results["records"], PAYLOADS, strict=False):
        record["model"] = payload
        record["job_id"] = f"{payload}[seed={record['seed']}]"
        record["params"] = {"evil": PAYLOADS[4], "x": PAYLOADS[0]}
        record["plugin"]["file"] = PAYLOADS[3]
    results["provenance"]["data"]["path"] = PAYLOADS[5]
    results = with_statistics(results)
    context = card_context(results)
    for record in results["records"][:4]:
        card = render_markdown(build_card(context, record["job_id"]))
        # rendered as GitHub would (raw HTML passed through): no tag, link or image, and
        # every payload shown as written
        assert_inert(card, [record["model"], f"x={PAYLOADS[0]!r}", f"evil={PAYLOADS[4]!r}",
                            PAYLOADS[3], PAYLOADS[5]])
        rows = [line for line in card.splitlines() if line.startswith("| ROC AUC |")]
        assert rows and all(re.sub(r"\\\|", "", r).count("|") == 4 for r in rows)
    html = render_report(results, tmp_path / "report.html").read_text()
    section = html[html.index('<section id="model-cards">'):]
    section = section[:section.index("</section>")]
    assert "<script>alert(1)" not in section and "<img src=x" not in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
