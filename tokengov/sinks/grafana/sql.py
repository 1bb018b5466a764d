"""Every SQL statement the dashboards run, in one place.

The statements use Grafana's template variables (``${team:singlequote}``) and the ClickHouse
plugin's macros (``$__timeFilter(ts)``, ``$__timeInterval(hour)``…); :mod:`tokengov.sinks.grafana.macros`
expands both the way Grafana does, and the tests run every statement against the real schema.

Table and column names follow the ClickHouse schema in ``tokengov/sinks/clickhouse`` (DESIGN.md, "ClickHouse
tables"). Conventions:

- money is ``cost_usd`` (Decimal in ClickHouse; cast to Float64 only for ratios);
- "tokens" means ``input_tokens + output_tokens`` (cached, cache-write and reasoning tokens are
  parts of those two, never added again);
- the team / workflow / model variables are multi-value with a custom "All" value
  (:data:`ALL_VALUE`), so a filter is ``('__all' IN (${v:singlequote}) OR col IN (…))``;
- time series return ``time`` first, then label columns, then values (the plugin turns such a
  long result into one series per label set).
"""

# ruff: noqa: S608  -- every interpolation below is a constant of this module, never input.
from __future__ import annotations

from typing import Final

from tokengov.core.contracts import UNATTRIBUTED
from tokengov.sinks.grafana.query import PanelQuery, QueryFormat

__all__ = [
    "ALERTS_FOR_ANNOTATIONS",
    "ALL_SENTINEL",
    "ALL_VALUE",
    "FinOps",
    "Governance",
    "TokenDebt",
    "UnitEconomics",
    "Variables",
    "scope",
]

ALL_SENTINEL: Final = "__all"
# The variables' custom "All" value. Grafana substitutes it raw (never formatted), so it
# carries its own quotes and is a valid member of an IN list.
ALL_VALUE: Final = f"'{ALL_SENTINEL}'"

# Tables (one line each, so a rename in the schema is a one-line change here).
EVENTS: Final = "token_events"
OUTCOMES: Final = "task_outcomes"
ALERTS: Final = "alerts"
DECISIONS: Final = "decisions"
FINDINGS: Final = "findings"
NOTIFICATIONS: Final = "notifications"
HOURLY: Final = "spend_hourly"
DAILY: Final = "spend_daily"

# Sums over the raw table in types that cannot wrap (every count may be 2**63 - 1, a call's
# cost up to 10**26 USD): the rollups already hold Int256 / Decimal(76, 12), and the
# Grafana ClickHouse plugin shows 256-bit integers and decimals as Float64.
WIDE_TOKENS: Final = "toUInt256(input_tokens) + output_tokens"
WIDE_COST: Final = "toDecimal256(cost_usd, 12)"


def _match(variable: str, column: str) -> str:
    sel = f"${{{variable}:singlequote}}"
    return f"('{ALL_SENTINEL}' IN ({sel}) OR {column} IN ({sel}))"


def scope(
    *, team: str | None = "team", workflow: str | None = "workflow", model: str | None = "model"
) -> str:
    """The dashboard's team / workflow / model filter for the given columns (None = not
    applicable to this table)."""
    parts = [
        _match(var, col)
        for var, col in (("team", team), ("workflow", workflow), ("model", model))
        if col is not None
    ]
    return " AND ".join(parts) if parts else "1"


def _ts(sql: str) -> PanelQuery:
    return PanelQuery(sql, QueryFormat.TIME_SERIES)


def _table(sql: str) -> PanelQuery:
    return PanelQuery(sql, QueryFormat.TABLE)


# --- template variables ------------------------------------------------------------------------


class Variables:
    """Each variable's query narrows by the variables before it (team → workflow → model)."""

    team = f"""
SELECT DISTINCT team FROM {DAILY}
WHERE $__dateFilter(day)
ORDER BY team"""
    workflow = f"""
SELECT DISTINCT workflow FROM {DAILY}
WHERE $__dateFilter(day) AND {scope(workflow=None, model=None)}
ORDER BY workflow"""
    model = f"""
SELECT DISTINCT model FROM {DAILY}
WHERE $__dateFilter(day) AND {scope(model=None)}
ORDER BY model"""


# --- FinOps overview -----------------------------------------------------------------------------


