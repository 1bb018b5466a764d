"""The ClickHouse schema as code: versioned, ordered migration steps.

Each :class:`Migration` is a list of statements that are safe to run again
(``IF NOT EXISTS`` / ``IF EXISTS``), so a migration interrupted half-way is
finished by the next run; :mod:`tokengov.sinks.clickhouse.migrate` records each
completed version in ``schema_migrations``.

Version 1 is the schema of DESIGN.md; version 2 adds the contract additions
(``context_window``, ``cost_source``), an ``unpriced_calls`` count to the
rollups, and a min/max index on ``ts`` for time-range queries on the raw table;
version 3 adds the ``detector`` of a token-debt finding; version 4 makes the
rollups exact for every value the contract accepts (see :func:`_v4`); version 5
records usage as the providers report it and where each price came from (see
:func:`_v5`); version 6 adds ``task_spend_hourly``, the per-task aggregate the reports
``top-tasks`` and ``unit-economics`` read (see :func:`_v6`); version 7 adds ``task_totals``,
one row per task with its lifetime sums and its latest outcome, which those reports read
for every task wholly inside their window (see :func:`_v7`).

Exactly-once (see docs/clickhouse.md): the raw tables are ReplacingMergeTree on
their event id and keep a deduplication log of their last ``dedup_window``
insert blocks (``non_replicated_deduplication_window``), so an identical insert
retried with the same ``insert_deduplication_token`` is a no-op. The rollups
are SummingMergeTree tables fed by materialized views; their measures are signed
(``Int256``, money ``Decimal(76, 12)`` since version 4) so that a reconciliation
after a crash can correct them by difference, and wide enough that no sum of
contract values overflows.

No column can hold prompt or completion text: counts, names and ids only
(``summary``/``reason``/``evidence`` are written by tokengov's detectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "COST_SOURCES",
    "MIGRATIONS",
    "OUTCOME_QUALITY_FLAG",
    "OUTCOME_STATUSES",
    "OUTCOME_STATUS_UNIT",
    "OUTCOME_TS_UNIT",
    "ROLLUPS",
    "ROLLUP_COUNT",
    "ROLLUP_MONEY",
    "TASK_ROLLUP",
    "TASK_TOTALS",
    "TASK_TOTALS_MERGE",
    "TASK_TOTALS_NEUTRAL",
    "TS_MAX",
    "TS_MIN",
    "TTL_TABLES",
    "Migration",
    "SchemaOptions",
    "latest_version",
    "repair_rollup",
    "repair_task_rollup",
    "repair_task_totals",
    "task_rollup_differences",
    "task_totals_differences",
]

TS: Final = "DateTime64(3, 'UTC')"
MONEY: Final = "Decimal(38, 12)"
#: The rollups' measures (version 4): sums of counts ≤ 2**63-1 and of costs < 10**26 that
#: cannot overflow (Int256: 2**192 events of 2**63-1 tokens; Decimal(76, 12): 10**38
#: events of the largest cost a Decimal(38, 12) holds).
ROLLUP_COUNT: Final = "Int256"
ROLLUP_MONEY: Final = "Decimal(76, 12)"
#: The event time the contract accepts (ts_sane, version 4): [TS_MIN, TS_MAX).
TS_MIN: Final = "2000-01-01 00:00:00"
TS_MAX: Final = "2100-01-01 00:00:00"
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


def _rollup_select(bucket: str, bucket_expr: str, extra: list[str], *, wide: bool = False) -> str:
    """The rollup views' query. ``wide`` (version 4): sums taken in Int256 / Decimal(76, 12)
    (a ``sum`` of UInt64 wraps at 2**64, of Decimal(38, 12) at ~1.7·10**26, silently)."""
    token = "sum(toInt256({k}_tokens))" if wide else "sum({k}_tokens)"
    cost = "sum(toDecimal256(cost_usd, 12))" if wide else "sum(cost_usd)"
    sums = ",\n    ".join(
        ["count() AS calls"]
        + [f"{token.format(k=k)} AS {k}_tokens" for k in TOKEN_KINDS]
        + [
            f"{cost} AS cost_usd",
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


_WIDE_INTS: Final = ("step", "attempt", "tool_calls")
#: The rollups' counts of version 4 (``_v4`` changes their types).
_ROLLUP_COUNTS: Final = (
    "calls",
    *(f"{k}_tokens" for k in TOKEN_KINDS),
    "retries",
    "errors",
    "unpriced_calls",
)
#: The counts after ``unpriced_calls``, per version: (column, its sum over token_events).
_LATER_COUNTS: Final = {5: (("missing_usage_calls", "countIf(usage_missing)"),)}
#: Where a call's cost came from (``cost_source``, version 5): the agent reported it, the
#: policy's prices, the price catalog, no price at all, or no usage to price.
COST_SOURCES: Final = ("reported", "policy", "catalog", "unpriced", "missing_usage")


def _later_counts(version: int) -> tuple[tuple[str, str], ...]:
    return tuple(c for v, counts in _LATER_COUNTS.items() if v <= version for c in counts)


def _ts_sane(table: str) -> list[str]:
    return [
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS ts_sane",
        f"ALTER TABLE {table} ADD CONSTRAINT IF NOT EXISTS ts_sane "
        f"CHECK ts >= '{TS_MIN}' AND ts < '{TS_MAX}'",
    ]


def _wide_select(bucket: str, bucket_expr: str, version: int) -> str:
    """The view's query from version 4 on (see :func:`_rollup_select`)."""
    extra = ["countIf(cost_source = 'unpriced') AS unpriced_calls"]
    extra += [f"{expr} AS {name}" for name, expr in _later_counts(version)]
    return _rollup_select(bucket, bucket_expr, extra, wide=True)


