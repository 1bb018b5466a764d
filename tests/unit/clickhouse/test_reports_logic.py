"""Report SQL as strings and the budget arithmetic with an in-memory reader."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tokengov.core.policy import parse_policy
from tokengov.sinks.clickhouse import reports
from tokengov.sinks.clickhouse.reports import REPORTS, ReportWindow, run_report
from tokengov.sinks.clickhouse.store import QueryResult

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
POLICY = parse_policy("""
version: 1
teams: {search: {owner: o@example.com}}
receivers: {console: {type: log}}
routes: {receiver: console}
cost_profiles: {triage: {team: search}}
budgets:
  - {scope: team, name: search, period: day, limit_usd: 10, thresholds: [0.5, 0.8, 1.0]}
  - {scope: workflow, name: triage, period: month, limit_tokens: 1000}
""")


class FixedReader:
    """An in-memory Reader: answers the budget query with the given spend rows."""

    description = "memory"

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, Mapping[str, Any] | None]] = []

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        self.calls.append((sql, parameters))
        return QueryResult(
            ["team", "workflow", "cost_day", "tokens_day", "cost_month", "tokens_month"],
            [],
            self.rows,
        )

    def close(self) -> None:
        pass


def test_budget_status_from_spend():
    reader = FixedReader(
        [
            ("search", "triage", Decimal("6"), 100, Decimal("40"), 900),
            ("search", "doc-qa", Decimal("2.5"), 50, Decimal("5"), 300),
            ("support", "triage", Decimal("99"), 10, Decimal("99"), 200),
        ]
    )
    window = ReportWindow(NOW - timedelta(days=7), NOW, policy=POLICY)
    result = run_report("budgets", reader, window).dicts()
    team, workflow = result
    assert team["budget_id"] == "team:search:day"
    assert team["spent_usd"] == Decimal("8.5") and team["used_usd"] == 0.85
    assert team["status"] == "over 80%"
    assert team["forecast_usd"] == Decimal("17.00")  # half the day gone
    assert workflow["spent_tokens"] == 1100 and workflow["status"] == "breached"
    assert workflow["period_start"] == "2026-11-01"
    assert reader.calls[0][1] == {"today": "2026-11-15"}


def test_budgets_need_the_policy():
    with pytest.raises(ValueError, match="policy"):
        run_report("budgets", FixedReader([]), ReportWindow(NOW - timedelta(days=1), NOW))


def test_window_is_checked_and_parameterised():
    with pytest.raises(ValueError):
        ReportWindow(NOW, NOW)
    with pytest.raises(ValueError):
        ReportWindow(NOW.replace(tzinfo=None) - timedelta(1), NOW.replace(tzinfo=None))
    params = ReportWindow(NOW - timedelta(days=1), NOW, team="search").parameters()
    assert params == {
        "since": "2026-11-14 12:00:00.000",
        "until": "2026-11-15 12:00:00.000",
        "team": "search",
        "limit": 20,
    }


def test_unknown_report():
    with pytest.raises(ValueError, match="no report"):
        run_report("nope", FixedReader([]), ReportWindow(NOW - timedelta(days=1), NOW))


@pytest.mark.parametrize(
    "build",
    [
        reports.spend_sql,
        reports.alerts_sql,
        reports.coverage_sql,
    ],
)
def test_windowed_sql_is_parameterised(build):
    sql = build()
    assert "{since:DateTime64(3, 'UTC')}" in sql and "{until:DateTime64(3, 'UTC')}" in sql
    assert "'" + "search" + "'" not in sql  # values are bound, never pasted


def test_every_report_is_described():
    assert set(REPORTS) == {"spend", "top-tasks", "unit-economics", "budgets", "alerts", "coverage"}
