from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.streams.test_decode import BASE_CALL, BASE_OUTCOME, mutate, wire
from tokengov.core.contracts import CallEvent
from tokengov.core.decoding import parse_event
from tokengov.core.errors import ContractError
from tokengov.core.policy import parse_policy
from tokengov.core.pricing import price_call
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.rows import TOKEN_EVENT_COLUMNS, RowError, event_row, outcome_row

COST, SOURCE = TOKEN_EVENT_COLUMNS.index("cost_usd"), TOKEN_EVENT_COLUMNS.index("cost_source")

POLICY = parse_policy("""
version: 1
teams: {t: {owner: o@example.com}}
receivers: {console: {type: log}}
prices: {m: {input: 1.0, output: 2.0}}
routes: {receiver: console}
""")
CALL = {
    "kind": "call",
    "event_id": "e1",
    "ts": "2026-11-29T05:00:00Z",
    "model": "m",
    "tokens": {"input": 1_000_000, "output": 0},
    "task_id": "t",
}
OUTCOME = {
    "kind": "outcome",
    "event_id": "o1",
    "ts": "2026-11-29T05:00:00Z",
    "task_id": "t",
    "status": "success",
}


def decoder() -> MessageDecoder:
    return MessageDecoder(lambda: POLICY.catalog)


def test_single_event_is_priced_from_the_policy():
    out = decoder().decode("events", orjson.dumps(CALL))
    (item,) = out.items
    assert item.table == "token_events" and item.event_id == "e1"
    assert item.row[COST] == Decimal(1) and item.row[SOURCE] == "policy"  # $1 per million input


def test_envelope_keeps_valid_items_and_counts_the_rest():
    bad = CALL | {"event_id": "e2", "tokens": {"input": -5}}
    out = decoder().decode("events", orjson.dumps([CALL, bad, OUTCOME]))
    assert [i.table for i in out.items] == ["token_events", "task_outcomes"]
    assert out.invalid_events == 1 and not out.rejects
    assert decoder().decode("events", b"{not json").invalid_events == 1


def test_value_beyond_the_contract_becomes_a_reject_with_the_event():
    # 2**63 is refused by the contract (then counted invalid) or, whatever the decoder lets
    # through, by the row (then rejected with the field's name): never stored.
    out = decoder().decode("events", orjson.dumps(CALL | {"step": 2**63}))
    assert not out.items
    if out.rejects:
        (reject,) = out.rejects
        assert "step" in reject.reason and orjson.loads(reject.payload)["event_id"] == "e1"
    else:
        assert out.invalid_events == 1 and "step" in out.invalid_reasons[0]


def test_a_step_the_contract_allows_is_stored():
    (item,) = decoder().decode("events", orjson.dumps(CALL | {"step": 2**40})).items
    assert item.row[7] == 2**40


def test_alerts_decisions_findings_and_tombstones():
    d = decoder()
    assert d.decode("decisions", None).tombstones == 1
    alert = d.decode(
        "alerts",
        orjson.dumps(
            {"fingerprint": "f", "kind": "runaway", "severity": "critical", "summary": "s"}
        ),
    )
    assert alert.items[0].table == "alerts"
    broken = d.decode("alerts", orjson.dumps({"kind": "nope"}))
    assert broken.rejects and "Alert" in broken.rejects[0].reason
    decision = d.decode(
        "decisions", orjson.dumps({"scope": "task", "key": "t", "action": "pause", "reason": "r"})
    )
    assert decision.items[0].row[:3] == ("task", "t", "pause")
    finding = d.decode("findings", orjson.dumps({"area": "a", "ts": "2026-11-29T05:00:00Z"}))
    assert finding.items[0].table == "findings"


# -- the fast paths give the rows the contract's models give -------------------------------

PRICED = parse_policy("""
version: 1
teams: {t: {owner: o@example.com}}
receivers: {console: {type: log}}
prices:
  gpt-4.1-mini: {input: 0.4, output: 1.6, cached_input: 0.1}
  gpt-4.1-mini@2026-11-29: {input: 0.000000000123, output: 1.6}
routes: {receiver: console}
""")


def _model_rows(doc: dict[str, Any]) -> list[tuple[Any, ...]] | None:
    """What the models make of ``doc``: its row, [] when no column holds it, None when the
    contract refuses it."""
    try:
        event = parse_event(doc)
    except ContractError:
        return None
    try:
        if isinstance(event, CallEvent):
            return [event_row(event, price_call(event, PRICED.catalog))]
        return [outcome_row(event)]
    except RowError:
        return []


@settings(max_examples=800, deadline=None)
@given(
    data=st.data(),
    base=st.sampled_from(
        [
            BASE_CALL | {"ts": "2026-11-28T23:59:59.999Z"},  # integer femto-USD pricing
            BASE_OUTCOME,
            BASE_CALL | {"ts": "2026-11-30T01:00:00+01:00"},  # a >9-decimal price: Decimal
            BASE_CALL | {"model": "unpriced-model", "provider": "p", "latency_ms": 7},
        ]
    ),
)
def test_rows_are_the_models_rows(data: st.DataObject, base: dict[str, Any]) -> None:
    doc = mutate(base, data)
    raw = wire(doc)
    if raw is None:
        return
    out = MessageDecoder(lambda: PRICED.catalog).decode("events", raw)
    expected = _model_rows(doc)
    if expected is None:
        assert out.items == [] and out.invalid_events == 1, doc
    elif expected == []:
        assert out.items == [] and len(out.rejects) == 1, doc
    else:
        assert [item.row for item in out.items] == expected, doc
        assert [type(v) for v in out.items[0].row] == [type(v) for v in expected[0]], doc


def test_prices_with_more_than_nine_decimals_are_exact():
    doc = BASE_CALL | {"ts": "2026-11-29T05:00:00Z", "tokens": {"input": 7, "output": 0}}
    (item,) = MessageDecoder(lambda: PRICED.catalog).decode("events", orjson.dumps(doc)).items
    assert item.row[COST] == Decimal("0.000000000123") * 7 / 1_000_000
