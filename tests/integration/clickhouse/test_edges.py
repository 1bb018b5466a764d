"""Rollups equal the raw table at the edges of the contract (issue 12): counts of 2**63-1 per
event, summed over several events; costs whose sum passes what Decimal(38, 12) holds; the
first and the last millisecond of the time range. Through the real writer, the real broker
and the real engine (chdb); expected values written out by hand, and also recomputed by
ClickHouse from the raw rows in UInt256 / Decimal(76, 12).

And ``tokengov db migrate`` from the schema before version 4 (its DDL is versions 1-3,
unchanged), on a store whose rollups wrapped and filed a 2150 event under 1970."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokengov.core.policy import parse_policy
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.rows import TOKEN_EVENT_COLUMNS
from tokengov.sinks.clickhouse.store import ClickHouseStore

from .conftest import POLICY, V5_EVENT_COLUMNS, produce
from .test_writer import running_writer, wait_committed

pytestmark = pytest.mark.integration

MAX = 2**63 - 1  # the contract's largest count
# A price no provider charges, but a valid policy: 10**13 USD per million input tokens, so
# that one event of MAX tokens costs 92,233,720,368,547,758.07 · 10**9 USD (< 10**26, what
# Decimal(38, 12) holds) and three of them more than a Decimal(38, 12) sum holds (~1.7·10**26).
EDGE_POLICY = POLICY.replace(
    "prices:\n", "prices:\n  gold-model: {input: 10000000000000, output: 0}\n"
)


def _call(event_id: str, ts: str, model: str, **kw: Any) -> dict[str, Any]:
    return {
        "kind": "call",
        "schema_version": 1,
        "event_id": event_id,
        "ts": ts,
        "team": "search",
        "workflow": "triage",
        "task_id": f"task-{event_id}",
        "agent": "planner",
        "step": MAX,
        "provider": "test",
        "model": model,
        "tokens": {
            "input": MAX,
            "output": MAX,
            "cached_input": MAX,
            "cache_write": 0,
            "reasoning": MAX,
        },
        "components": {"history": MAX},
        "attempt": 1,
        "tool_calls": MAX,
        "latency_ms": MAX,
        "status": "ok",
        "context_window": MAX,
    } | kw


FIRST = "2000-01-01T00:00:00.000Z"
LAST = "2099-12-31T23:59:59.999Z"
EVENTS = [
    _call("first", FIRST, "gpt-4.1-mini"),
    _call("last-1", LAST, "gpt-4.1-mini", attempt=2, status="error"),
    _call("last-2", LAST, "gpt-4.1-mini", attempt=MAX, status="timeout"),
    _call("last-3", LAST, "gpt-4.1-mini"),
    *(
        _call(
            f"gold-{i}",
            "2050-06-15T12:34:56.789Z",
            "gold-model",
            tokens={"input": MAX, "output": 0},
            components={},
        )
        for i in range(3)
    ),
]

# gpt-4.1-mini: input 0.40, cached 0.10, output 1.60 (reasoning at the output price) per
# million. Every input token is cached: MAX × 0.10 + MAX × 1.60 = MAX × 1.7 / 10**6 USD
# = 9223372036854775807 × 17 / 10**7 = 15,679,732,462,653.1188719 USD per event.
MINI = Decimal("15679732462653.1188719")
GOLD = Decimal(92233720368547758070000000)  # MAX × 10**13 / 10**6
HOUR_FIRST = datetime(2000, 1, 1, tzinfo=UTC)
HOUR_LAST = datetime(2099, 12, 31, 23, tzinfo=UTC)
HOUR_GOLD = datetime(2050, 6, 15, 12, tzinfo=UTC)

#: (bucket, model) → calls, input, output, cached_input, cache_write, reasoning, cost_usd,
#: retries, errors, unpriced_calls — by hand.
EXPECTED_HOURLY = {
    (HOUR_FIRST, "gpt-4.1-mini"): [1, MAX, MAX, MAX, 0, MAX, MINI, 0, 0, 0],
    (HOUR_LAST, "gpt-4.1-mini"): [
        3,
        27670116110564327421,  # 3 × MAX
        27670116110564327421,
        27670116110564327421,
        0,
        27670116110564327421,
        Decimal("47039197387959.3566157"),  # 3 × MINI
        2,
        2,
        0,
    ],
    (HOUR_GOLD, "gold-model"): [
        3,
        27670116110564327421,
        0,
        0,
        0,
        0,
        Decimal(276701161105643274210000000),  # 3 × GOLD: more than Decimal(38, 12) sums hold
        0,
        0,
        0,
    ],
}
EXPECTED_DAILY = {(k[0].date(), k[1]): v for k, v in EXPECTED_HOURLY.items()}

_MEASURES = (
    "sum(calls), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), "
    "sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), sum(retries), sum(errors), "
    "sum(unpriced_calls)"
)
#: The same from the raw rows, summed by ClickHouse in types that cannot overflow here.
_RAW = (
    "toUInt256(count()), sum(toUInt256(input_tokens)), sum(toUInt256(output_tokens)), "
    "sum(toUInt256(cached_input_tokens)), sum(toUInt256(cache_write_tokens)), "
    "sum(toUInt256(reasoning_tokens)), sum(toDecimal256(cost_usd, 12)), "
    "toUInt256(countIf(attempt > 1)), toUInt256(countIf(status != 'ok')), "
    "toUInt256(countIf(cost_source = 'unpriced'))"
)
_BUCKETS = {"hour": "toStartOfHour(toDateTime(ts, 'UTC'))", "day": "toDate(ts, 'UTC')"}


def rollup(store: ClickHouseStore, table: str, bucket: str) -> dict[tuple[Any, ...], list[Any]]:
    rows = store.query(
        f"SELECT {bucket}, model, {_MEASURES} FROM {table} GROUP BY {bucket}, model "
        f"HAVING sum(calls) != 0"
    ).rows
    return {(r[0], r[1]): list(r[2:]) for r in rows}


def raw(store: ClickHouseStore, bucket: str) -> dict[tuple[Any, ...], list[Any]]:
    rows = store.query(
        f"SELECT {_BUCKETS[bucket]} AS b, model, {_RAW} FROM token_events FINAL "
        "WHERE ts >= '2000-01-01 00:00:00' AND ts < '2100-01-01 00:00:00' GROUP BY b, model"
    ).rows
    return {(r[0], r[1]): list(r[2:]) for r in rows}


def test_rollups_equal_the_raw_table_at_the_edges(bootstrap, topic_names, store):
    policy = parse_policy(EDGE_POLICY, source="edge-policy")
    ends = produce(bootstrap, topic_names.events, EVENTS)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group) as writer:
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.dead_lettered == 0 and writer.counters.invalid_events == 0

    assert rollup(store, "spend_hourly", "hour") == EXPECTED_HOURLY
    assert rollup(store, "spend_daily", "day") == EXPECTED_DAILY
    assert raw(store, "hour") == EXPECTED_HOURLY
    assert raw(store, "day") == EXPECTED_DAILY
    # The first and last millisecond are stored as sent, the counts as sent.
    rows = store.query(
        "SELECT event_id, ts, step, attempt, tool_calls, latency_ms, context_window, "
        "history_tokens FROM token_events WHERE event_id IN ('first', 'last-2')"
        " ORDER BY event_id"
    ).rows
    assert rows == [
        ("first", datetime(2000, 1, 1, tzinfo=UTC), MAX, 1, MAX, MAX, MAX, MAX),
        ("last-2", datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), *[MAX] * 6),
    ]
    types = dict(
        store.query("SELECT name, type FROM system.columns WHERE table = 'spend_daily'").rows
    )
    assert (types["input_tokens"], types["calls"], types["cost_usd"]) == (
        "Int256",
        "Int256",
        "Decimal(76, 12)",
    )


# -- the upgrade from version 3 ------------------------------------------------------------


@pytest.fixture
def old_store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    """A store at version 3: the DDL of the schema before this change."""
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as s:
        assert migrate(s, target=3).version == 3
        yield s


#: The token_events columns of version 3 (the rows _old_row builds).
V3_EVENT_COLUMNS = tuple(c for c in TOKEN_EVENT_COLUMNS if c not in V5_EVENT_COLUMNS)


def _old_row(event_id: str, ts: datetime, inp: int, cost: str, attempt: int = 1) -> tuple:
    values: dict[str, Any] = dict.fromkeys(V3_EVENT_COLUMNS, 0)
    values |= {
        "event_id": event_id,
        "ts": ts,
        "team": "search",
        "workflow": "triage",
        "task_id": f"task-{event_id}",
        "agent": "planner",
        "parent_agent": None,
        "step": 4_000_000_000,  # UInt32 before version 4
        "provider": "test",
        "model": "m",
        "input_tokens": inp,
        "output_tokens": 1,
        "attempt": attempt,
        "tool_name": None,
        "latency_ms": None,
        "status": "ok",
        "cost_usd": Decimal(cost),
        "cost_source": "catalog",
        "context_window": None,
        "schema_version": 1,
    }
    return tuple(values[c] for c in V3_EVENT_COLUMNS)


def test_migrate_from_version_3_keeps_every_row_and_repairs_the_rollups(old_store):
    day = datetime(2026, 11, 29, 5, tzinfo=UTC)
    rows = [
        _old_row("big", day, 2**63 + 5, "1.5"),  # wraps negative in the Int64 rollups
        _old_row("max-1", day, MAX, "2.25", attempt=2),
        _old_row("max-2", day, MAX, "3"),
        _old_row("small", datetime(2000, 1, 1, tzinfo=UTC), 7, "0.000000000001"),
        # Accepted by the old ts_sane (< 2200), filed by the 32-bit buckets under 1970/2014.
        _old_row("y2150", datetime(2150, 6, 1, tzinfo=UTC), 11, "4"),
    ]
    old_store.insert("token_events", rows, columns=V3_EVENT_COLUMNS)
    before = old_store.query("SELECT count(), sum(toUInt256(input_tokens)) FROM token_events").rows
    # The lie this fixes, seen on the old schema: negative sums, a day in 1970.
    old_daily = rollup(old_store, "spend_daily", "day")
    assert old_daily[(date(2026, 11, 29), "m")][1] < 0
    assert (date(1970, 12, 26), "m") in old_daily

    report = migrate(old_store)
    assert report.previous == 3 and report.applied == [4, 5, 6, 7]

    # No row lost (the 2150 one stays in the raw table, outside the rollups) …
    assert (
        old_store.query("SELECT count(), sum(toUInt256(input_tokens)) FROM token_events").rows
        == before
    )
    assert old_store.query("SELECT step FROM token_events WHERE event_id = 'big'").scalar() == (
        4_000_000_000
    )
    # … and the rollups equal the raw rows of the contract's range, by hand and by ClickHouse.
    by_hand = {
        (date(2026, 11, 29), "m"): [
            3,
            2**63 + 5 + 2 * MAX,  # 27670116110564327427
            3,
            0,
            0,
            0,
            Decimal("6.75"),
            1,
            0,
            0,
        ],
        (date(2000, 1, 1), "m"): [1, 7, 1, 0, 0, 0, Decimal("0.000000000001"), 0, 0, 0],
    }
    assert by_hand[(date(2026, 11, 29), "m")][1] == 27670116110564327427
    assert rollup(old_store, "spend_daily", "day") == by_hand
    assert raw(old_store, "day") == by_hand
    assert rollup(old_store, "spend_hourly", "hour") == raw(old_store, "hour")
    assert len(raw(old_store, "hour")) == 2

    # A second run changes nothing; the new constraint refuses 2100 and later.
    assert not migrate(old_store).changed
    assert rollup(old_store, "spend_daily", "day") == by_hand
    from tokengov.sinks.clickhouse.store import StoreError

    with pytest.raises(StoreError, match="ts_sane"):
        old_store.insert(
            "token_events",
            [_old_row("y2100", datetime(2100, 1, 1, tzinfo=UTC), 1, "1")],
            columns=V3_EVENT_COLUMNS,
        )
    # New rows after the upgrade are summed exactly by the new views.
    old_store.insert("token_events", [_old_row("after", day, MAX, "1")], columns=V3_EVENT_COLUMNS)
    by_hand[(date(2026, 11, 29), "m")][:3] = [4, 2**63 + 5 + 3 * MAX, 4]
    by_hand[(date(2026, 11, 29), "m")][6] = Decimal("7.75")
    assert rollup(old_store, "spend_daily", "day") == by_hand
    assert raw(old_store, "day") == by_hand
