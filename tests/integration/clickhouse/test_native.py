"""The writer's two ways in: Native blocks serialized by the decoders (its usual path) and
rows through clickhouse-connect's insert (the row path) store exactly the same values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tokengov.core.policy import Policy
from tokengov.sinks.clickhouse.decode import MessageDecoder, TopicKind
from tokengov.sinks.clickhouse.encode import DecodePool, native_block
from tokengov.sinks.clickhouse.rows import TABLE_COLUMNS
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import column_types

from .conftest import make_events

pytestmark = pytest.mark.integration

T = datetime(2026, 10, 30, 12, tzinfo=UTC)


def _messages() -> dict[TopicKind, list[bytes | None]]:
    events = make_events(40, seed=31)
    # timestamps at every precision: whole seconds, exact milliseconds (where float arithmetic
    # would round down a millisecond), microseconds, and another offset
    for i, doc in enumerate(events[:40]):
        ts = T + timedelta(seconds=i, milliseconds=i * 7, microseconds=(i % 3) * 333)
        doc["ts"] = ts.isoformat() if i % 2 else ts.astimezone().isoformat()
    singles = [orjson.dumps(e) for e in events[:30]]
    envelopes = [orjson.dumps(events[i : i + 7]) for i in range(30, len(events), 7)]
    alert = {
        "alert_id": "a-1",
        "fingerprint": "f",
        "kind": "runaway",
        "severity": "critical",
        "team": "search",
        "labels": {"limit": "max_tool_calls", "team": "search"},
        "summary": "s",
        "evidence": {"observed": 13},
        "starts_at": "2026-10-30T12:00:00.123456Z",
    }
    decision = {"scope": "task", "key": "t", "action": "throttle", "reason": "r", "throttle_ms": 5}
    decision["issued_at"] = "2026-10-30T12:00:00.5Z"
    finding = {"area": "memory", "ts": "2026-10-30T12:00:00Z", "evidence": {"turns": 3}}
    return {
        "events": [*singles, *envelopes, None],
        "alerts": [orjson.dumps(alert), orjson.dumps(alert | {"alert_id": "a-2"})],
        "decisions": [orjson.dumps(decision)],
        "findings": [orjson.dumps(finding)],
    }


def _contents(store: ClickHouseStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, columns in TABLE_COLUMNS.items():
        listed = ", ".join(columns)
        out[table] = store.query(f"SELECT {listed} FROM {table} ORDER BY {listed}").rows
    for table in ("spend_hourly", "spend_daily"):
        out[table] = store.query(f"SELECT * FROM {table} FINAL ORDER BY ALL").rows
    return out


def _truncate(store: ClickHouseStore) -> None:
    for table in (*TABLE_COLUMNS, "spend_hourly", "spend_daily"):
        store.command(f"TRUNCATE TABLE {table}")


def test_native_blocks_store_what_rows_store(store: ClickHouseStore, policy: Policy) -> None:
    decoder = MessageDecoder(lambda: policy.catalog)
    pool = DecodePool(0, column_types(store), decoder, decoder.catalog)
    messages = _messages()

    for kind, values in messages.items():
        encoded = pool.encode_here(kind, values)
        assert set(encoded.blocks) == set(encoded.rows)  # every table serialized
        for table, block in encoded.blocks.items():
            store.insert_native(table, block, columns=TABLE_COLUMNS[table])
    native = _contents(store)

    _truncate(store)
    for kind, values in messages.items():
        for decoded in pool.decode_here(kind, values):
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for item in decoded.items:
                rows.setdefault(item.table, []).append(item.row)
            for table, table_rows in rows.items():
                store.insert(table, table_rows, columns=TABLE_COLUMNS[table])
    by_rows = _contents(store)

    assert {t: len(r) for t, r in native.items()} == {t: len(r) for t, r in by_rows.items()}
    assert all(native[t] for t in TABLE_COLUMNS)
    assert native == by_rows
    stamps = [r[1] for r in native["token_events"]]
    assert any(s.microsecond % 1000 == 0 and s.microsecond for s in stamps)  # exact ms kept


def test_a_value_the_serializer_refuses_leaves_the_table_to_the_row_path(
    store: ClickHouseStore, policy: Policy
) -> None:
    """A finding whose waste estimate no Decimal(38, 12) holds: no block for findings (the
    writer's row path then finds the row and dead-letters it with the reason)."""
    decoder = MessageDecoder(lambda: policy.catalog)
    pool = DecodePool(0, column_types(store), decoder, decoder.catalog)
    big = {"area": "memory", "ts": "2026-10-30T12:00:00Z", "estimated_waste_tokens_per_day": 1}
    encoded = pool.encode_here("findings", [orjson.dumps(big)])
    assert encoded.rows == {"findings": 1} and "findings" in encoded.blocks
    rows = [item.row for item in pool.decode_here("findings", [orjson.dumps(big)])[0].items]
    broken = [(*rows[0][:8], "not a decimal", *rows[0][9:])]
    types = pool.encoder.types["findings"]  # the types the pool serializes for
    columns = list(zip(*broken, strict=True))
    assert native_block("findings", TABLE_COLUMNS["findings"], types, columns) is None


def test_calls_laid_out_as_columns_serialize_as_their_rows(store: ClickHouseStore) -> None:
    """The decoders' way (calls kept as calls, costs as integers: ``columns=True``) gives the
    very bytes clickhouse-connect writes for the rows of the row path (Decimal costs), and the
    same ids, stamps, rejects and invalid items — on generated envelopes of any events:
    integer and Decimal prices, reported costs, unpriced models, counts up to 2**63-1."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.unit.streams.test_decode import BASE_CALL, BASE_OUTCOME, MISSING_USAGE_CALL, mutate
    from tokengov.core.policy import parse_policy
    from tokengov.sinks.clickhouse.encode import Encoder

    priced = parse_policy("""
version: 1
teams: {t: {owner: o@example.com}}
receivers: {console: {type: log}}
prices:
  gpt-4.1-mini: {input: 0.4, output: 1.6, cached_input: 0.1}
  gpt-4.1-mini@2026-11-29: {input: 0.000000000123, output: 1.6}
  nine: {input: 0.000000123, output: 1.000000007, cached_input: 0.000000001}
routes: {receiver: console}
""")
    encoder = Encoder(column_types(store))
    decoder = MessageDecoder(lambda: priced.catalog)
    big = 2**63 - 1
    bases = [
        BASE_CALL | {"ts": "2026-11-28T23:59:59.999Z"},  # integer femto-USD pricing
        BASE_CALL | {"model": "nine"},  # integer femto-USD, not whole pico-USD
        BASE_CALL | {"ts": "2026-11-30T01:00:00+01:00"},  # a >9-decimal price: Decimal
        BASE_CALL | {"tokens": {"input": big, "output": big, "cached_input": 3}},
        BASE_CALL | {"cost_usd": "12345678901234.123456789012"},
        BASE_CALL | {"cost_usd": "0.1", "usage_missing": True, "tokens": {}},
        BASE_CALL | {"model": "unpriced-model", "provider": "p", "latency_ms": 7},
        MISSING_USAGE_CALL,
        BASE_OUTCOME,
    ]

    @settings(max_examples=150, deadline=None)
    @given(data=st.data(), picks=st.lists(st.sampled_from(bases), min_size=1, max_size=6))
    def check(data: st.DataObject, picks: list[dict[str, Any]]) -> None:
        docs = [mutate(base, data) for base in picks]
        try:
            values = [orjson.dumps(docs), orjson.dumps(docs[0])]
        except TypeError:  # an integer beyond 64 bits: not what this test is about
            return
        by_rows = encoder.encode([decoder.decode("events", v) for v in values])
        by_columns = encoder.encode([decoder.decode("events", v, columns=True) for v in values])
        assert by_columns.blocks == by_rows.blocks
        assert (by_columns.rows, by_columns.ids, by_columns.ts_ms) == (
            by_rows.rows,
            by_rows.ids,
            by_rows.ts_ms,
        )
        assert by_columns.rejects == by_rows.rejects
        assert by_columns.invalid == by_rows.invalid

    check()