def _horizon(bucket: str, ttl_days: int | None) -> str:
    """Buckets whose raw rows are all still there: every one without a TTL; with one, those
    younger than the retention (older ones keep their rollup rows as they are)."""
    if ttl_days is None:
        return "1"
    first = f"now('UTC') - toIntervalDay({ttl_days})"
    if bucket == "day":
        return f"(day > toDate({first}, 'UTC') OR day < toDate('{TS_MIN[:10]}'))"
    return f"(hour > toStartOfHour({first}) OR hour < toDateTime('{TS_MIN}', 'UTC'))"


def repair_rollup(
    name: str, bucket: str, bucket_expr: str, ttl_days: int | None, version: int | None = None
) -> str:
    """Insert, for every key where the rollup differs from ``token_events FINAL`` (the rows
    the contract accepts), the difference: afterwards they are equal. Running it again adds
    nothing. Repairs sums that wrapped under an older schema, and removes the rows of events
    outside [2000, 2100) that the 32-bit buckets filed under wrong hours and days.
    ``version``: the schema's (its rollups' measures); None, the latest."""
    later = _later_counts(latest_version() if version is None else version)
    measures = (
        *_ROLLUP_COUNTS[:6],
        "cost_usd",
        *_ROLLUP_COUNTS[6:],
        *(column for column, _ in later),
    )
    raw = ", ".join(
        ["toInt256(count())"]
        + [f"sum(toInt256({k}_tokens))" for k in TOKEN_KINDS]
        + [
            "sum(toDecimal256(cost_usd, 12))",
            "toInt256(countIf(attempt > 1))",
            "toInt256(countIf(status != 'ok'))",
            "toInt256(countIf(cost_source = 'unpriced'))",
        ]
        + [f"toInt256({expr})" for _, expr in later]
    )
    negated = ", ".join(f"-{m}" for m in measures)
    totals = ", ".join(f"sum(d{i}) AS {m}" for i, m in enumerate(measures))
    aliases = ", ".join(f"d{i}" for i in range(len(measures)))
    differs = " OR ".join(f"{m} != 0" for m in measures)
    horizon = _horizon(bucket, ttl_days)
    return f"""INSERT INTO {name} ({bucket}, team, workflow, model, {", ".join(measures)})
SELECT {bucket}, team, workflow, model, {totals}
FROM (
    SELECT {bucket_expr} AS {bucket}, team, workflow, model, {raw}
    FROM token_events FINAL
    WHERE ts >= '{TS_MIN}' AND ts < '{TS_MAX}'
    GROUP BY {bucket}, team, workflow, model
    UNION ALL
    SELECT {bucket}, team, workflow, model, {negated}
    FROM {name}
) AS t ({bucket}, team, workflow, model, {aliases})
WHERE {horizon}
GROUP BY {bucket}, team, workflow, model
HAVING {differs}"""


