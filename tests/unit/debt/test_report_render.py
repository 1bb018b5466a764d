"""The report's SQL (as strings), charts and HTML, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from tokengov.app.report.html import render_html
from tokengov.app.report.model import DaySpend, FindingRow, ReportData, WorkflowUnits
from tokengov.app.report.queries import (
    findings_sql,
    outcomes_by_day_sql,
    spend_by_day_sql,
    spend_by_workflow_day_sql,
)
from tokengov.app.report.svg import bar_chart, line_chart, nice_max
from tokengov.streams.debt.maturity import MaturityFacts, grade

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_sql_reads_designs_tables_with_bound_parameters() -> None:
    sql, params = spend_by_day_sql(date(2026, 11, 1), "search")
    assert "FROM spend_daily" in sql and "day >= {since:Date}" in sql
    assert "team = {team:String}" in sql and params == {
        "since": date(2026, 11, 1),
        "team": "search",
    }
    sql, params = spend_by_workflow_day_sql(date(2026, 11, 1))
    assert "GROUP BY team, workflow, day" in sql and "team" not in params
    sql, params = outcomes_by_day_sql(date(2026, 11, 1), None, {"b": 0.8, "a": 0.5})
    assert "FROM task_outcomes" in sql and "LIMIT 1 BY event_id" in sql
    assert params["bar_workflows"] == ["a", "b"] and params["bar_values"] == [0.5, 0.8]
    sql, params = findings_sql(NOW, "search")
    assert "FROM findings" in sql and "argMax(estimated_waste_usd_per_day, ts)" in sql
    assert params["since"].tzinfo is None and params["since"] == NOW.replace(tzinfo=None)
    for column in (
        "finding_id",
        "area",
        "agent",
        "detector",
        "evidence",
        "confidence",
        "better_pattern",
        "estimated_waste_tokens_per_day",
    ):
        assert column in sql


def test_nice_max() -> None:
    assert [nice_max(v) for v in (0, 0.3, 1, 3, 7, 42, 180, 1234)] == [
        1,
        0.5,
        1,
        5,
        10,
        50,
        200,
        2000,
    ]
    assert nice_max(0.042) == 0.05


def test_charts_are_sized_svg_with_one_mark_per_series_and_escaped_labels() -> None:
    svg = line_chart(
        {"a<b": [("2026-11-01", 1.0), ("2026-11-02", 3.0)], "c": [("2026-11-02", 2)]},
        chart_id="x",
        title="T & U",
    )
    assert svg.startswith("<svg") and 'width="720"' in svg and 'viewBox="0 0 720 260"' in svg
    assert svg.count('class="series"') == 2 and "a&lt;b" in svg and "T &amp; U" in svg
    bars = bar_chart([("memory", 2.5), ("retrieval", 0.0)], chart_id="y", title="W")
    assert bars.count('class="bar"') == 2
    empty = line_chart({}, chart_id="z", title="E")
    assert "no data" in empty and 'height="260"' in empty


def _data() -> ReportData:
    finding = FindingRow(
        team="search",
        workflow="kb",
        agent="answerer",
        detector="retrieval_waste",
        area="retrieval",
        finding_id="f1",
        evidence={"retrieval_calls": 160, "share": 0.5},
        waste_tokens_per_day=1_000_000,
        waste_usd_per_day=Decimal("4.5"),
        confidence=0.9,
        better_pattern="Rerank <and> cap.",
        first_ts=NOW,
        last_ts=NOW,
        first_waste_tokens_per_day=1_000_000,
        times=1,
        acted_on=False,
    )
    units = WorkflowUnits(
        team="search",
        workflow="kb",
        calls=10,
        tokens=5000,
        cost_usd=Decimal("1.5"),
        retries=1,
        errors=0,
        outcomes=4,
        successes=3,
        met_bar=2,
    )
    maturity = [grade(MaturityFacts("search", None, Decimal("1.5"), 1.0, False, True, False, 1, 0))]
    return ReportData(
        generated_at=NOW,
        since=date(2026, 11, 1),
        team=None,
        days=[
            DaySpend(date(2026, 11, 18), Decimal(1), 1000, 5),
            DaySpend(date(2026, 11, 19), Decimal(3), 4000, 5),
        ],
        findings=[finding],
        workflows=[units],
        tokens_per_outcome={"kb": [(date(2026, 11, 19), 2500.0)]},
        maturity=maturity,
        waste_by_area={"retrieval": Decimal("4.5"), "memory": Decimal(0)},
    )


def test_unit_metrics() -> None:
    data = _data()
    [units] = data.workflows
    assert units.success_rate == 0.5 and units.tokens_per_outcome == 2500
    assert units.cost_per_outcome_usd == Decimal("0.75")
    assert data.total_cost_usd == 4 and data.trend_pct == 2.0
    assert data.open_waste_usd_per_day == Decimal("4.5")


def test_html_is_self_contained_and_complete() -> None:
    html = render_html(_data())
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html and "src=" not in html
    for marker in (
        "id='findings'",
        "id='workflows'",
        "id='maturity'",
        'id="chart-spend"',
        'id="chart-waste"',
        'id="chart-tokens-per-outcome"',
    ):
        assert marker in html
    assert "Rerank &lt;and&gt; cap." in html and "retrieval_calls=160" in html
    assert "$4.50" in html and "+200%" in html and "observed" in html
