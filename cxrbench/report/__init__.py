"""The report: one self-contained HTML file (Jinja2 templates in ``templates/``, inline SVG
figures, thumbnails as data URIs, the data its scripts read as embedded JSON), plus the
Markdown and CSV leaderboards beside it.

``audit_summary(audit_dataset(dataset))`` is what a caller stores as ``results["data_audit"]``
for the report's audit section.
"""

from cxrbench.report.audit import audit_summary
from cxrbench.report.html import render_report
from cxrbench.report.saliency_context import SaliencyRequest
from cxrbench.report.tables import leaderboard_markdown, write_tables

__all__ = ["SaliencyRequest", "audit_summary", "leaderboard_markdown", "render_report",
           "write_tables"]
