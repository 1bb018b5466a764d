"""Regression: the stored ts is DateTime64(3); a replayed event whose ts carries microseconds
must still be found by the writer's duplicate lookup (it was missed at the range bounds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokengov.core.contracts import CallEvent, TokenCounts
from tokengov.core.pricing import PricedCall
from tokengov.sinks.clickhouse.dedup import (
    MAX_INSERTS,
    SMALL,
    OwnRows,
    crc32,
    existing_event_ids,
    quote,
)
from tokengov.sinks.clickhouse.encode import epoch_ms
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.rows import TOKEN_EVENT_COLUMNS, event_row
from tokengov.sinks.clickhouse.store import ClickHouseStore

pytestmark = pytest.mark.integration


def test_replayed_ids_with_microseconds_are_found(tmp_path):
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    try:
        migrate(store)
        base = datetime(2026, 11, 29, 5, 0, 0, 123456, tzinfo=UTC)
        events = [
            CallEvent(
                event_id=f"e-{i}",
                ts=base + timedelta(seconds=i, microseconds=789 * i),
                model="m",
                tokens=TokenCounts(input=10, output=1),
            )
            for i in range(5)
        ]
        rows = [event_row(e, PricedCall(cost_usd=Decimal(0), source="catalog")) for e in events]
        store.insert("token_events", rows, columns=TOKEN_EVENT_COLUMNS)
        ids = [e.event_id for e in events]
        stamps = [epoch_ms(e.ts) for e in events]
        assert existing_event_ids(store, "token_events", ids, stamps) == set(ids)
        # the first and the last alone: each is the bound of its own range
        assert existing_event_ids(store, "token_events", ids[:1], stamps[:1]) == {"e-0"}
        assert existing_event_ids(store, "token_events", ids[-1:], stamps[-1:]) == {"e-4"}
        # more stored rows in the ranges than a fetch-and-compare takes: looked up by id, the
        # ids travelling in a string literal (quotes, backslashes, dollars included)
        odd = [f"o-{i}'\\$${i}" for i in range(SMALL + 5)]
        rows = [
            event_row(
                CallEvent(event_id=i, ts=base, model="m", tokens=TokenCounts(input=1)),
                PricedCall(cost_usd=Decimal(0), source="catalog"),
            )
            for i in odd
        ]
        store.insert("token_events", rows, columns=TOKEN_EVENT_COLUMNS)
        wanted = [*odd[:3], "never-stored"]
        stamp = epoch_ms(base)
        assert existing_event_ids(store, "token_events", wanted, [stamp] * 4) == set(odd[:3])
    finally:
        store.close()


def _call_rows(ids: list[str], base: datetime) -> list[tuple[object, ...]]:
    return [
        event_row(
            CallEvent(
                event_id=event_id,
                ts=base + timedelta(milliseconds=7 * i),
                model="m",
                tokens=TokenCounts(input=1),
            ),
            PricedCall(cost_usd=Decimal(0), source="catalog"),
        )
        for i, event_id in enumerate(ids)
    ]


def test_lookup_settled_in_memory_only_when_the_table_holds_exactly_the_writers_rows(tmp_path):
    """The writer's own rows settle a lookup without sending ids (dedup.OwnRows); a row of
    anyone else in the flush's ranges, or an own row that is gone, sends it to ClickHouse."""
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    try:
        migrate(store)
        base = datetime(2026, 11, 29, 5, 0, 0, 123456, tzinfo=UTC)
        # ClickHouse's own CRC32 is the reference for the sums compared (non-ASCII included)
        odd = ["e-ü-日本-\U0001f600", "e-'\\$", "x" * 120]
        got = store.fetch("SELECT " + ", ".join(f"CRC32({quote(i)})" for i in odd)).rows[0]
        assert list(got) == [crc32(i) for i in odd]

        own = OwnRows(max_rows=10_000)
        mine = [f"mine-{i}" for i in range(3000)] + odd
        rows = _call_rows(mine, base)
        store.insert("token_events", rows, columns=TOKEN_EVENT_COLUMNS)
        stamp_of = {r[0]: epoch_ms(r[1]) for r in rows}
        own.add(mine, list(stamp_of.values()))
        # a flush: some of its ids already stored by this writer, some new, same hours
        new = [f"new-{i}" for i in range(2000)]
        flush = [*mine[::7], *new, *odd]
        stamps = [stamp_of.get(i, epoch_ms(base) + n) for n, i in enumerate(flush)]
        expected = existing_event_ids(store, "token_events", flush, stamps)  # ClickHouse's answer
        assert expected == set(mine[::7]) | set(odd)
        assert existing_event_ids(store, "token_events", flush, stamps, own=own) == expected
        assert own.settled == 1
        # a row of someone else in those hours: ClickHouse decides (and finds it)
        store.insert("token_events", _call_rows(["other-1"], base), columns=TOKEN_EVENT_COLUMNS)
        with_other = [*flush, "other-1"]
        other_stamps = [*stamps, epoch_ms(base)]
        found = existing_event_ids(store, "token_events", with_other, other_stamps, own=own)
        assert found == expected | {"other-1"}
        assert own.settled == 1
        # an own row gone (deleted): the sums differ, ClickHouse decides
        store.command("DELETE FROM token_events WHERE event_id IN ('other-1', 'mine-0')")
        found = existing_event_ids(store, "token_events", flush, stamps, own=own)
        assert found == expected - {"mine-0"}
        assert own.settled == 1
        # nothing stored in the ranges at all: no row of anyone there
        later = [epoch_ms(base + timedelta(days=3))]
        assert existing_event_ids(store, "token_events", ["late"], later, own=own) == set()
        assert own.settled == 1
    finally:
        store.close()


def test_own_rows_forget_the_oldest_inserts_beyond_their_bound():
    own = OwnRows(max_rows=5)
    own.add(["a", "b", "c"], [3, 1, 2])
    assert own.summary([(1, 3)]) == (3, crc32("a") + crc32("b") + crc32("c"), 6)
    assert own.summary([(2, 2)]) == (1, crc32("c"), 2)
    own.add(["d", "e", "f"], [4, 5, 6])  # 6 rows: the first insert is forgotten
    assert own.rows == 3
    assert own.summary([(1, 6)]) == (3, crc32("d") + crc32("e") + crc32("f"), 15)
    assert own.found(["a", "d", "f"], [(1, 4)]) == {"d"}
    many = OwnRows(max_rows=1000)
    for i in range(MAX_INSERTS + 2):
        many.add([f"x-{i}"], [i])
    assert many.rows == MAX_INSERTS  # at most MAX_INSERTS inserts are kept, the latest
    assert many.summary([(0, 1)]) == (0, 0, 0)
    assert many.summary([(2, 2)]) == (1, crc32("x-2"), 2)
