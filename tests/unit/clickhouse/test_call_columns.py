"""The sink's column path — :func:`~tokengov.core.decoding.decode_call_columns`,
:meth:`~tokengov.core.pricing.Pricer.costs` over columns, ``MessageDecoder.decode(...,
columns=True)`` — agrees with the per-event path (``decode_events``, the row path) on
messages generated from the contract's examples: the same events, failures, rejects and
rows, whatever the items (valid or not, calls and outcomes mixed)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.clickhouse.test_decode import PRICED
from tests.unit.streams.test_decode import (
    BASE_CALL,
    BASE_OUTCOME,
    MISSING_USAGE_CALL,
    mutate,
    odd_utc_times,
    timestamps,
    utc_times,
    wire,
)
from tokengov.core.calls import Call
from tokengov.core.contracts import COMPONENT_NAMES, TOKEN_NAMES
from tokengov.core.decoding import _WIRE, _columns, decode_call_columns, decode_events
from tokengov.core.pricing import cost_decimal
from tokengov.sinks.clickhouse.decode import TASK_OUTCOMES, TOKEN_EVENTS, MessageDecoder
from tokengov.sinks.clickhouse.rows import call_columns

#: (provider, model): policy prices in femto-USD, a price beyond femto-USD (on 2026-11-29),
#: the catalog's long-context tiers, the catalog's service tiers (the calls' ``flex``), a
#: model nobody prices.
MODELS = [
    ("openai", "gpt-4.1-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-5"),
    ("p", "unpriced-model"),
]
small = st.integers(0, 12)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.sampled_from([BASE_CALL, BASE_CALL, MISSING_USAGE_CALL, BASE_OUTCOME]))
    doc = dict(base, event_id=f"e-{draw(st.integers(0, 10**6))}")
    if doc["kind"] == "call":
        provider, model = draw(st.sampled_from(MODELS))
        doc |= {"provider": provider, "model": model}
        size = draw(st.integers(0, 2))
        if size == 1 and not doc.get("usage_missing"):  # the long-context tiers
            doc["tokens"] = {"input": draw(st.sampled_from([10, 150_000, 300_000])), "output": 9}
        elif size == 2:  # counts within their totals, or not
            doc["tokens"] = draw(st.fixed_dictionaries({k: small for k in TOKEN_NAMES}))
            doc["components"] = draw(
                st.fixed_dictionaries({}, optional=dict.fromkeys(COMPONENT_NAMES, small))
            )
            doc["usage_missing"] = draw(st.booleans())
    if draw(st.booleans()):
        doc["ts"] = draw(st.one_of(utc_times, utc_times, odd_utc_times, timestamps))
    if draw(st.integers(0, 3)) == 0:  # now and then an item the fast paths may refuse
        doc = mutate(doc, draw(st.data()))
    return doc


messages = st.one_of(
    items().map(wire),
    st.lists(items(), min_size=0, max_size=6).map(wire),
)


def _events(decoded: Any, at: Any, columns: Any) -> list[tuple[int, Any]]:
    calls = [(i, Call(*row)) for i, row in zip(at, zip(*columns, strict=True), strict=True)]
    return sorted(decoded.events + calls, key=lambda e: e[0])


@settings(max_examples=1200, deadline=None)
@given(message=messages)
def test_call_columns_are_the_decoders_events(message: bytes) -> None:
    decoded, (at, columns) = decode_call_columns(message)
    expected = decode_events(message)
    assert all(len(column) == len(at) for column in columns), message
    assert all(type(e) is not Call for _i, e in decoded.events), message
    assert _events(decoded, at, columns) == expected.events, message
    assert (decoded.failures, decoded.envelope) == (expected.failures, expected.envelope)


@settings(max_examples=600, deadline=None)
@given(message=messages)
def test_columns_store_the_rows_and_reject_what_the_rows_reject(message: bytes) -> None:
    decoder = MessageDecoder(lambda: PRICED.catalog)
    by_rows = decoder.decode("events", message)
    by_columns = decoder.decode("events", message, columns=True)
    assert by_columns.rejects == by_rows.rejects, message
    assert by_columns.invalid_reasons == by_rows.invalid_reasons, message
    assert by_columns.invalid_events == by_rows.invalid_events
    assert by_columns.items == [i for i in by_rows.items if i.table == TASK_OUTCOMES], message
    rows = [i.row for i in by_rows.items if i.table == TOKEN_EVENTS]
    calls = by_columns.calls
    if not rows:
        assert not calls or not calls[0], message
        return
    amounts, sources = by_columns.amounts, by_columns.sources
    cost = [cost_decimal(a, s) for a, s in zip(amounts, sources, strict=True)]
    columns = call_columns(calls, list(calls[1]), cost, sources, by_columns.versions)
    assert list(zip(*columns, strict=True)) == rows, message


def test_an_ordinary_envelope_takes_the_column_path() -> None:
    """Times of several lengths (whole seconds and fractions, ``Z`` and ``+00:00``), calls of
    several models, an outcome among them: checked column by column, not call by call."""
    times = ["2026-11-29T05:00:00Z", "2026-11-29T05:00:00.25Z", "2026-11-29T05:00:01+00:00"]
    calls = [
        BASE_CALL | {"event_id": f"e{i}", "ts": times[i % 3], "model": MODELS[i % 3][1]}
        for i in range(9)
    ]
    doc = _WIRE.decode(orjson.dumps(calls))
    assert _columns(doc) is not None
    message = orjson.dumps([*calls, BASE_OUTCOME])
    decoded, (at, columns) = decode_call_columns(message)
    assert list(at) == list(range(9)) and len(decoded.events) == 1
    assert _events(decoded, at, columns) == decode_events(message).events
