"""The building blocks of a model card's content, as data: text made of segments, fact lists,
tables and sections. :mod:`cxrbench.report.model_card` fills them from a results file;
:func:`render_markdown` writes them as Markdown (every segment escaped with
:mod:`cxrbench.report.markdown`), and ``templates/partials/model_cards.html.j2`` as HTML
(Jinja2 autoescaping), so both show the same content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cxrbench.report.markdown import code_span, escape_markdown


class Code(str):
    """A segment shown as code (a path, a hash, a command, a parameter value)."""


Text = tuple[str, ...]  # segments: plain strings and Code


def text(*segments: Any) -> Text:
    """Text of segments: strings and Code kept as they are, anything else through ``str``."""
    return tuple(s if isinstance(s, str) else str(s) for s in segments if s is not None)


@dataclass
class Table:
    caption: Text
    header: list[Text]
    rows: list[list[Text]]


@dataclass
class Section:
    title: str
    paragraphs: list[Text] = field(default_factory=list)
    facts: list[tuple[str, Text]] = field(default_factory=list)
    bullets: list[Text] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[Text] = field(default_factory=list)  # small print under the tables


@dataclass
class CardContent:
    """One model card: title, the saved model it describes, its sections."""

    title: str
    job_id: str
    subtitle: Text
    sections: list[Section]


def number(value: Any, digits: int = 3) -> str:
    """A number for a card: fixed digits, a true minus sign, "–" when undefined."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    if not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}".replace("-", "−")


def estimate(entry: dict[str, Any] | None, digits: int = 3) -> str:
    """``0.953 (0.935, 0.968)``: an estimate with its interval (parentheses, not brackets, so
    the Markdown needs no escapes)."""
    if not entry or entry.get("estimate") is None:
        return "–"
    low, high = entry.get("low"), entry.get("high")
    interval = (f" ({number(low, digits)}, {number(high, digits)})"
                if low is not None and high is not None else "")
    return number(entry["estimate"], digits) + interval


def megabytes(n_bytes: Any) -> str:
    if not isinstance(n_bytes, int | float) or isinstance(n_bytes, bool):
        return "–"
    return f"{n_bytes / 1e6:.2f} MB ({int(n_bytes):,} bytes)".replace(",", " ")


# ------------------------------------------------------------------------------------ Markdown
def markdown_text(segments: Text, *, line_start: bool = False) -> str:
    """Segments as Markdown: code as code spans, the rest escaped (a block marker is escaped
    only where a line starts: ``line_start``)."""
    out = []
    for i, segment in enumerate(segments):
        if isinstance(segment, Code):
            out.append(code_span(segment))
        elif line_start and i == 0:  # its trailing space still separates it from the next
            out.append(escape_markdown(segment) + (" " if segment[-1:].isspace() else ""))
        else:
            out.append(escape_markdown(segment, inline=True))
    return "".join(out).strip()


def _table_markdown(table: Table) -> list[str]:
    lines = [f"*{markdown_text(table.caption, line_start=True)}*", ""] if table.caption else []
    lines.append("| " + " | ".join(markdown_text(h) for h in table.header) + " |")
    lines.append("|" + "---|" * len(table.header))
    lines += ["| " + " | ".join(markdown_text(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def render_markdown(card: CardContent) -> str:
    """The card as a Markdown document (``model_card.md``)."""
    lines = [f"# Model card: {escape_markdown(card.title)}", "",
             markdown_text(card.subtitle, line_start=True), ""]
    for section in card.sections:
        lines += [f"## {escape_markdown(section.title)}", ""]
        for paragraph in section.paragraphs:
            lines += [markdown_text(paragraph, line_start=True), ""]
        if section.facts:
            lines += [f"- **{escape_markdown(label)}**: {markdown_text(value)}"
                      for label, value in section.facts] + [""]
        if section.bullets:
            lines += [f"- {markdown_text(b, line_start=True)}" for b in section.bullets] + [""]
        for table in section.tables:
            lines += _table_markdown(table)
        for note in section.notes:
            lines += [f"*{markdown_text(note, line_start=True)}*", ""]
    return "\n".join(lines).rstrip() + "\n"