def _v4(opts: SchemaOptions) -> list[str]:
    """Rollups exact for every value the contract accepts (counts 0..2**63-1 per event,
    ts in [2000-01-01, 2100-01-01)): measures Int256 and Decimal(76, 12), the views sum in
    those types, ``ts_sane`` is the contract's range (DateTime buckets hold it: up to
    2106; Date up to 2149), ``step``/``attempt``/``tool_calls`` UInt64 (the contract allows
    2**63-1), and the rollups repaired from the raw rows (sums that wrapped before)."""
    steps = [*_ts_sane("token_events"), *_ts_sane("task_outcomes")]
    steps += [f"ALTER TABLE token_events MODIFY COLUMN {c} UInt64" for c in _WIDE_INTS]
    for name, (bucket, _type, expr) in _BUCKETS.items():
        columns = [f"MODIFY COLUMN {c} {ROLLUP_COUNT}" for c in _ROLLUP_COUNTS]
        columns.append(f"MODIFY COLUMN cost_usd {ROLLUP_MONEY}")
        steps.append(f"ALTER TABLE {name} " + ", ".join(columns))
        steps.append(f"ALTER TABLE {name}_mv MODIFY QUERY\n{_wide_select(bucket, expr, 4)}")
        steps.append(repair_rollup(name, bucket, expr, opts.ttl_days, version=4))
    return steps


def _v5(opts: SchemaOptions) -> list[str]:
    """Usage as the providers report it and where each price came from: the 1-hour part of
    the cache writes, the service tier, whether the call carried usage at all, the price
    catalog's version; ``cost_source`` gains ``policy`` (the policy's prices — what
    ``catalog`` meant until now, so those rows become ``policy``) and ``missing_usage``; the
    rollups count the calls without usage (``missing_usage_calls``, like ``unpriced_calls``).
    Earlier rows all carried usage: their new counts are 0, nothing to repair."""
    sources = ", ".join(f"'{s}'" for s in COST_SOURCES)
    steps = [
        "ALTER TABLE token_events ADD COLUMN IF NOT EXISTS cache_write_1h_tokens UInt64 "
        "DEFAULT 0 AFTER cache_write_tokens",
        "ALTER TABLE token_events ADD COLUMN IF NOT EXISTS service_tier "
        "LowCardinality(Nullable(String)) AFTER model",
        "ALTER TABLE token_events ADD COLUMN IF NOT EXISTS usage_missing Bool DEFAULT false "
        "AFTER cost_source",
        "ALTER TABLE token_events ADD COLUMN IF NOT EXISTS price_version "
        "LowCardinality(String) DEFAULT '' AFTER cost_source",
        "ALTER TABLE token_events DROP CONSTRAINT IF EXISTS known_cost_source",
        "ALTER TABLE token_events MODIFY COLUMN cost_source LowCardinality(String) "
        "DEFAULT 'policy'",
        "ALTER TABLE token_events UPDATE cost_source = 'policy' WHERE cost_source = 'catalog' "
        "SETTINGS mutations_sync = 2",
        "ALTER TABLE token_events ADD CONSTRAINT IF NOT EXISTS known_cost_source "
        f"CHECK cost_source IN ({sources})",
    ]
    for name, (bucket, _type, expr) in _BUCKETS.items():
        for column, _ in _LATER_COUNTS[5]:
            steps.append(
                f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column} {ROLLUP_COUNT} "
                "AFTER unpriced_calls"
            )
        steps.append(f"ALTER TABLE {name}_mv MODIFY QUERY\n{_wide_select(bucket, expr, 5)}")
    return steps


