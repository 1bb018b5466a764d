"""Regression: the stored ts is DateTime64(3); a replayed event whose ts carries microseconds
must still be found by the writer's duplicate lookup (it was missed at the range bounds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokengov.core.contracts import CallEvent, TokenCounts
from tokengov.core.pricing import PricedCall
from tokengov.sinks.clickhouse.dedup import SMALL, existing_event_ids
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
