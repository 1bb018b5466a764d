"""Every SQL statement the debt report runs, one small function each.

Each ``*_sql`` function returns ``(statement, parameters)`` for clickhouse-connect
server-side binding; :func:`fetch` runs one on a :class:`QueryClient` — a
:class:`tokengov.sinks.clickhouse.reader.Reader` from ``open_reader`` (the running worker's
query endpoint, the embedded store, or a ClickHouse server) — and returns rows as dicts. The
tables and columns are DESIGN.md's: ``spend_daily`` (``day``, ``team``,
``workflow``, ``model``, ``calls``, the five token counts, ``cost_usd``,
``retries``, ``errors``), ``task_outcomes`` (``event_id``, ``ts``, ``team``,
``workflow``, ``task_id``, ``status``, ``quality``) and ``findings``
(``finding_id``, ``ts``, ``area``, ``team``, ``workflow``, ``agent``,
``detector``, ``evidence`` (JSON string), ``estimated_waste_tokens_per_day``,
``estimated_waste_usd_per_day``, ``confidence``, ``better_pattern``).

Only fixed clauses are formatted into the statements (hence ``noqa: S608``);
every value is a bound parameter. Sums over ``spend_daily`` are taken with
``sum()`` so a SummingMergeTree or a plain table read the same; outcomes are
deduplicated by ``event_id`` here (``LIMIT 1 BY``) so a replayed outcome never
counts twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Protocol

from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.store import QueryResult

log = logging.getLogger(__name__)

__all__ = [
    "QueryClient",
    "fetch",
    "findings_sql",
    "outcomes_by_day_sql",
    "spend_by_day_sql",
    "spend_by_workflow_day_sql",
]

Statement = tuple[str, dict[str, Any]]


class QueryClient(Protocol):
    """The part of a :class:`tokengov.sinks.clickhouse.reader.Reader` the report uses."""

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult: ...


def _scope(since: date, team: str | None, *, day_column: str) -> tuple[str, dict[str, Any]]:
    where = f"{day_column} >= {{since:Date}}"
    params: dict[str, Any] = {"since": since}
    if team is not None:
        where += " AND team = {team:String}"
        params["team"] = team
    return where, params


def spend_by_day_sql(since: date, team: str | None = None) -> Statement:
    where, params = _scope(since, team, day_column="day")
    return (
        "SELECT day, sum(cost_usd) AS cost_usd, "  # noqa: S608
        "sum(input_tokens) + sum(output_tokens) AS tokens, sum(calls) AS calls "
        f"FROM spend_daily WHERE {where} GROUP BY day ORDER BY day",
        params,
    )


def spend_by_workflow_day_sql(since: date, team: str | None = None) -> Statement:
    where, params = _scope(since, team, day_column="day")
    return (
        "SELECT team, workflow, day, sum(calls) AS calls, "  # noqa: S608
        "sum(input_tokens) + sum(output_tokens) AS tokens, sum(cost_usd) AS cost_usd, "
        "sum(retries) AS retries, sum(errors) AS errors "
        f"FROM spend_daily WHERE {where} GROUP BY team, workflow, day ORDER BY team, workflow, day",
        params,
    )


def outcomes_by_day_sql(
    since: date, team: str | None = None, quality_bars: Mapping[str, float] | None = None
) -> Statement:
    """Outcomes per workflow and day: all, successes, and successes that met the
    workflow's quality bar (``quality_bars``; a workflow without one: every success)."""
    where, params = _scope(since, team, day_column="toDate(ts)")
    bars = dict(sorted((quality_bars or {}).items()))
    params["bar_workflows"] = list(bars)
    params["bar_values"] = [float(v) for v in bars.values()]
    met_bar = (
        "status = 'success' AND (indexOf({bar_workflows:Array(String)}, workflow) = 0 OR "
        "ifNull(quality, -1) >= arrayElement({bar_values:Array(Float64)}, "
        "indexOf({bar_workflows:Array(String)}, workflow)))"
    )
    return (
        "SELECT team, workflow, toDate(ts) AS day, count() AS outcomes, "  # noqa: S608
        f"countIf(status = 'success') AS successes, countIf({met_bar}) AS met_bar "
        "FROM (SELECT event_id, ts, team, workflow, status, quality FROM task_outcomes "
        f"WHERE {where} ORDER BY ts LIMIT 1 BY event_id) "
        "GROUP BY team, workflow, day ORDER BY team, workflow, day",
        params,
    )


def findings_sql(since: datetime, team: str | None = None) -> Statement:
    """The latest finding per (team, workflow, agent, detector) in the period, with the
    first one's waste (to tell whether waste fell after it was raised)."""
    params: dict[str, Any] = {"since": since.astimezone(UTC).replace(tzinfo=None)}
    where = "ts >= {since:DateTime64(3)}"
    if team is not None:
        where += " AND team = {team:String}"
        params["team"] = team
    return (
        "SELECT team, workflow, ifNull(agent, '') AS agent_name, detector, "  # noqa: S608
        "argMax(area, ts) AS area, argMax(finding_id, ts) AS finding_id, "
        "argMax(evidence, ts) AS evidence, "
        "argMax(estimated_waste_tokens_per_day, ts) AS waste_tokens_per_day, "
        "argMax(estimated_waste_usd_per_day, ts) AS waste_usd_per_day, "
        "argMax(confidence, ts) AS confidence, argMax(better_pattern, ts) AS better_pattern, "
        "min(ts) AS first_ts, max(ts) AS last_ts, "
        "argMin(estimated_waste_tokens_per_day, ts) AS first_waste_tokens_per_day, "
        "count() AS times "
        f"FROM findings WHERE {where} "
        "GROUP BY team, workflow, agent_name, detector ORDER BY waste_usd_per_day DESC",
        params,
    )


def fetch(client: QueryClient, statement: Statement) -> list[dict[str, Any]]:
    """Run one statement; rows as dicts. ClickHouse's refusal becomes a QueryError."""
    sql, params = statement
    try:
        return client.query(sql, params).dicts()
    except QueryError as exc:
        log.debug("the debt report's failed statement: %s", sql)  # the SQL is ours, not the user's
        raise QueryError(f"the debt report's query failed: {exc}") from exc