#: The per-task aggregate (version 6): its name, and the hour bucket of a call.
TASK_ROLLUP: Final = "task_spend_hourly"
_HOUR: Final = "toStartOfHour(toDateTime(ts, 'UTC'))"
_TASK_KEY: Final = ("hour", "team", "workflow", "task_id")
_CALL_TOKENS: Final = "toInt256(input_tokens) + toInt256(output_tokens)"
#: (column, its aggregate over token_events) — the sums of the per-task aggregate.
_TASK_SUMS: Final = (
    ("calls", "toInt256(count())"),
    ("tokens", f"sum({_CALL_TOKENS})"),
    ("retry_tokens", f"sumIf({_CALL_TOKENS}, attempt > 1)"),
    ("cost_usd", "sum(toDecimal256(cost_usd, 12))"),
    ("retries", "toInt256(countIf(attempt > 1))"),
    ("tool_calls", "sum(toInt256(tool_calls))"),
)


def task_rollup_v6(opts: SchemaOptions) -> str:
    """Per hour × team × workflow × task: the sums of its calls (signed and wide, as the
    rollups' — a repair corrects them by difference) and its first and last call (``min`` /
    ``max``, which a duplicate cannot change)."""
    sums = ",\n    ".join(
        f"{c} {ROLLUP_MONEY if c == 'cost_usd' else ROLLUP_COUNT}" for c, _ in _TASK_SUMS
    )
    return f"""CREATE TABLE IF NOT EXISTS {TASK_ROLLUP} (
    hour DateTime('UTC'),
    team LowCardinality(String),
    workflow LowCardinality(String),
    task_id String,
    {sums},
    first_call SimpleAggregateFunction(min, {TS}),
    last_call SimpleAggregateFunction(max, {TS})
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (team, workflow, hour, task_id)
SETTINGS {_dedup(opts)}"""


def _task_rollup_select() -> str:
    sums = ",\n    ".join(f"{expr} AS {c}" for c, expr in _TASK_SUMS)
    return f"""SELECT
    {_HOUR} AS hour,
    team,
    workflow,
    task_id,
    {sums},
    min(ts) AS first_call,
    max(ts) AS last_call
FROM token_events
GROUP BY hour, team, workflow, task_id"""


def repair_task_rollup(ttl_days: int | None, keys: str | None = None) -> str:
    """The INSERT of :func:`task_rollup_differences` into ``task_spend_hourly``."""
    names = ", ".join(c for c, _ in _TASK_SUMS)
    return (
        f"INSERT INTO {TASK_ROLLUP} ({', '.join(_TASK_KEY)}, {names}, first_call, last_call)\n"
        + task_rollup_differences(ttl_days, keys)
    )