class FinOps:
    total_spend = _table(f"""
SELECT sum(cost_usd) AS spend_usd
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}""")

    total_calls = _table(f"""
SELECT sum(calls) AS calls
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}""")

    total_tokens = _table(f"""
SELECT sum(input_tokens + output_tokens) AS tokens
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}""")

    # Coverage is about the whole fleet: it ignores the team and workflow filters
    # (a team-filtered view is attributed by construction).
    attribution_coverage = _table(f"""
SELECT if(sum(calls) = 0, 1,
          sumIf(calls, team != '{UNATTRIBUTED}' AND workflow != '{UNATTRIBUTED}') / sum(calls))
       AS attributed_share
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope(team=None, workflow=None)}""")

    unpriced_calls = _table(f"""
SELECT sum(unpriced_calls) AS unpriced_calls
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}""")

    spend_by_team_over_time = _ts(f"""
SELECT $__timeInterval(hour) AS time, team, sum(cost_usd) AS spend_usd
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}
GROUP BY time, team
ORDER BY time, team""")

    spend_by_model_over_time = _ts(f"""
SELECT $__timeInterval(hour) AS time, model, sum(cost_usd) AS spend_usd
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}
GROUP BY time, model
ORDER BY time, model""")

    spend_by_team = _table(f"""
SELECT team, sum(cost_usd) AS spend_usd
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}
GROUP BY team
ORDER BY spend_usd DESC""")

    spend_by_workflow = _table(f"""
SELECT workflow, sum(cost_usd) AS spend_usd
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}
GROUP BY workflow
ORDER BY spend_usd DESC
LIMIT 25""")

    spend_by_model = _table(f"""
SELECT model, sum(cost_usd) AS spend_usd
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope()}
GROUP BY model
ORDER BY spend_usd DESC""")

    top_tasks = _table(f"""
SELECT task_id, any(team) AS task_team, any(workflow) AS task_workflow,
       sum({WIDE_COST}) AS task_cost_usd, count() AS calls,
       sum({WIDE_TOKENS}) AS tokens,
       countIf(attempt > 1) AS retries, sum(toUInt256(tool_calls)) AS tool_calls,
       uniqExact(agent) AS agents, min(ts) AS started, max(ts) AS last_call
FROM {EVENTS}
WHERE $__timeFilter(ts) AND {scope()}
GROUP BY task_id
ORDER BY task_cost_usd DESC
LIMIT 20""")

    attribution_over_time = _ts(f"""
SELECT $__timeInterval(hour) AS time,
       sumIf(calls, team != '{UNATTRIBUTED}' AND workflow != '{UNATTRIBUTED}')
         / greatest(sum(calls), 1) AS attributed_share
FROM {HOURLY}
WHERE $__timeFilter(hour) AND {scope(team=None, workflow=None)}
GROUP BY time
ORDER BY time""")

    unpriced_models = _table(f"""
SELECT model, provider, count() AS calls, sum({WIDE_TOKENS}) AS tokens,
       uniqExact(team) AS teams, min(ts) AS first_seen, max(ts) AS last_seen
FROM {EVENTS}
WHERE $__timeFilter(ts) AND cost_source = 'unpriced' AND {scope()}
GROUP BY model, provider
ORDER BY calls DESC""")


# --- Unit economics ------------------------------------------------------------------------------

# Tasks that ended (have an outcome) in the range, with their spend across every agent and call.
_ENDED_TASKS = f"""
ended AS (
    SELECT task_id, any(team) AS task_team, any(workflow) AS task_workflow, max(ts) AS ended_at,
           argMax(status, ts) = 'success' AS succeeded
    FROM {OUTCOMES}
    WHERE $__timeFilter(ts) AND {scope(model=None)}
    GROUP BY task_id
),
spend AS (
    SELECT task_id, sum({WIDE_TOKENS}) AS tokens, sum({WIDE_COST}) AS task_cost_usd,
           sumIf({WIDE_TOKENS}, attempt > 1) AS retry_tokens,
           sumIf({WIDE_TOKENS}, attempt = 1) AS first_attempt_tokens,
           argMin({WIDE_TOKENS}, (step, attempt, ts)) AS first_call_tokens
    FROM {EVENTS}
    WHERE task_id IN (SELECT task_id FROM ended) AND {scope(team=None, workflow=None)}
    GROUP BY task_id
)"""


def _per_bucket(value: str, alias: str) -> PanelQuery:
    return _ts(f"""
WITH {_ENDED_TASKS.strip()}
SELECT $__timeInterval(e.ended_at) AS time, {value} AS {alias}
FROM ended AS e INNER JOIN spend AS s ON s.task_id = e.task_id
GROUP BY time
ORDER BY time""")


