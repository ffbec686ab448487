"""Text from results files (model names, error messages, paths, hostnames) made safe to put in
Markdown that a browser renders: leaderboard.md and ``cxrbench compare --markdown``, which a CI
workflow posts to the GitHub job summary.

``escape_markdown`` turns ``<`` and ``&`` into HTML entities (no tag, comment or entity can
start) and backslash-escapes the characters that make Markdown structure: emphasis, code spans,
links and images (``[``), table cells, strikethrough, and a heading, quote or list marker at the
start. A line break becomes a space, so
one value stays in one table cell or list item. ``code_span`` shows a value as code when that is
safe, and falls back to escaped text when the value could break out of the span.
"""

from __future__ import annotations

import re

_ENTITIES = {"&": "&amp;", "<": "&lt;"}  # no tag, comment or entity can start without these
_STRUCTURE = re.compile(r"([\\`*\[\]|~])")  # emphasis, code, links/images, cells, strike
# An underscore between two letters or digits (hog_svm) never makes emphasis: left as it is.
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# What makes a block when it starts a line (or a list item): heading, quote, list, rule.
_LEADING_BLOCK = re.compile(r"^(?:([#>+=-])|(\d+)([.)]))")


def escape_markdown(text: object, *, inline: bool = False) -> str:
    """``text`` as literal Markdown text: it renders as written, never as HTML or structure.

    ``inline=True``: a piece in the middle of a line or inside a table cell, where no block
    can start; its surrounding spaces are kept, so pieces can be joined.
    """
    text = " ".join(str(text).split("\n")).replace("\r", " ")
    text = text if inline else text.strip()  # one line, no indent
    text = "".join(_ENTITIES.get(char, char) for char in text)
    text = _STRUCTURE.sub(r"\\\1", text)
    text = _EMPHASIS_UNDERSCORE.sub(r"\\_", text)
    if inline:
        return text
    return _LEADING_BLOCK.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)


def code_span(text: object) -> str:
    """``text`` as inline code (literal by definition), or escaped text when it holds a
    backtick, a table-cell bar or a line break that could end the span early."""
    text = str(text)
    if any(char in text for char in "`|\n\r") or not text.strip():
        return escape_markdown(text)
    return f"`{text}`"
