from __future__ import annotations

from decimal import Decimal

import orjson

from sinks.clickhouse.decode import MessageDecoder
from tokengov.policy import parse_policy

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
    assert item.row[27] == Decimal(1) and item.row[28] == "catalog"  # $1 per million input


def test_envelope_keeps_valid_items_and_counts_the_rest():
    bad = CALL | {"event_id": "e2", "tokens": {"input": -5}}
    out = decoder().decode("events", orjson.dumps([CALL, bad, OUTCOME]))
    assert [i.table for i in out.items] == ["token_events", "task_outcomes"]
    assert out.invalid_events == 1 and not out.rejects
    assert decoder().decode("events", b"{not json").invalid_events == 1


def test_value_no_column_holds_becomes_a_reject_with_the_event():
    out = decoder().decode("events", orjson.dumps(CALL | {"step": 2**33}))
    (reject,) = out.rejects
    assert "step" in reject.reason and orjson.loads(reject.payload)["event_id"] == "e1"


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
