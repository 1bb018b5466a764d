"""The ClickHouse schema as code: versioned, ordered migration steps.

Each :class:`Migration` is a list of statements that are safe to run again
(``IF NOT EXISTS`` / ``IF EXISTS``), so a migration interrupted half-way is
finished by the next run; :mod:`sinks.clickhouse.migrate` records each
completed version in ``schema_migrations``.

Version 1 is the schema of DESIGN.md; version 2 adds the contract additions
(``context_window``, ``cost_source``), an ``unpriced_calls`` count to the
rollups, and a min/max index on ``ts`` for time-range queries on the raw table;
version 3 adds the ``detector`` of a token-debt finding.

Exactly-once (see docs/clickhouse.md): the raw tables are ReplacingMergeTree on
their event id and keep a deduplication log of their last ``dedup_window``
insert blocks (``non_replicated_deduplication_window``), so an identical insert
retried with the same ``insert_deduplication_token`` is a no-op. The rollups
are SummingMergeTree tables fed by materialized views; their counts are signed
(Int64) so that a reconciliation after a crash can correct them by difference.

No column can hold prompt or completion text: counts, names and ids only
(``summary``/``reason``/``evidence`` are written by tokengov's detectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MIGRATIONS",
    "ROLLUPS",
    "TTL_TABLES",
    "Migration",
    "SchemaOptions",
    "latest_version",
]

TS: Final = "DateTime64(3, 'UTC')"
MONEY: Final = "Decimal(38, 12)"
TOKEN_KINDS: Final = ("input", "output", "cached_input", "cache_write", "reasoning")
COMPONENT_KINDS: Final = (
    "system",
    "tool_definitions",
    "retrieved",
    "history",
    "tool_responses",
    "handoff",
    "memory",
)

#: Raw tables whose rows expire after ``SchemaOptions.ttl_days`` (rollups are kept).
TTL_TABLES: Final = {"token_events": "ts", "task_outcomes": "ts", "notifications": "ts"}
#: The rollups and the time bucket each is keyed by.
ROLLUPS: Final = {"spend_hourly": "hour", "spend_daily": "day"}


@dataclass(frozen=True)
class SchemaOptions:
    """What an operator may choose about the schema."""

    ttl_days: int | None = None  # raw tables' retention; None keeps everything
    dedup_window: int = 10_000  # insert blocks remembered per table for deduplication

    def __post_init__(self) -> None:
        if self.ttl_days is not None and self.ttl_days < 1:
            raise ValueError(f"ttl_days must be ≥ 1, got {self.ttl_days}")
        if self.dedup_window < 100:
            raise ValueError(f"dedup_window must be ≥ 100, got {self.dedup_window}")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    steps: Callable[[SchemaOptions], list[str]]


def _dedup(opts: SchemaOptions) -> str:
    return f"non_replicated_deduplication_window = {opts.dedup_window}"


def _token_columns() -> str:
    counts = [f"{k}_tokens UInt64" for k in TOKEN_KINDS]
    components = [f"{k}_tokens UInt64" for k in COMPONENT_KINDS]
    return ",\n    ".join(counts + components)


def token_events_v1(opts: SchemaOptions) -> str:
    return f"""CREATE TABLE IF NOT EXISTS token_events (
    event_id String,
    ts {TS},
    team LowCardinality(String),
    workflow LowCardinality(String),
    task_id String,
    agent LowCardinality(String),
    parent_agent LowCardinality(Nullable(String)),
    step UInt32,
    provider LowCardinality(String),
    model LowCardinality(String),
    {_token_columns()},
    attempt UInt32,
    tool_calls UInt32,
    tool_name LowCardinality(Nullable(String)),
    latency_ms Nullable(UInt64),
    status LowCardinality(String),
    cost_usd {MONEY},
    schema_version UInt8,
    ingested_at {TS} DEFAULT now64(3, 'UTC'),
    CONSTRAINT ts_sane CHECK ts >= '2000-01-01 00:00:00' AND ts < '2200-01-01 00:00:00',
    CONSTRAINT known_status CHECK status IN ('ok', 'error', 'timeout')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (team, workflow, toStartOfHour(ts), event_id)
SETTINGS {_dedup(opts)}"""


def task_outcomes_v1(opts: SchemaOptions) -> str:
    return f"""CREATE TABLE IF NOT EXISTS task_outcomes (
    event_id String,
    ts {TS},
    team LowCardinality(String),
    workflow LowCardinality(String),
    task_id String,
    status LowCardinality(String),
    quality Nullable(Float64),
    schema_version UInt8,
    ingested_at {TS} DEFAULT now64(3, 'UTC'),
    CONSTRAINT ts_sane CHECK ts >= '2000-01-01 00:00:00' AND ts < '2200-01-01 00:00:00',
    CONSTRAINT known_status CHECK status IN ('success', 'failure', 'abandoned')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (team, workflow, task_id, event_id)
SETTINGS {_dedup(opts)}"""


def alerts_v1(opts: SchemaOptions) -> str:
    return f"""CREATE TABLE IF NOT EXISTS alerts (
    alert_id String,
    fingerprint String,
    kind LowCardinality(String),
    severity LowCardinality(String),
    status LowCardinality(String),
    team LowCardinality(String),
    workflow LowCardinality(Nullable(String)),
    task_id Nullable(String),
    labels Map(LowCardinality(String), String),
    summary String,
    evidence String,
    starts_at {TS},
    ends_at Nullable({TS}),
    ingested_at {TS} DEFAULT now64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(starts_at)
ORDER BY (team, kind, fingerprint, alert_id, status)
SETTINGS {_dedup(opts)}"""


def decisions_v1(opts: SchemaOptions) -> str:
    return f"""CREATE TABLE IF NOT EXISTS decisions (
    scope LowCardinality(String),
    key String,
    action LowCardinality(String),
    reason String,
    fallback_model LowCardinality(Nullable(String)),
    throttle_ms Nullable(UInt64),
    issued_at {TS},
    expires_at Nullable({TS}),
    ingested_at {TS} DEFAULT now64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(issued_at)
ORDER BY (scope, key, issued_at, action)
SETTINGS {_dedup(opts)}"""


def findings_v1(opts: SchemaOptions) -> str:
    return f"""CREATE TABLE IF NOT EXISTS findings (
    finding_id String,
    area LowCardinality(String),
    team LowCardinality(String),
    workflow LowCardinality(String),
    agent LowCardinality(Nullable(String)),
    evidence String,
    estimated_waste_tokens_per_day UInt64,
    estimated_waste_usd_per_day {MONEY},
    confidence Float64,
    better_pattern String,
    ts {TS},
    ingested_at {TS} DEFAULT now64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (team, workflow, area, ts, finding_id)
SETTINGS {_dedup(opts)}"""


def notifications_v1(_: SchemaOptions) -> str:
    return f"""CREATE TABLE IF NOT EXISTS notifications (
    alert_id String,
    fingerprint String,
    receiver LowCardinality(String),
    attempt UInt32,
    result LowCardinality(String),
    error Nullable(String),
    latency_ms UInt64,
    ts {TS}
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (receiver, ts, alert_id)"""


def sink_batches_v1(_: SchemaOptions) -> str:
    """The offset ranges of each flush, written before its rows; see writer.py."""
    return f"""CREATE TABLE IF NOT EXISTS sink_batches (
    consumer_group LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    start_offset Int64,
    end_offset Int64,
    version UInt64,
    created_at {TS} DEFAULT now64(3, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (consumer_group, topic, partition)"""


def _rollup_table(
    name: str, bucket: str, bucket_type: str, extra: list[str], opts: SchemaOptions
) -> str:
    counts = ",\n    ".join(
        ["calls Int64"]
        + [f"{k}_tokens Int64" for k in TOKEN_KINDS]
        + [f"cost_usd {MONEY}", "retries Int64", "errors Int64"]
        + extra
    )
    partition = f"toYYYYMM({bucket})"
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    {bucket} {bucket_type},
    team LowCardinality(String),
    workflow LowCardinality(String),
    model LowCardinality(String),
    {counts}
) ENGINE = SummingMergeTree
PARTITION BY {partition}
ORDER BY (team, workflow, model, {bucket})
SETTINGS {_dedup(opts)}"""


def _rollup_select(bucket: str, bucket_expr: str, extra: list[str]) -> str:
    sums = ",\n    ".join(
        ["count() AS calls"]
        + [f"sum({k}_tokens) AS {k}_tokens" for k in TOKEN_KINDS]
        + [
            "sum(cost_usd) AS cost_usd",
            "countIf(attempt > 1) AS retries",
            "countIf(status != 'ok') AS errors",
        ]
        + extra
    )
    return f"""SELECT
    {bucket_expr} AS {bucket},
    team,
    workflow,
    model,
    {sums}
FROM token_events
GROUP BY {bucket}, team, workflow, model"""


def _rollup_view(name: str, bucket: str, bucket_expr: str, extra: list[str]) -> str:
    select = _rollup_select(bucket, bucket_expr, extra)
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name}_mv TO {name} AS\n{select}"


_BUCKETS: Final = {
    "spend_hourly": ("hour", "DateTime('UTC')", "toStartOfHour(toDateTime(ts, 'UTC'))"),
    "spend_daily": ("day", "Date", "toDate(ts, 'UTC')"),
}


def _v1(opts: SchemaOptions) -> list[str]:
    steps = [
        token_events_v1(opts),
        task_outcomes_v1(opts),
        alerts_v1(opts),
        decisions_v1(opts),
        findings_v1(opts),
        notifications_v1(opts),
        sink_batches_v1(opts),
    ]
    for name, (bucket, bucket_type, expr) in _BUCKETS.items():
        steps.append(_rollup_table(name, bucket, bucket_type, [], opts))
        steps.append(_rollup_view(name, bucket, expr, []))
    return steps


def _v2(_: SchemaOptions) -> list[str]:
    steps = [
        "ALTER TABLE token_events ADD COLUMN IF NOT EXISTS cost_source LowCardinality(String) "
        "DEFAULT 'catalog' AFTER cost_usd",
        "ALTER TABLE token_events ADD COLUMN IF NOT EXISTS context_window Nullable(UInt64) "
        "AFTER cost_source",
        "ALTER TABLE token_events ADD CONSTRAINT IF NOT EXISTS known_cost_source "
        "CHECK cost_source IN ('reported', 'catalog', 'unpriced')",
        "ALTER TABLE token_events ADD INDEX IF NOT EXISTS ts_minmax ts TYPE minmax GRANULARITY 1",
        "ALTER TABLE token_events MATERIALIZE INDEX ts_minmax",
    ]
    extra_col = ["unpriced_calls Int64"]
    extra_sum = ["countIf(cost_source = 'unpriced') AS unpriced_calls"]
    for name, (bucket, _type, expr) in _BUCKETS.items():
        steps.append(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {extra_col[0]} AFTER errors")
        # The view's query changes in place (no moment without a view); its rows stay.
        select = _rollup_select(bucket, expr, extra_sum)
        steps.append(f"ALTER TABLE {name}_mv MODIFY QUERY\n{select}")
    return steps


def _v3(_: SchemaOptions) -> list[str]:
    return [
        "ALTER TABLE findings ADD COLUMN IF NOT EXISTS detector LowCardinality(String) "
        "DEFAULT '' AFTER agent",
    ]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1, "initial: events, outcomes, alerts, decisions, findings, notifications, rollups", _v1
    ),
    Migration(2, "context_window, cost_source, unpriced_calls in rollups, ts min/max index", _v2),
    Migration(3, "findings.detector: which token-debt detector made the finding", _v3),
)


def latest_version() -> int:
    return MIGRATIONS[-1].version
