"""Report rendering: one self-contained HTML file (Jinja2 templates in ``templates/``)."""

from cxrbench.report.html import render_report

__all__ = ["render_report"]
