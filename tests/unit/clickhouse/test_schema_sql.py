"""The schema's statements as strings: ordered versions, idempotent steps, the contract's
fields as columns."""

from __future__ import annotations

import re

import pytest

from tokengov.core.contracts import CallEvent, Components, TokenCounts
from tokengov.sinks.clickhouse.rows import TOKEN_EVENT_COLUMNS
from tokengov.sinks.clickhouse.schema import MIGRATIONS, SchemaOptions, latest_version


def _statements() -> list[str]:
    return [s for m in MIGRATIONS for s in m.steps(SchemaOptions())]


def test_versions_are_ordered_and_contiguous():
    assert [m.version for m in MIGRATIONS] == list(range(1, latest_version() + 1))


@pytest.mark.parametrize("statement", _statements())
def test_every_step_can_run_twice(statement):
    idempotent = (
        "CREATE TABLE IF NOT EXISTS",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS",
        "ADD COLUMN IF NOT EXISTS",
        "ADD INDEX IF NOT EXISTS",
        "ADD CONSTRAINT IF NOT EXISTS",
        "MODIFY QUERY",
        "MATERIALIZE INDEX",
        "DROP CONSTRAINT IF EXISTS",  # followed by ADD CONSTRAINT IF NOT EXISTS
        "MODIFY COLUMN",  # to the type it already has: nothing to do
        "HAVING calls != 0",  # a repair by difference: zero the second time
        "HAVING sum(d0) != 0",  # the same, of task_spend_hourly (version 6)
        "HAVING (sum(d0) != 0",  # the same, of task_totals (version 7)
        "OPTIMIZE TABLE",  # a merge: the same rows
        # version 5 renames the meaning of the old rows; nothing matches it once done (the
        # writer writes cost_source 'catalog' only after version 5 is recorded)
        "UPDATE cost_source = 'policy' WHERE cost_source = 'catalog'",
    )
    assert any(marker in statement for marker in idempotent), statement
    assert "DROP TABLE" not in statement  # an upgrade never drops data


def test_token_events_has_a_column_for_every_contract_field():
    ddl = "\n".join(_statements())
    columns = set(
        re.findall(
            r"^\s+(\w+) [A-Z]",
            ddl.split("CREATE TABLE IF NOT EXISTS token_events")[1].split("ENGINE")[0],
            re.MULTILINE,
        )
    )
    columns |= set(re.findall(r"token_events ADD COLUMN IF NOT EXISTS (\w+)", ddl))
    assert set(TOKEN_EVENT_COLUMNS) <= columns
    flattened = {f"{k}_tokens" for k in TokenCounts.model_fields} | {
        f"{k}_tokens" for k in Components.model_fields
    }
    contract = (set(CallEvent.model_fields) - {"tokens", "components", "kind"}) | flattened
    assert contract <= columns


def test_rollups_have_the_measures_of_design_md():
    ddl = "\n".join(_statements())
    for table in ("spend_hourly", "spend_daily"):
        body = ddl.split(f"CREATE TABLE IF NOT EXISTS {table}")[1].split("ENGINE")[0]
        for column in (
            "team",
            "workflow",
            "model",
            "calls",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "retries",
            "errors",
        ):
            assert re.search(rf"^\s+{column} ", body, re.MULTILINE), (table, column)
        assert "SummingMergeTree" in ddl.split(f"CREATE TABLE IF NOT EXISTS {table}")[1][:2000]


def test_raw_tables_are_partitioned_by_month_and_deduplicate():
    ddl = "\n".join(_statements())
    events = ddl.split("CREATE TABLE IF NOT EXISTS token_events")[1].split("CREATE TABLE")[0]
    assert "PARTITION BY toYYYYMM(ts)" in events
    assert "ReplacingMergeTree" in events
    assert "non_replicated_deduplication_window = 10000" in events
    assert "LowCardinality(String)" in events and "Decimal(38, 12)" in events


@pytest.mark.parametrize("kwargs", [{"ttl_days": 0}, {"dedup_window": 10}])
def test_schema_options_are_checked(kwargs):
    with pytest.raises(ValueError):
        SchemaOptions(**kwargs)