def task_rollup_differences(ttl_days: int | None, keys: str | None = None) -> str:
    """The rows to insert, for every (hour, team, workflow, task) where ``task_spend_hourly`` differs from
    ``token_events FINAL``, the difference (sums) and the raw first/last call (``min`` /
    ``max`` of an equal value change nothing); afterwards they are equal, and running it
    again adds nothing. On an empty aggregate this is its backfill. ``keys``: a list of
    ``(hour, team, workflow)`` tuple literals to limit it to (the writer's reconciliation);
    None, every key younger than the retention (``ttl_days``)."""
    names = [c for c, _ in _TASK_SUMS]
    raw = ", ".join(expr for _, expr in _TASK_SUMS)
    negated = ", ".join(f"-{c}" for c in names)
    # Inner columns d0… (a sum may not be aliased as the column it sums, in ClickHouse).
    totals = ", ".join(f"sum(d{i}) AS {c}" for i, c in enumerate(names))
    aliases = ", ".join(f"d{i}" for i in range(len(names)))
    key = ", ".join(_TASK_KEY)
    raw_where = f"ts >= '{TS_MIN}' AND ts < '{TS_MAX}'"
    where = _horizon("hour", ttl_days)
    if keys is not None:
        raw_where += f" AND ({_HOUR}, team, workflow) IN ({keys})"
        where = f"(hour, team, workflow) IN ({keys})"
    # src 1: the raw rows' totals, 0: the aggregate's (negated). The first/last call of the
    # raw rows when there are any, else the aggregate's own (inserting it again: no change).
    differs = " OR ".join(
        [f"sum(d{i}) != 0" for i in range(len(names))]
        + ["minIf(f, src = 1) != minIf(f, src = 0)", "maxIf(l, src = 1) != maxIf(l, src = 0)"]
    )
    return f"""SELECT {key}, {totals},
    if(max(src) = 1, minIf(f, src = 1), min(f)) AS first_call,
    if(max(src) = 1, maxIf(l, src = 1), max(l)) AS last_call
FROM (
    SELECT {_HOUR} AS hour, team, workflow, task_id, {raw}, min(ts), max(ts), 1
    FROM token_events FINAL
    WHERE {raw_where}
    GROUP BY hour, team, workflow, task_id
    UNION ALL
    SELECT {key}, {negated}, CAST(first_call AS {TS}), CAST(last_call AS {TS}), 0
    FROM {TASK_ROLLUP}
    WHERE {where}
) AS t ({key}, {aliases}, f, l, src)
GROUP BY {key}
HAVING {differs}"""


def _v6(opts: SchemaOptions) -> list[str]:
    """The per-task aggregate ``task_spend_hourly`` (what ``top-tasks`` and
    ``unit-economics`` read instead of scanning every call): the table, the view that keeps
    it, then its backfill from the raw rows (the view first, so that no insert falls
    between them; the backfill counts by difference, so what the view already added is not
    added twice)."""
    return [
        task_rollup_v6(opts),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {TASK_ROLLUP}_mv TO {TASK_ROLLUP} AS\n"
        + _task_rollup_select(),
        repair_task_rollup(opts.ttl_days),
    ]


#: The per-task totals (version 7): one row per task over its whole life.
TASK_TOTALS: Final = "task_totals"
#: A task's latest outcome as one number (version 7), so that ``max`` picks it: the
#: outcome's ``ts`` in milliseconds × 2**67 + its status (1 success, 2 failure,
#: 3 abandoned) × 2**65 + (quality present) × 2**64 + the quality's IEEE 754 bits (a
#: quality is ≥ 0: its bits order as it does). 0: no outcome.
OUTCOME_STATUSES: Final = ("success", "failure", "abandoned")
OUTCOME_TS_UNIT: Final = 2**67
OUTCOME_STATUS_UNIT: Final = 2**65
OUTCOME_QUALITY_FLAG: Final = 2**64
_U128: Final = "toUInt128('{}')"
_STATUSES: Final = "[" + ", ".join(f"'{s}'" for s in OUTCOME_STATUSES) + "]"
_RAW_OUTCOME: Final = (
    f"max(toUInt128(toUnixTimestamp64Milli(ts)) * {_U128.format(OUTCOME_TS_UNIT)}"
    f" + toUInt128(indexOf({_STATUSES}, toString(status))) * {_U128.format(OUTCOME_STATUS_UNIT)}"
    f" + toUInt128(quality IS NOT NULL) * {_U128.format(OUTCOME_QUALITY_FLAG)}"
    " + toUInt128(reinterpretAsUInt64(ifNull(quality, 0))))"
)
_NO_OUTCOME: Final = "toUInt128(0)"
#: The stand-ins an outcome's row gives the call columns (``min`` / ``max`` of a real value
#: never pick them: the contract's ``ts`` is in [2000, 2100); no valid UTF-8 text has the
#: byte 0xFF, so every name sorts below it, and none below the empty string).
_NO_FIRST: Final = f"toDateTime64('{TS_MAX}', 3, 'UTC')"
_NO_LAST: Final = "toDateTime64('1970-01-01 00:00:00', 3, 'UTC')"
_NO_MIN_NAME: Final = "'\\xFF'"
_NO_MAX_NAME: Final = "''"
_NAMES: Final = ("team", "workflow")
_NO_SUMS: Final = ", ".join(
    f"{'toDecimal256(0, 12)' if c == 'cost_usd' else 'toInt256(0)'} AS {c}" for c, _ in _TASK_SUMS
)


