"""The one dead-letter record: its model and JSON Schema, each writer's record, and the
tolerant reader of every shape ever written to tokengov.deadletter."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest
from pydantic import ValidationError

from tokengov.core.deadletter import (
    MAX_RAW_BYTES,
    MAX_REASON_CHARS,
    DeadLetterRecord,
    encode_dead_letter,
    read_dead_letter,
)
from tokengov.core.jsonschema import SCHEMA_DIR
from tokengov.sinks.clickhouse.deadletter import DeadLetter
from tokengov.sinks.router.kafka import router_dead_letter
from tokengov.streams.deadletter import dead_letter

SCHEMA = json.loads((SCHEMA_DIR / "deadletter.v1.json").read_text())


def valid(record: bytes) -> DeadLetterRecord:
    """Both the model and the exported JSON Schema accept ``record``."""
    jsonschema.validate(orjson.loads(record), SCHEMA)
    return DeadLetterRecord.model_validate_json(record)


def test_the_model_is_frozen_and_tolerant_and_refuses_unknown_stages():
    record = valid(
        encode_dead_letter(reason="r", stage="decode", raw=b"{}", source_topic="t", key=b"k")
    )
    with pytest.raises(ValidationError):
        record.reason = "other"  # type: ignore[misc]
    doc = {**orjson.loads(record.model_dump_json()), "a_later_field": 1}
    assert DeadLetterRecord.model_validate(doc) == record  # unknown fields are ignored
    with pytest.raises(ValidationError):
        DeadLetterRecord.model_validate({**doc, "stage": "elsewhere"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "stage": "elsewhere"}, SCHEMA)
    with pytest.raises(ValidationError):  # a naive time is not a time
        DeadLetterRecord.model_validate({**doc, "dead_lettered_at": "2026-12-01T00:00:00"})


def test_a_record_keeps_64_kib_with_the_full_size_and_hash_and_cuts_the_reason():
    raw = bytes(range(256)) * 1000
    record = valid(
        encode_dead_letter(
            reason="y" * 50_000, stage="sink", raw=raw, key=b"k" * 100_000, event_id="e" * 500
        )
    )
    assert record.raw() == raw[:MAX_RAW_BYTES] and record.raw_truncated
    assert record.raw_bytes == len(raw) and record.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert record.key() == b"k" * MAX_RAW_BYTES
    assert len(record.reason) < MAX_REASON_CHARS + 30 and record.event_id is None
    assert "not whole" in (record.replay_refusal() or "")
    whole = valid(encode_dead_letter(reason="r", stage="decode", raw=b"{}"))
    assert not whole.raw_truncated and whole.raw_sha256 is None and whole.raw_bytes == 2


def test_building_a_record_never_fails():
    odd = "caf\udcc3 \x00"
    record = encode_dead_letter(
        reason=odd,
        stage="process",
        raw=None,
        event_id=odd,
        details={odd: odd, **{f"k{i}": "v" * 10_000 for i in range(40)}},
    )
    parsed = valid(record)
    assert parsed.raw() == b"" and len(parsed.details) == 16
    assert all(len(v) < 600 for v in parsed.details.values())
    assert len(record) < 100_000
    assert read_dead_letter(record)[1] == "v1"  # still readable as the record
    assert parsed.reason.startswith("caf\\udcc3")


def test_the_streams_record():
    record = valid(
        dead_letter(
            reason="tokens.input: negative",
            stage="decode",
            topic="tokengov.events",
            partition=3,
            offset=12,
            key=b"t-1",
            raw=b'[{"a": 1}, {"kind": "call"}]',
            index=1,
            event_id="e-1",
            item={"kind": "call"},
        )
    )
    assert (record.stage, record.source(), record.index) == ("decode", "tokengov.events[3]@12", 1)
    assert record.raw_is == "item" and orjson.loads(record.raw()) == {"kind": "call"}
    assert record.key() == b"t-1" and record.event_id == "e-1"
    assert record.replay_refusal() is None


def test_the_sink_record():
    letter = DeadLetter(
        "VIOLATED_CONSTRAINT", b'{"event_id": "x"}', "tokengov.events", 2, 9, "x", "token_events"
    )
    record = valid(letter.value)
    assert (record.stage, record.source(), record.event_id) == ("sink", "tokengov.events[2]@9", "x")
    assert record.details == {"table": "token_events"} and record.raw_is == "item"
    assert record.raw() == b'{"event_id": "x"}' and record.key() is None


def test_the_router_records():
    where = {"topic": "tokengov.alerts", "partition": "1", "offset": "42"}
    record = valid(
        router_dead_letter(b'{"kind": 1}', reason="invalid alert", where=where, key=b"s")
    )
    assert (record.stage, record.raw_is, record.source()) == (
        "router",
        "message",
        "tokengov.alerts[1]@42",
    )
    assert record.key() == b"s" and record.raw() == b'{"kind": 1}'
    note = valid(
        router_dead_letter(
            b'{"alerts": []}',
            reason="undeliverable: HTTP 500",
            details={"receiver": "hook", "notification_id": "n-1", "attempts": "3"},
        )
    )
    assert note.raw_is == "notification" and note.source_topic is None
    assert note.details["receiver"] == "hook" and "no source topic" in (note.replay_refusal() or "")


# -- reading what is on the topic, old shapes included -------------------------------------

STREAMS_V0 = {
    "reason": "tokens.input: Input should be greater than or equal to 0",
    "stage": "decode",
    "topic": "tokengov.events",
    "partition": 3,
    "offset": 1234,
    "index": 17,
    "event_id": "5f0c",
    "raw_is": "item",
    "raw_b64": base64.b64encode(b'{"kind": "call"}').decode(),
    "key_b64": base64.b64encode(b"t-8812").decode(),
    "dead_lettered_at": "2026-11-29T05:00:01.234Z",
}


def test_reads_the_v1_record():
    value = encode_dead_letter(reason="r", stage="skip", raw=b"x", source_topic="t", key=b"k")
    record, shape = read_dead_letter(value, key=b"k")
    assert shape == "v1" and record == DeadLetterRecord.model_validate_json(value)


def test_reads_the_streams_shape_before_v1_with_and_without_issue_12_fields():
    record, shape = read_dead_letter(orjson.dumps(STREAMS_V0))
    assert shape == "streams-v0" and record.source() == "tokengov.events[3]@1234"
    assert record.raw() == b'{"kind": "call"}' and record.raw_bytes == 16
    assert record.key() == b"t-8812" and record.index == 17 and record.stage == "decode"
    assert record.dead_lettered_at == datetime(2026, 11, 29, 5, 0, 1, 234_000, tzinfo=UTC)
    cut = {**STREAMS_V0, "raw_bytes": 99_999, "raw_truncated": True, "raw_sha256": "ab"}
    record, _ = read_dead_letter(orjson.dumps(cut))
    assert record.raw_truncated and record.raw_bytes == 99_999 and record.replay_refusal()


def test_reads_the_sink_shape_before_v1():
    headers = {
        "reason": b"ClickHouse refused",
        "stage": b"sink",
        "source_topic": b"tokengov.events",
        "source_partition": b"4",
        "source_offset": b"77",
        "event_id": b"e-9",
        "table": b"token_events",
    }
    record, shape = read_dead_letter(b'{"event_id": "e-9"}', headers=headers, timestamp_ms=1000)
    assert shape == "sink-v0" and record.source() == "tokengov.events[4]@77"
    assert record.reason == "ClickHouse refused" and record.event_id == "e-9"
    assert record.details == {"table": "token_events"} and not record.raw_truncated
    assert record.dead_lettered_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    cut = {**headers, "raw_bytes": b"200000", "raw_sha256": b"cd"}
    record, _ = read_dead_letter(b"x" * 10, headers=cut)
    assert record.raw_truncated and record.raw_bytes == 200_000 and record.raw_sha256 == "cd"


def test_reads_the_router_shapes_before_v1():
    headers = {
        "source": b"router",
        "reason": b"invalid alert: fingerprint: required",
        "topic": b"tokengov.alerts",
        "partition": b"0",
        "offset": b"5",
    }
    record, shape = read_dead_letter(b"{}", key=b"search", headers=headers)
    assert shape == "router-v0" and record.stage == "router" and record.raw_is == "message"
    assert record.source() == "tokengov.alerts[0]@5" and record.key() == b"search"
    note = {"source": b"router", "reason": b"undeliverable", "receiver": b"hook"}
    record, _ = read_dead_letter(b'{"alerts": []}', headers=note)
    assert record.raw_is == "notification" and record.details == {"receiver": "hook"}


@pytest.mark.parametrize("value", [None, b"", b"\xff\xfe", b"[1, 2]", b'{"raw_b64": "%%"}'])
def test_anything_else_is_shown_as_raw_never_an_error(value):
    record, shape = read_dead_letter(value)
    assert shape == "unknown" and record.raw() == (value or b"")