class UnitEconomics:
    """Per outcome: a task's cost is every call with its task_id, across all its agents.
    Failed tasks' spend counts against the successes (that is the unit cost of a success)."""

    success_rate = _ts(f"""
SELECT $__timeInterval(ended_at) AS time, avg(final_status = 'success') AS success_rate
FROM (
    SELECT task_id, max(ts) AS ended_at, argMax(status, ts) AS final_status
    FROM {OUTCOMES}
    WHERE $__timeFilter(ts) AND {scope(model=None)}
    GROUP BY task_id
)
GROUP BY time
ORDER BY time""")

    tokens_per_success = _per_bucket(
        "sum(s.tokens) / nullIf(countIf(e.succeeded), 0)", "tokens_per_success"
    )
    cost_per_success = _per_bucket(
        "toFloat64(sum(s.task_cost_usd)) / nullIf(countIf(e.succeeded), 0)", "cost_per_success_usd"
    )
    # DESIGN: retry token ratio = tokens spent on retries / tokens of first attempts.
    retry_token_ratio = _per_bucket(
        "sum(s.retry_tokens) / nullIf(sum(s.first_attempt_tokens), 0)", "retry_token_ratio"
    )
    # A task's tokens relative to its first call (the single well-scoped call it started as).
    amplification = _per_bucket(
        "avg(s.tokens / nullIf(s.first_call_tokens, 0))", "amplification_factor"
    )

    per_workflow = _table(f"""
WITH {_ENDED_TASKS.strip()}
SELECT e.task_workflow AS workflow, any(e.task_team) AS team, count() AS tasks,
       avg(e.succeeded) AS success_rate,
       sum(s.tokens) / nullIf(countIf(e.succeeded), 0) AS tokens_per_success,
       toFloat64(sum(s.task_cost_usd)) / nullIf(countIf(e.succeeded), 0) AS cost_per_success_usd,
       sum(s.retry_tokens) / nullIf(sum(s.first_attempt_tokens), 0) AS retry_token_ratio,
       avg(s.tokens / nullIf(s.first_call_tokens, 0)) AS amplification_factor
FROM ended AS e INNER JOIN spend AS s ON s.task_id = e.task_id
GROUP BY workflow
ORDER BY cost_per_success_usd DESC""")


# --- Governance ----------------------------------------------------------------------------------


# Attempt results (tokengov/sinks/router): delivered, failed, dead_letter (gave up); the store also
# knows retrying and suppressed (silenced), neither of which is a failure.
_FAILED = "'failed', 'dead_letter'"


class Governance:
    # Period-to-date spend per team and workflow, with a linear forecast to the end of the
    # period (UTC day and month), next to the latest limit a budget alert reported.
    budgets = _table(f"""
WITH
    toDate(now('UTC')) AS today,
    toStartOfMonth(today) AS month_start,
    dateDiff('second', toStartOfDay(now('UTC')), now('UTC')) / 86400 AS day_elapsed,
    (dateDiff('second', toDateTime(month_start, 'UTC'), now('UTC')) / 86400)
        / toDayOfMonth(toLastDayOfMonth(today)) AS month_elapsed
SELECT team, workflow,
       sumIf(cost_usd, day = today) AS today_usd,
       toFloat64(sumIf(cost_usd, day = today)) / greatest(day_elapsed, 0.01) AS today_forecast_usd,
       sum(cost_usd) AS month_usd,
       toFloat64(sum(cost_usd)) / greatest(month_elapsed, 0.001) AS month_forecast_usd,
       sumIf(input_tokens + output_tokens, day = today) AS today_tokens,
       sum(input_tokens + output_tokens) AS month_tokens
FROM {DAILY}
WHERE day >= month_start AND {scope()}
GROUP BY team, workflow
ORDER BY month_forecast_usd DESC""")

    budget_alerts = _table(f"""
SELECT argMax(kind, starts_at) AS last_kind, team, workflow,
       argMax(severity, starts_at) AS last_severity,
       argMax(JSONExtractFloat(evidence, 'observed'), starts_at) AS observed,
       argMax(JSONExtractFloat(evidence, 'limit'), starts_at) AS limit,
       argMax(summary, starts_at) AS last_summary, max(starts_at) AS last_alert
FROM {ALERTS}
WHERE $__timeFilter(starts_at) AND kind IN ('budget_threshold', 'budget_forecast')
  AND {scope(model=None)}
GROUP BY team, workflow, fingerprint
ORDER BY last_alert DESC
LIMIT 50""")

    alerts_by_kind = _ts(f"""
SELECT $__timeInterval(starts_at) AS time, kind, uniqExact(alert_id) AS alerts
FROM {ALERTS}
WHERE $__timeFilter(starts_at) AND {scope(model=None)}
GROUP BY time, kind
ORDER BY time, kind""")

    alerts_by_team = _table(f"""
SELECT team, kind, uniqExact(alert_id) AS alerts,
       uniqExactIf(alert_id, severity = 'critical') AS critical, max(starts_at) AS last_alert
FROM {ALERTS}
WHERE $__timeFilter(starts_at) AND {scope(model=None)}
GROUP BY team, kind
ORDER BY alerts DESC""")

    # Decisions carry a scope (task / workflow / team) and a key; a team- or workflow-scoped
    # decision matches the filter through its key.
    decisions_by_action = _ts(f"""
SELECT $__timeInterval(issued_at) AS time, action, count() AS decisions
FROM {DECISIONS}
WHERE $__timeFilter(issued_at)
  AND (scope != 'team' OR {_match("team", "key")})
  AND (scope != 'workflow' OR {_match("workflow", "key")})
GROUP BY time, action
ORDER BY time, action""")

    recent_decisions = _table(f"""
SELECT issued_at, scope, key, action, reason, fallback_model, throttle_ms, expires_at
FROM {DECISIONS}
WHERE $__timeFilter(issued_at) AND action != 'proceed'
  AND (scope != 'team' OR {_match("team", "key")})
  AND (scope != 'workflow' OR {_match("workflow", "key")})
ORDER BY issued_at DESC
LIMIT 50""")

    delivery_by_receiver = _table(f"""
SELECT receiver, count() AS attempts,
       countIf(result = 'delivered') / nullIf(countIf(result != 'suppressed'), 0) AS success_share,
       countIf(result IN ({_FAILED})) AS failed_attempts,
       uniqExact(alert_id) AS alerts,
       quantile(0.95)(latency_ms) AS p95_latency_ms,
       max(ts) AS last_attempt
FROM {NOTIFICATIONS}
WHERE $__timeFilter(ts)
GROUP BY receiver
ORDER BY failed_attempts DESC, receiver""")

    delivery_over_time = _ts(f"""
SELECT $__timeInterval(ts) AS time, result, count() AS attempts
FROM {NOTIFICATIONS}
WHERE $__timeFilter(ts)
GROUP BY time, result
ORDER BY time, result""")

    delivery_failures = _table(f"""
SELECT ts, receiver, alert_id, attempt, result, error, latency_ms
FROM {NOTIFICATIONS}
WHERE $__timeFilter(ts) AND result IN ({_FAILED})
ORDER BY ts DESC
LIMIT 50""")