def task_totals_v7(opts: SchemaOptions) -> str:
    """Per task (``task_id``, over its whole life): the sums of ``task_spend_hourly``, the
    least and greatest team and workflow its calls named (one team if they are equal), its
    first and last call, and its latest outcome (``outcome``, see :data:`OUTCOME_TS_UNIT`).
    Calls and outcomes arrive as separate rows (one view each) that the merge — or
    ``FINAL`` — folds into one; every column but the sums is a ``min`` / ``max`` of a
    fixed-size value (cheap to merge), which a duplicate cannot change."""
    sums = ",\n    ".join(
        f"{c} {ROLLUP_MONEY if c == 'cost_usd' else ROLLUP_COUNT}" for c, _ in _TASK_SUMS
    )
    names = ",\n    ".join(
        f"{n}_{f} SimpleAggregateFunction({f}, String)" for n in _NAMES for f in ("min", "max")
    )
    return f"""CREATE TABLE IF NOT EXISTS {TASK_TOTALS} (
    task_id String,
    {sums},
    {names},
    first_call SimpleAggregateFunction(min, {TS}),
    last_call SimpleAggregateFunction(max, {TS}),
    outcome SimpleAggregateFunction(max, UInt128)
) ENGINE = SummingMergeTree
ORDER BY task_id
SETTINGS {_dedup(opts)}"""


def _task_calls_select() -> str:
    sums = ",\n    ".join(f"{expr} AS {c}" for c, expr in _TASK_SUMS)
    names = ",\n    ".join(f"{f}(toString({n})) AS {n}_{f}" for n in _NAMES for f in ("min", "max"))
    return f"""SELECT
    task_id,
    {sums},
    {names},
    min(ts) AS first_call,
    max(ts) AS last_call,
    {_NO_OUTCOME} AS outcome
FROM token_events
GROUP BY task_id"""


def _task_outcomes_select() -> str:
    names = ",\n    ".join(
        f"{_NO_MIN_NAME if f == 'min' else _NO_MAX_NAME} AS {n}_{f}"
        for n in _NAMES
        for f in ("min", "max")
    )
    return f"""SELECT
    task_id,
    {_NO_SUMS},
    {names},
    {_NO_FIRST} AS first_call,
    {_NO_LAST} AS last_call,
    {_RAW_OUTCOME} AS outcome
FROM task_outcomes
GROUP BY task_id"""


_TOTALS_COLUMNS: Final = (
    *(c for c, _ in _TASK_SUMS),
    *(f"{n}_{f}" for n in _NAMES for f in ("min", "max")),
    "first_call",
    "last_call",
    "outcome",
)


#: How a merge (or ``FINAL``) folds the rows of one task in ``task_totals``: (column, the
#: aggregate function, the column's value type) — what a ``GROUP BY task_id`` that reads
#: it exactly as ``FINAL`` does computes.
TASK_TOTALS_MERGE: Final[tuple[tuple[str, str, str], ...]] = (
    *((c, "sum", ROLLUP_MONEY if c == "cost_usd" else ROLLUP_COUNT) for c, _ in _TASK_SUMS),
    *((f"{n}_{f}", f, "String") for n in _NAMES for f in ("min", "max")),
    ("first_call", "min", TS),
    ("last_call", "max", TS),
    ("outcome", "max", "UInt128"),
)