def test_version_4_widens_every_rollup_measure_and_sums_wide():
    from tokengov.sinks.clickhouse.reconcile import MEASURES

    (v4,) = [m for m in MIGRATIONS if m.version == 4]
    steps = v4.steps(SchemaOptions())
    for table in ("spend_hourly", "spend_daily"):
        (alter,) = [s for s in steps if s.startswith(f"ALTER TABLE {table} MODIFY COLUMN")]
        for measure in MEASURES[:-1]:  # missing_usage_calls comes with version 5
            wanted = "Decimal(76, 12)" if measure == "cost_usd" else "Int256"
            assert f"MODIFY COLUMN {measure} {wanted}" in alter, (table, measure)
        (view,) = [s for s in steps if s.startswith(f"ALTER TABLE {table}_mv MODIFY QUERY")]
        assert "sum(toDecimal256(cost_usd, 12)) AS cost_usd" in view
        for kind in ("input", "output", "cached_input", "cache_write", "reasoning"):
            assert f"sum(toInt256({kind}_tokens)) AS {kind}_tokens" in view
        assert re.search(r"sum\((?!toInt256|toDecimal256)", view) is None  # no narrow sum


def test_version_4_bounds_ts_to_the_contract_range():
    (v4,) = [m for m in MIGRATIONS if m.version == 4]
    steps = v4.steps(SchemaOptions())
    for table in ("token_events", "task_outcomes"):
        assert (
            f"ALTER TABLE {table} ADD CONSTRAINT IF NOT EXISTS ts_sane "
            "CHECK ts >= '2000-01-01 00:00:00' AND ts < '2100-01-01 00:00:00'"
        ) in steps
        drop = steps.index(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS ts_sane")
        assert drop < steps.index(next(s for s in steps if f"{table} ADD CONSTRAINT" in s))
    for column in ("step", "attempt", "tool_calls"):
        assert f"ALTER TABLE token_events MODIFY COLUMN {column} UInt64" in steps


def test_the_repair_reads_the_contract_range_and_spares_expired_buckets():
    from tokengov.sinks.clickhouse.schema import repair_rollup

    sql = repair_rollup("spend_daily", "day", "toDate(ts, 'UTC')", None)
    assert "FROM token_events FINAL" in sql
    assert "WHERE ts >= '2000-01-01 00:00:00' AND ts < '2100-01-01 00:00:00'" in sql
    assert "-cost_usd" in sql and "HAVING calls != 0" in sql and "WHERE 1\n" in sql
    kept = repair_rollup("spend_daily", "day", "toDate(ts, 'UTC')", 30)
    assert "day > toDate(now('UTC') - toIntervalDay(30), 'UTC')" in kept
    hourly = repair_rollup("spend_hourly", "hour", "toStartOfHour(toDateTime(ts, 'UTC'))", 7)
    assert "hour > toStartOfHour(now('UTC') - toIntervalDay(7))" in hourly


def test_version_5_usage_columns_cost_sources_and_missing_usage_count():
    from tokengov.sinks.clickhouse.reconcile import MEASURES
    from tokengov.sinks.clickhouse.schema import repair_rollup

    (v5,) = [m for m in MIGRATIONS if m.version == 5]
    steps = v5.steps(SchemaOptions())
    text = "\n".join(steps)
    for column in ("cache_write_1h_tokens UInt64", "usage_missing Bool", "price_version"):
        assert f"token_events ADD COLUMN IF NOT EXISTS {column}" in text
    assert "service_tier LowCardinality(Nullable(String))" in text
    check = "CHECK cost_source IN ('reported', 'policy', 'catalog', 'unpriced', 'missing_usage')"
    drop = steps.index("ALTER TABLE token_events DROP CONSTRAINT IF EXISTS known_cost_source")
    update = next(i for i, s in enumerate(steps) if "UPDATE cost_source = 'policy'" in s)
    add = next(i for i, s in enumerate(steps) if check in s)
    assert drop < update < add  # the old rows are renamed before the new check
    for table in ("spend_hourly", "spend_daily"):
        assert f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS missing_usage_calls Int256" in text
        (view,) = [s for s in steps if s.startswith(f"ALTER TABLE {table}_mv MODIFY QUERY")]
        assert "countIf(usage_missing) AS missing_usage_calls" in view
        assert "countIf(cost_source = 'unpriced') AS unpriced_calls" in view
    assert MEASURES[-1] == "missing_usage_calls"
    assert "missing_usage_calls" in repair_rollup("spend_daily", "day", "toDate(ts, 'UTC')", None)
    v4 = repair_rollup("spend_daily", "day", "toDate(ts, 'UTC')", None, version=4)
    assert "missing_usage_calls" not in v4 and "usage_missing" not in v4
