"""The token-debt report: ClickHouse → report data → HTML (inline SVG) or terminal text."""

from __future__ import annotations

from tokengov.app.report.build import build_report, default_since
from tokengov.app.report.html import render_html
from tokengov.app.report.model import DaySpend, FindingRow, ReportData, WorkflowUnits
from tokengov.app.report.text import render_text

__all__ = [
    "DaySpend",
    "FindingRow",
    "ReportData",
    "WorkflowUnits",
    "build_report",
    "default_since",
    "render_html",
    "render_text",
]