#: What a row of ``task_totals`` that holds no calls (an outcome's) or no outcome (calls')
#: carries in each column: the neutral value of the column's fold (0 for a sum, the
#: stand-ins above for a ``min`` / ``max`` — no real value is beyond them), so that folding
#: it into any real row changes nothing. A task whose rows in some parts fold to these
#: values in some columns has, in those columns, the values of its other rows.
TASK_TOTALS_NEUTRAL: Final[dict[str, str]] = {
    **{c: "0" for c, _ in _TASK_SUMS},
    **{f"{n}_min": _NO_MIN_NAME for n in _NAMES},
    **{f"{n}_max": _NO_MAX_NAME for n in _NAMES},
    "first_call": _NO_FIRST,
    "last_call": _NO_LAST,
    "outcome": _NO_OUTCOME,
}


def repair_task_totals(ttl_days: int | None, tasks: str | None = None) -> str:
    """The INSERT of :func:`task_totals_differences` into ``task_totals``."""
    return (
        f"INSERT INTO {TASK_TOTALS} (task_id, {', '.join(_TOTALS_COLUMNS)})\n"
        + task_totals_differences(ttl_days, tasks)
    )


def task_totals_differences(ttl_days: int | None, tasks: str | None = None) -> str:
    """The rows to insert, for every task where ``task_totals`` differs from ``token_events
    FINAL`` and ``task_outcomes FINAL``: the difference of the sums, and the raw rows' own
    names, first/last call and latest outcome (a ``min`` / ``max`` with an equal value
    changes nothing). Afterwards they are equal; running it again adds nothing; on an empty
    table it is the backfill. ``tasks``: a subquery or list of task ids to limit it to (the
    writer's reconciliation); None, every task. With a retention (``ttl_days``), tasks whose
    first call or outcome is older than it are left alone (their raw rows may be gone)."""
    names = [c for c, _ in _TASK_SUMS]
    raw = ", ".join(expr for _, expr in _TASK_SUMS)
    negated = ", ".join(f"-{c}" for c in names)
    zeros = ", ".join("toDecimal256(0, 12)" if c == "cost_usd" else "toInt256(0)" for c in names)
    totals = ", ".join(f"sum(d{i}) AS {c}" for i, c in enumerate(names))
    aliases = ", ".join(f"d{i}" for i in range(len(names)))
    only = "" if tasks is None else f" AND task_id IN ({tasks})"
    # (alias in t, aggregate, stand-in): the columns that are not sums
    kept = [
        ("tmin", "min", _NO_MIN_NAME),
        ("tmax", "max", _NO_MAX_NAME),
        ("wmin", "min", _NO_MIN_NAME),
        ("wmax", "max", _NO_MAX_NAME),
        ("f", "min", _NO_FIRST),
        ("l", "max", _NO_LAST),
        ("o", "max", _NO_OUTCOME),
    ]
    # The raw rows' (src != 0; the stand-ins where a task has no calls or no outcome) and
    # the table's (src = 0) own values; compared only where the raw rows have the task.
    same = " AND ".join(f"{fn}If({a}, src != 0) = {fn}If({a}, src = 0)" for a, fn, _ in kept)
    sums_differ = " OR ".join(f"sum(d{i}) != 0" for i in range(len(names)))
    having = f"({sums_differ} OR (countIf(src != 0) > 0 AND NOT ({same})))"
    if ttl_days is not None:
        horizon = f"now64(3, 'UTC') - toIntervalDay({ttl_days})"
        outcome = "maxIf(o, src != 0)"
        having += (
            f" AND minIf(f, src != 0) > {horizon} AND ({outcome} = 0 OR "
            f"intDiv({outcome}, {_U128.format(OUTCOME_TS_UNIT)}) "
            f"> toUnixTimestamp64Milli({horizon}))"
        )
    values = ",\n    ".join(
        f"if(countIf(src != 0) > 0, {fn}If({a}, src != 0), {stand_in}) AS {column}"
        for (a, fn, stand_in), column in zip(kept, _TOTALS_COLUMNS[len(names) :], strict=True)
    )
    call_names = ", ".join(f"{f}(toString({n}))" for n in _NAMES for f in ("min", "max"))
    no_names = ", ".join([_NO_MIN_NAME, _NO_MAX_NAME] * 2)
    table_names = ", ".join(f"{n}_{f}" for n in _NAMES for f in ("min", "max"))
    # src 1: the calls' totals, 2: the outcomes' latest, 0: the table's (sums negated).
    return f"""SELECT task_id, {totals},
    {values}
FROM (
    SELECT task_id, {raw}, {call_names}, min(ts), max(ts), {_NO_OUTCOME}, 1
    FROM token_events FINAL
    WHERE ts >= '{TS_MIN}' AND ts < '{TS_MAX}'{only}
    GROUP BY task_id
    UNION ALL
    SELECT task_id, {zeros}, {no_names}, {_NO_FIRST}, {_NO_LAST}, {_RAW_OUTCOME}, 2
    FROM task_outcomes FINAL
    WHERE ts >= '{TS_MIN}' AND ts < '{TS_MAX}'{only}
    GROUP BY task_id
    UNION ALL
    SELECT task_id, {negated}, {table_names}, CAST(first_call AS {TS}),
        CAST(last_call AS {TS}), CAST(outcome AS UInt128), 0
    FROM {TASK_TOTALS}
    WHERE 1{only}
) AS t (task_id, {aliases}, tmin, tmax, wmin, wmax, f, l, o, src)
GROUP BY task_id
HAVING {having}"""