# --- Token debt ----------------------------------------------------------------------------------

# Detectors re-judge a workflow every window: the current estimate of one pattern is its
# latest finding per (team, workflow, agent, detector).
_LATEST_FINDINGS = f"""
SELECT team, workflow, agent, detector,
       argMax(area, ts) AS area,
       argMax(estimated_waste_tokens_per_day, ts) AS waste_tokens_per_day,
       argMax(estimated_waste_usd_per_day, ts) AS waste_usd_per_day,
       argMax(confidence, ts) AS confidence,
       argMax(better_pattern, ts) AS better_pattern,
       max(ts) AS last_seen
FROM {FINDINGS}
WHERE $__timeFilter(ts) AND {scope(model=None)}
GROUP BY team, workflow, agent, detector"""


class TokenDebt:
    waste_usd_per_day = _table(f"""
SELECT sum(waste_usd_per_day) AS waste_usd_per_day
FROM ({_LATEST_FINDINGS})""")

    waste_tokens_per_day = _table(f"""
SELECT sum(waste_tokens_per_day) AS waste_tokens_per_day
FROM ({_LATEST_FINDINGS})""")

    findings_by_area = _table(f"""
SELECT area, count() AS findings, sum(waste_usd_per_day) AS waste_usd_per_day
FROM ({_LATEST_FINDINGS})
GROUP BY area
ORDER BY waste_usd_per_day DESC""")

    waste_trend = _ts(f"""
SELECT time, area, sum(waste_usd_per_day) AS waste_usd_per_day
FROM (
    SELECT $__timeInterval(ts) AS time, area, team, workflow, agent, detector,
           argMax(estimated_waste_usd_per_day, ts) AS waste_usd_per_day
    FROM {FINDINGS}
    WHERE $__timeFilter(ts) AND {scope(model=None)}
    GROUP BY time, area, team, workflow, agent, detector
)
GROUP BY time, area
ORDER BY time, area""")

    findings = _table(f"""
SELECT area, team, workflow, agent, detector, waste_usd_per_day, waste_tokens_per_day,
       confidence, better_pattern, last_seen
FROM ({_LATEST_FINDINGS})
ORDER BY waste_usd_per_day DESC
LIMIT 100""")


# --- Grafana annotations (tokengov grafana sync) -------------------------------------------------

ALERTS_FOR_ANNOTATIONS: Final = f"""
SELECT alert_id,
       argMax(fingerprint, starts_at) AS last_fingerprint, argMax(kind, starts_at) AS last_kind,
       argMax(severity, starts_at) AS last_severity, argMax(team, starts_at) AS last_team,
       argMax(workflow, starts_at) AS last_workflow, argMax(summary, starts_at) AS last_summary,
       min(starts_at) AS first_start, max(ends_at) AS last_end
FROM {ALERTS}
WHERE starts_at >= {{since:DateTime64(3, 'UTC')}}
GROUP BY alert_id
ORDER BY first_start, alert_id"""
