"""The schema against the real engine: migrations, upgrade with data, TTL, no text columns,
and the repair of rollups after an insert applied in part."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tokengov.core.policy import Policy
from tokengov.sinks.clickhouse.batch import Consumed, Flush, PartitionSlice
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.dedup import existing_event_ids
from tokengov.sinks.clickhouse.migrate import SchemaTooNew, current_version, migrate
from tokengov.sinks.clickhouse.reconcile import reconcile
from tokengov.sinks.clickhouse.rows import TOKEN_EVENT_COLUMNS
from tokengov.sinks.clickhouse.schema import SchemaOptions, latest_version
from tokengov.sinks.clickhouse.store import ClickHouseStore, StoreError
from tokengov.sinks.clickhouse.writer import COLUMNS

from .conftest import V5_EVENT_COLUMNS, assert_exact, make_events, raw_totals, rollup_totals

pytestmark = pytest.mark.integration

#: The columns of version 1: without those of version 2 (cost_source, context_window) and 5.
V1_EVENT_COLUMNS = tuple(
    c for c in TOKEN_EVENT_COLUMNS if c not in ("cost_source", "context_window", *V5_EVENT_COLUMNS)
)


def _flush(events: list[dict[str, Any]], policy: Policy) -> Flush:
    """The rows the writer would insert for ``events`` (decoded as from one partition)."""
    decoder = MessageDecoder(lambda: policy.catalog)
    piece = PartitionSlice("events", 0)
    for offset, event in enumerate(events):
        piece.messages.append(
            Consumed.of_decoded("events", 0, offset, decoder.decode("events", orjson.dumps(event)))
        )
    return Flush.of([piece])


def _rows(flush: Flush, table: str) -> list[tuple[Any, ...]]:
    return [item.row for _, item in flush.rows_by_table().get(table, [])]


@pytest.fixture
def empty_store(tmp_path) -> ClickHouseStore:
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as store:
        yield store


def test_migrate_is_idempotent_and_recorded(empty_store):
    first = migrate(empty_store)
    assert first.applied == list(range(1, latest_version() + 1)) and first.previous == 0
    second = migrate(empty_store)
    assert not second.changed and second.version == latest_version()
    assert current_version(empty_store) == latest_version()
    tables = {r[0] for r in empty_store.query("SHOW TABLES").rows}
    assert {
        "token_events",
        "task_outcomes",
        "alerts",
        "decisions",
        "findings",
        "notifications",
        "spend_hourly",
        "spend_daily",
        "spend_hourly_mv",
        "spend_daily_mv",
        "schema_migrations",
        "sink_batches",
    } <= tables


def test_upgrade_from_v1_keeps_every_row(empty_store, policy):
    migrate(empty_store, target=1)
    events = make_events(30, seed=20)
    flush = _flush(events, policy)
    index = [TOKEN_EVENT_COLUMNS.index(c) for c in V1_EVENT_COLUMNS]
    v1_rows = [tuple(row[i] for i in index) for row in _rows(flush, "token_events")]
    empty_store.insert("token_events", v1_rows, columns=V1_EVENT_COLUMNS)
    empty_store.insert(
        "task_outcomes", _rows(flush, "task_outcomes"), columns=COLUMNS["task_outcomes"]
    )
    before = empty_store.query(
        "SELECT count(), sum(input_tokens), sum(cost_usd) FROM token_events"
    ).rows
    rollup_before = empty_store.query("SELECT sum(calls), sum(cost_usd) FROM spend_daily").rows
    assert before[0][0] == len(v1_rows) > 0

    empty_store.command(
        "INSERT INTO findings (finding_id, area, team, workflow, evidence, confidence, "
        "better_pattern, ts) VALUES ('f1', 'memory', 'search', 'triage', '{}', 0.5, 'x', "
        "'2026-10-30 12:00:00')"
    )

    report = migrate(empty_store)
    assert report.previous == 1 and report.applied == list(range(2, latest_version() + 1))
    assert empty_store.query("SELECT finding_id, detector FROM findings").rows == [("f1", "")]

    assert (
        empty_store.query("SELECT count(), sum(input_tokens), sum(cost_usd) FROM token_events").rows
        == before
    )
    assert (
        empty_store.query("SELECT sum(calls), sum(cost_usd) FROM spend_daily").rows == rollup_before
    )
    # priced by the policy before version 5 ('catalog' meant the policy's prices): 'policy' now
    assert empty_store.query("SELECT DISTINCT cost_source FROM token_events").rows == [("policy",)]
    assert empty_store.query("SELECT sum(unpriced_calls) FROM spend_hourly").scalar() == 0
    assert empty_store.query(
        "SELECT sum(cache_write_1h_tokens), countIf(service_tier IS NOT NULL), "
        "countIf(usage_missing), countIf(price_version != '') FROM token_events"
    ).rows == [(0, 0, 0, 0)]
    assert empty_store.query("SELECT sum(missing_usage_calls) FROM spend_daily").scalar() == 0

    # Rows written after the upgrade use the new columns, and the views count them.
    later = make_events(20, seed=21)
    later_flush = _flush(later, policy)
    empty_store.insert(
        "token_events", _rows(later_flush, "token_events"), columns=TOKEN_EVENT_COLUMNS
    )
    unpriced = sum(
        1
        for e in later
        if e["kind"] == "call"
        and e["model"] == "mystery-model"
        and e["cost_usd"] is None
        and not e.get("usage_missing")  # a call without usage is missing_usage, not unpriced
    )
    assert unpriced > 0
    assert empty_store.query("SELECT sum(unpriced_calls) FROM spend_hourly").scalar() == unpriced
    missing = sum(1 for e in later if e.get("usage_missing") and e["cost_usd"] is None)
    assert missing > 0
    assert empty_store.query("SELECT sum(missing_usage_calls) FROM spend_hourly").scalar() == sum(
        1 for e in later if e.get("usage_missing")
    )
    assert (
        empty_store.query(
            "SELECT count() FROM token_events WHERE cost_source = 'missing_usage' AND cost_usd = 0"
        ).scalar()
        == missing
    )
    # Old rows were priced by the v1 writer; the new totals add up across both.
    assert rollup_totals(empty_store) == raw_totals(empty_store)


def test_ttl_is_applied_changed_and_removed(empty_store):
    migrate(empty_store, SchemaOptions(ttl_days=30))

    def engine(table: str) -> str:
        return empty_store.query(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}",
            {"t": table},
        ).scalar()

    assert "TTL toDateTime(ts) + toIntervalDay(30)" in engine("token_events")
    assert "TTL" not in engine("spend_daily")  # rollups are kept
    assert not migrate(empty_store, SchemaOptions(ttl_days=30)).changed
    assert migrate(empty_store, SchemaOptions(ttl_days=90)).ttl_changes
    assert "toIntervalDay(90)" in engine("task_outcomes")
    migrate(empty_store, SchemaOptions(ttl_days=None))
    assert "TTL" not in engine("token_events")


def test_a_newer_schema_is_refused(empty_store):
    migrate(empty_store)
    empty_store.command("INSERT INTO schema_migrations VALUES (99, 'future', '', now64(3))")
    with pytest.raises(SchemaTooNew, match="version 99"):
        migrate(empty_store)


def test_no_column_can_hold_prompt_or_completion_text(store):
    """Every String column is an id, a name, a status, or text tokengov writes itself."""
    allowed = {
        "token_events": {
            "event_id",
            "task_id",
            "team",
            "workflow",
            "agent",
            "parent_agent",
            "provider",
            "model",
            "tool_name",
            "status",
            "cost_source",
            "service_tier",
            "price_version",
        },
        "task_outcomes": {"event_id", "task_id", "team", "workflow", "status"},
        "alerts": {
            "alert_id",
            "fingerprint",
            "kind",
            "severity",
            "status",
            "team",
            "workflow",
            "task_id",
            "summary",
            "evidence",
        },
        "decisions": {"scope", "key", "action", "reason", "fallback_model"},
        "findings": {
            "finding_id",
            "area",
            "team",
            "workflow",
            "agent",
            "detector",
            "evidence",
            "better_pattern",
        },
        "notifications": {"alert_id", "fingerprint", "receiver", "result", "error"},
    }
    rows = store.query(
        "SELECT table, name FROM system.columns WHERE database = currentDatabase() "
        "AND table IN {t:Array(String)} AND type LIKE '%String%' AND type NOT LIKE 'Map%'",
        {"t": list(allowed)},
    ).rows
    for table, column in rows:
        assert column in allowed[table], f"{table}.{column} could hold free text"
    # The maps hold the labels of an alert only.
    assert store.query(
        "SELECT table, name FROM system.columns WHERE database = "
        "currentDatabase() AND type LIKE 'Map%'"
    ).rows == [("alerts", "labels")]


def test_rollups_repaired_after_an_insert_applied_in_part(store, policy):
    """The daily rollup's part fails after the raw and hourly parts were written (a real
    partial insert: ClickHouse has no transaction across a table and its views). The
    writer's recovery — look up the stored ids, insert nothing again, reconcile — makes
    every total exact."""
    events = make_events(40, seed=22)
    flush = _flush(events, policy)
    rows = _rows(flush, "token_events")
    store.command("ALTER TABLE spend_daily ADD CONSTRAINT fail_for_test CHECK calls < 0")
    with pytest.raises(StoreError) as failure:
        store.insert("token_events", rows, columns=TOKEN_EVENT_COLUMNS, token="t-partial")
    assert "VIOLATED_CONSTRAINT" in str(failure.value)
    store.command("ALTER TABLE spend_daily DROP CONSTRAINT fail_for_test")
    stored = store.query("SELECT count() FROM token_events").scalar()
    assert stored == len(rows)  # the raw rows did go in …
    assert store.query("SELECT count() FROM spend_daily").scalar() == 0  # … the daily did not

    ids, stamps = flush.keyed_event_ids("token_events")
    assert existing_event_ids(store, "token_events", ids, stamps) == set(ids)
    keys = {
        (item.ts.replace(minute=0, second=0, microsecond=0), item.row[2], item.row[3], item.row[9])
        for _, item in flush.items()
        if item.table == "token_events"
    }
    assert reconcile(store, keys) > 0
    calls = [e for e in events if e["kind"] == "call"]
    assert_exact(store, calls, policy)
    assert reconcile(store, keys) == 0  # idempotent


def test_reconcile_removes_a_double_count(store, policy):
    """The reverse partial failure: the views counted rows the raw table then got twice."""
    events = make_events(20, seed=23)
    flush = _flush(events, policy)
    rows = _rows(flush, "token_events")
    store.insert("token_events", rows, columns=TOKEN_EVENT_COLUMNS, token="a")
    store.insert("token_events", rows[:7], columns=TOKEN_EVENT_COLUMNS, token="b")
    assert rollup_totals(store) != raw_totals(store)
    keys = {
        (item.ts.replace(minute=0, second=0, microsecond=0), item.row[2], item.row[3], item.row[9])
        for _, item in flush.items()
        if item.table == "token_events"
    }
    assert reconcile(store, keys) > 0
    # Once ReplacingMergeTree has merged the duplicates away, every total is exact.
    store.command("OPTIMIZE TABLE token_events FINAL")
    assert_exact(store, [e for e in events if e["kind"] == "call"], policy)


def test_unreachable_server_is_a_retryable_error():
    from tokengov.app.local.broker import free_port

    store = ClickHouseStore(
        f"http://default:secret@127.0.0.1:{free_port()}/default", connect_timeout_s=1
    )
    with pytest.raises(StoreError) as failure:
        store.insert("token_events", [("x",)], columns=("event_id",))
    assert failure.value.retryable
    assert "secret" not in str(failure.value) and "secret" not in repr(store)