def _v7(opts: SchemaOptions) -> list[str]:
    """The per-task totals ``task_totals``: the table, the views that keep it (calls from
    ``token_events``, outcomes from ``task_outcomes``), then its backfill from the raw rows
    (views first, as in version 6: the backfill counts by difference), then one merge of
    what the backfill wrote."""
    return [
        task_totals_v7(opts),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {TASK_TOTALS}_mv TO {TASK_TOTALS} AS\n"
        + _task_calls_select(),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {TASK_TOTALS}_outcomes_mv TO {TASK_TOTALS} AS\n"
        + _task_outcomes_select(),
        repair_task_totals(opts.ttl_days),
        # One part, as the reports read it at rest: FINAL then merges nothing.
        f"OPTIMIZE TABLE {TASK_TOTALS} FINAL",
    ]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1, "initial: events, outcomes, alerts, decisions, findings, notifications, rollups", _v1
    ),
    Migration(2, "context_window, cost_source, unpriced_calls in rollups, ts min/max index", _v2),
    Migration(3, "findings.detector: which token-debt detector made the finding", _v3),
    Migration(
        4,
        "exact rollups: Int256/Decimal(76, 12) sums, ts_sane [2000, 2100), wide step/attempt",
        _v4,
    ),
    Migration(
        5,
        "cache_write_1h_tokens, service_tier, usage_missing, price_version; cost_source "
        "policy/catalog/missing_usage (catalog rows become policy); missing_usage_calls",
        _v5,
    ),
    Migration(
        6,
        "task_spend_hourly: per-task sums, first and last call per hour (view + backfill)",
        _v6,
    ),
    Migration(
        7,
        "task_totals: per-task lifetime sums, least/greatest team and workflow, first/last "
        "call and latest outcome (two views + backfill)",
        _v7,
    ),
)


def latest_version() -> int:
    return MIGRATIONS[-1].version
