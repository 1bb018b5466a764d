"""A call priced by the catalog lands in ClickHouse (through the sink's own decoder) with
``cost_source`` 'catalog' and the catalog's ``price_version``; the policy's prices with
'policy', an unknown model 'unpriced', a call without usage 'missing_usage'."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import orjson
import pytest

from tests.unit.streams.builders import call
from tokengov.core.contracts import CallEvent
from tokengov.core.policy import parse_policy
from tokengov.sinks.clickhouse.batch import Consumed, Flush, PartitionSlice
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import COLUMNS

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 20, 12, tzinfo=UTC)
POLICY = parse_policy("version: 1\nprices:\n  private-llm: {input: 1.00, output: 2.00}\n")


def _doc(event: CallEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json", by_alias=True))


def test_each_call_records_where_its_price_came_from(store: ClickHouseStore) -> None:
    events = {
        "catalog": call(model="claude-sonnet-4-20250514", input=1_000_000, output=0),
        "policy": call(model="private-llm", input=1_000_000, output=0),
        "unpriced": call(model="made-up-model"),
        "missing": call(model="gpt-5", input=0, output=0, usage_missing=True),
    }
    decoder = MessageDecoder(lambda: POLICY.catalog)
    piece = PartitionSlice("events", 0)
    for offset, e in enumerate(events.values()):
        e = e.model_copy(update={"provider": "anthropic", "ts": DAY})
        decoded = decoder.decode("events", _doc(e))
        assert not decoded.rejects, decoded.rejects
        piece.messages.append(Consumed.of_decoded("events", 0, offset, decoded))
    for table, pairs in Flush.of([piece]).rows_by_table().items():
        store.insert(table, [i.row for _, i in pairs], columns=COLUMNS[table])
    stored = {
        model: (Decimal(cost), source, version)
        for model, cost, source, version in store.query(
            "SELECT model, toString(cost_usd), cost_source, price_version FROM token_events"
        ).rows
    }
    assert stored == {
        # $3 per million input tokens, Anthropic's list price in the catalog
        "claude-sonnet-4-20250514": (
            Decimal(3),
            "catalog",
            f"genai-prices {genai_prices.__version__}",
        ),
        "private-llm": (Decimal(1), "policy", ""),
        "made-up-model": (Decimal(0), "unpriced", ""),
        "gpt-5": (Decimal(0), "missing_usage", ""),
    }
