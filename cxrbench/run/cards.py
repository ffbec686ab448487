"""Model cards of a run's saved models: ``OUT/models/<job_id>/model_card.md``.

Written when a run with saved models ends, rewritten when ``cxrbench evaluate`` adds or
replaces an external set, and on demand by ``cxrbench card RUN_DIR``. The card is a
description derived from the results (:mod:`cxrbench.report.model_card`), never read by a
loader: ``model.json`` does not list it (``cxrbench.plugins.artifacts.DERIVED_FILES``), so
rewriting it leaves the saved model loadable. Writers hold the run folder's lock.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrbench.files import atomic_write_text
from cxrbench.plugins.artifacts import CARD_FILE, read_model_info
from cxrbench.plugins.persistence import ArtifactError
from cxrbench.report.card_content import render_markdown
from cxrbench.stats import with_statistics


@dataclass
class CardsOutcome:
    """The cards written, and the saved models that got none, with why."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (job id, reason)


def saved_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ok records whose fitted model was saved."""
    return [r for r in results.get("records", [])
            if r.get("status") == "ok" and (r.get("model_artifact") or {}).get("path")]


def write_model_cards(results: dict[str, Any], run_dir: str | Path) -> CardsOutcome:
    """Write the card of every saved model of ``results`` (the results file in ``run_dir``).

    ``results`` should carry its statistics (``with_statistics``); they are computed here when
    it does not. A missing model folder is skipped with the reason; a ``model.json`` that
    cannot be read (modified, foreign) gives a card from the results alone, saying so.
    """
    outcome = CardsOutcome()
    records = saved_records(results)
    if not records:
        return outcome
    from cxrbench.report.model_card import build_card, card_context  # (matplotlib, via report)

    if "statistics" not in results:
        results = with_statistics(results)
    context = card_context(results)
    for record in records:
        artifact = record["model_artifact"]
        folder = Path(run_dir) / artifact["path"]
        if not folder.is_dir():
            outcome.skipped.append((record["job_id"], f"no model folder at {folder}"))
            continue
        try:
            info: dict[str, Any] | None = dict(read_model_info(
                folder, expected_sha256=artifact.get("model_json_sha256")))
        except ArtifactError as err:
            info = None
            print(f"warning: {record['job_id']}: model card written from the results only: "
                  f"{err}", file=sys.stderr, flush=True)
        card = render_markdown(build_card(context, record["job_id"], model_info=info))
        outcome.written.append(atomic_write_text(folder / CARD_FILE, card))
    return outcome


def refresh_model_cards(results: dict[str, Any], run_dir: str | Path) -> CardsOutcome | None:
    """:func:`write_model_cards` for a run or an evaluate that has just written its results:
    problems are warnings (the results stand; ``cxrbench card RUN_DIR`` writes the cards
    again), and None when a card could not be written."""
    try:
        outcome = write_model_cards(results, run_dir)
    except OSError as err:
        print(f"warning: model cards not written: {err}; `cxrbench card {run_dir}` writes "
              "them once fixed", file=sys.stderr, flush=True)
        return None
    for job_id, reason in outcome.skipped:
        print(f"warning: {job_id}: no model card: {reason}", file=sys.stderr, flush=True)
    return outcome
