"""The per-task aggregate's statements as strings (their behaviour against chdb:
tests/integration/clickhouse/test_task_rollup.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokengov.sinks.clickhouse import reports
from tokengov.sinks.clickhouse.reports import ReportWindow, whole_hours
from tokengov.sinks.clickhouse.schema import (
    MIGRATIONS,
    SchemaOptions,
    repair_task_rollup,
    repair_task_totals,
    task_totals_differences,
)


def _at(hour: int, minute: int = 0, second: int = 0, ms: int = 0) -> datetime:
    return datetime(2026, 12, 6, hour, minute, second, ms * 1000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "split"),
    [
        # whole hours only: nothing from the raw table
        (_at(10), _at(14), ("10:00", "14:00", "10:00", "10:00", "14:00", "14:00")),
        # ragged ends: the raw table for [10:15, 11:00) and [14:00, 14:20)
        (_at(10, 15), _at(14, 20), ("11:00", "14:00", "10:15", "11:00", "14:00", "14:20")),
        # inside one hour: all of it from the raw table, no whole hour
        (_at(10, 15), _at(10, 45), ("11:00", "10:00", "10:15", "10:45", "10:45", "10:45")),
        # across one hour's start, shorter than an hour
        (_at(10, 15), _at(11, 20), ("11:00", "11:00", "10:15", "11:00", "11:00", "11:20")),
        # a millisecond past the hour
        (_at(10, 0, 0, 1), _at(12), ("11:00", "12:00", "10:00", "11:00", "12:00", "12:00")),
    ],
)
def test_whole_hours_splits_the_window_once(since, until, split):
    params = whole_hours(ReportWindow(since, until))
    names = ("hours_from", "hours_to", "head_from", "head_to", "tail_from", "tail_to")
    assert tuple(params[n][11:16] for n in names) == split
    assert params["head_from"].endswith((".000", ".001"))


@pytest.mark.parametrize("listed", [True, False])
def test_report_statements_read_the_totals_the_aggregate_and_the_raw_ends(listed):
    for sql in (reports.top_tasks_sql(listed=listed), reports.unit_economics_sql(listed=listed)):
        assert "FROM task_totals FINAL" in sql
        assert "FROM task_spend_hourly" in sql and "FROM token_events" in sql
        # the partial tasks: the bound list, or the subquery that selects them
        assert ("{partial:Array(String)}" in sql) is listed
        for name in ("hours_from", "hours_to", "head_from", "head_to", "tail_from", "tail_to"):
            assert "{" + name + ":DateTime64(3, 'UTC')}" in sql
        assert "'search'" not in sql  # values are bound, never pasted
    # none found: only task_totals is read
    for sql in (
        reports.top_tasks_sql(listed=listed, partial=False),
        reports.unit_economics_sql(listed=listed, partial=False),
    ):
        assert "task_spend_hourly" not in sql and "token_events" not in sql
        assert "FROM task_totals FINAL" in sql
    # exact order: Float64 first (monotonic), then the exact Decimal
    assert "ORDER BY toFloat64(cost_usd) DESC, cost_usd DESC, task_id" in (reports.top_tasks_sql())


def test_between_merges_the_statements_fold_the_fresh_tasks_in_one_snapshot():
    for build in (reports.top_tasks_sql, reports.unit_economics_sql):
        at_rest, folded = build(partial=False), build(partial=False, folded=True)
        # the whole tasks (ranked, or summed per workflow) read folded, not with FINAL
        assert folded.count("FROM task_totals FINAL") == at_rest.count("FROM task_totals FINAL") - 1
        assert "_part = {merged_part:String}" in folded and "GROUP BY task_id" in folded
        assert folded.rstrip().endswith(reports.ONE_SNAPSHOT)
    # the lookup of the partial tasks always reads folded (cheaper than FINAL at rest too)
    for one_workflow in (False, True):
        lookup = reports.partial_tasks_sql(one_workflow)
        assert "FINAL" not in lookup and lookup.rstrip().endswith(reports.ONE_SNAPSHOT)
    # the rows of the merged part are read as they are only for tasks with no fresh row
    read = reports.task_totals_read("calls > 0", ("cost_usd",))
    assert "AND (calls > 0)\n    WHERE task_id NOT IN (SELECT task_id FROM task_totals" in read


def test_version_7_creates_the_views_before_the_backfill_then_merges():
    steps = MIGRATIONS[6].steps(SchemaOptions())
    assert MIGRATIONS[6].version == 7
    assert steps[0].startswith("CREATE TABLE IF NOT EXISTS task_totals")
    assert "ORDER BY task_id" in steps[0]
    assert steps[1].startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS task_totals_mv")
    assert "FROM token_events" in steps[1]
    assert steps[2].startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS task_totals_outcomes_mv")
    assert "FROM task_outcomes" in steps[2]
    assert steps[3] == repair_task_totals(None)
    assert steps[4] == "OPTIMIZE TABLE task_totals FINAL"


def test_totals_repair_limited_to_tasks_and_to_the_retention():
    sql = task_totals_differences(30, "'a', 'b'")
    assert sql.count("task_id IN ('a', 'b')") == 3  # calls, outcomes, the table
    assert "toIntervalDay(30)" in sql
    assert "toIntervalDay" not in task_totals_differences(None)


def test_version_6_creates_the_view_before_its_backfill():
    steps = MIGRATIONS[5].steps(SchemaOptions())
    assert MIGRATIONS[5].version == 6
    assert steps[0].startswith("CREATE TABLE IF NOT EXISTS task_spend_hourly")
    assert "ENGINE = SummingMergeTree" in steps[0]
    assert "SimpleAggregateFunction(min, DateTime64(3, 'UTC'))" in steps[0]
    assert steps[1].startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS task_spend_hourly_mv")
    assert steps[2] == repair_task_rollup(None)
    assert "FROM token_events FINAL" in steps[2] and "WHERE 1" in steps[2]


def test_repair_limited_to_keys_and_to_the_retention():
    keys = "(toDateTime('2026-12-06 10:00:00', 'UTC'), 'search', 'triage')"
    sql = repair_task_rollup(None, keys)
    assert f"(toStartOfHour(toDateTime(ts, 'UTC')), team, workflow) IN ({keys})" in sql
    assert f"(hour, team, workflow) IN ({keys})" in sql
    kept = repair_task_rollup(30)
    assert "hour > toStartOfHour(now('UTC') - toIntervalDay(30))" in kept
