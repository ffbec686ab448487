"""The report: one self-contained HTML file (Jinja2 templates in ``templates/``, inline SVG
figures, thumbnails as data URIs), plus ``leaderboard.md`` and ``leaderboard.csv`` beside it."""

from cxrbench.report.html import render_report
from cxrbench.report.tables import leaderboard_markdown, write_tables

__all__ = ["leaderboard_markdown", "render_report", "write_tables"]
