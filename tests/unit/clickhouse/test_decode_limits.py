"""The sink's decoder under poison (issue 12): it never raises, applies the agreed limits
(1 MiB, 64 levels, UTF-8 per item), and keeps the valid items of an envelope."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tokengov.core.contracts import MAX_JSON_DEPTH as MAX_DEPTH
from tokengov.core.contracts import MAX_MESSAGE_BYTES
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.policy import parse_policy
from tokengov.sinks.clickhouse.deadletter import MAX_RAW_BYTES, MAX_REASON_CHARS, DeadLetter
from tokengov.sinks.clickhouse.decode import MessageDecoder

POLICY = parse_policy("""
version: 1
teams: {t: {owner: o@example.com}}
receivers: {console: {type: log}}
prices: {m: {input: 1.0, output: 2.0}}
routes: {receiver: console}
""")
CALL: dict[str, Any] = {
    "kind": "call",
    "event_id": "e1",
    "ts": "2026-11-29T05:00:00Z",
    "model": "m",
    "tokens": {"input": 10, "output": 1},
    "task_id": "t",
}


def decode(value: bytes | None) -> Any:
    return MessageDecoder(lambda: POLICY.catalog).decode("events", value)


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _with_field(doc: dict[str, Any], raw: bytes) -> bytes:
    return orjson.dumps(doc)[:-1] + b',"x":' + raw + b"}"


def test_nesting_at_the_limit_is_kept_and_one_more_level_is_not():
    # The event object is one level: 63 more inside it make 64.
    (item,) = decode(_with_field(CALL, _deep(MAX_DEPTH - 1))).items
    assert item.event_id == "e1"
    out = decode(_with_field(CALL, _deep(MAX_DEPTH)))
    # the reason the streams dead-letter it with (tokengov.core.message_items), naming where
    ((reason,),) = [out.invalid_reasons]
    assert not out.items and reason.startswith("x[0]") and "nested more than 64 levels" in reason
    for levels in (300, 2000, 100_000):
        out = decode(_with_field(CALL, _deep(levels)))
        assert out.invalid_events == 1 and not out.items and not out.rejects


def test_in_an_envelope_each_item_may_nest_64_levels():
    # The envelope's array is not counted: an event object (level 1) with 63 more inside.
    at_limit = _with_field(CALL | {"event_id": "deep-ok"}, _deep(MAX_DEPTH - 1))
    beyond = _with_field(CALL | {"event_id": "too-deep"}, _deep(MAX_DEPTH))
    out = decode(b"[" + at_limit + b"," + beyond + b"]")
    assert [i.event_id for i in out.items] == ["deep-ok"]
    ((reason,),) = [out.invalid_reasons]
    assert reason.startswith("item 1: x[0]") and "nested more than 64 levels" in reason


def test_a_deep_item_of_an_envelope_leaves_the_others():
    good = CALL | {"event_id": "good"}
    value = b"[" + orjson.dumps(good) + b"," + _with_field(CALL, _deep(300)) + b"]"
    out = decode(value)
    assert [i.event_id for i in out.items] == ["good"]
    ((reason,),) = [out.invalid_reasons]
    assert reason.startswith("item 1: x[0]") and "nested more than 64 levels" in reason


def test_a_message_above_1_MiB_is_invalid_whole():
    base = len(orjson.dumps(CALL | {"note": ""}))
    at_limit = orjson.dumps(CALL | {"note": "a" * (MAX_MESSAGE_BYTES - base)})
    assert len(at_limit) == MAX_MESSAGE_BYTES
    assert decode(at_limit).items
    out = decode(at_limit[:-1] + b" }")
    assert not out.items and "message too large: 1048577 bytes" in out.invalid_reasons[0]


def test_invalid_utf8_is_invalid_per_item():
    good = CALL | {"event_id": "good"}
    bad_team = orjson.dumps(CALL | {"team": "tea"}).replace(b'"tea"', b'"te\xffa"')
    bad_unknown = _with_field(CALL | {"event_id": "b2"}, b'"\xc3\x28"')
    out = decode(b"[" + orjson.dumps(good) + b"," + bad_team + b"," + bad_unknown + b"]")
    assert [i.event_id for i in out.items] == ["good"]
    assert out.invalid_reasons == [
        "item 1: team: text is not valid UTF-8",
        "item 2: x: text is not valid UTF-8",
    ]
    alone = decode(bad_team)
    assert not alone.items and alone.invalid_reasons == ["team: text is not valid UTF-8"]


def test_integers_beyond_64_bits_name_the_field():
    value = orjson.dumps(CALL).replace(b'"input":10', b'"input":' + str(2**70).encode())
    out = decode(value)
    assert not out.items
    reasons = [r.reason for r in out.rejects] + out.invalid_reasons
    assert len(reasons) == 1 and reasons[0].startswith("tokens.input")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_never_raises_on_any_bytes(value):
    decode(value)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                orjson.dumps(CALL),
                _with_field(CALL, _deep(70)),
                _with_field(CALL, b'"\xff"'),
                orjson.dumps(CALL).replace(b"10", b"99999999999999999999999"),
                orjson.dumps(CALL | {"ts": "2150-06-01T00:00:00Z"}),
                b"nope",
            ]
        ),
        min_size=1,
        max_size=6,
    )
)
def test_every_item_of_an_envelope_ends_one_way(items):
    out = decode(b"[" + b",".join(items) + b"]")
    stored = len(out.items)
    assert stored + len(out.rejects) + out.invalid_events in (len(items), 1)


def test_dead_letters_keep_at_most_64_KiB_with_size_and_hash():
    raw = bytes(range(256)) * 1000  # 256,000 bytes
    letter = DeadLetterRecord.model_validate_json(
        DeadLetter("why", raw, "tokengov.events", 1, 2).value
    )
    assert letter.raw() == raw[:MAX_RAW_BYTES] and letter.raw_truncated
    assert letter.raw_bytes == 256_000
    assert letter.raw_sha256 == hashlib.sha256(raw).hexdigest()
    small = DeadLetterRecord.model_validate_json(
        DeadLetter("x" * 5000, b"{}", "tokengov.events", 1, 2).value
    )
    assert small.raw() == b"{}" and not small.raw_truncated and small.raw_sha256 is None
    assert small.raw_bytes == 2 and small.reason.endswith("(5000 characters)")
    assert len(small.reason) <= MAX_REASON_CHARS + 30


def test_runs_encoded_one_message_at_a_time_merge_into_the_run():
    """What the writer does after a decoder process died: each message alone, then merged —
    the same rows, ids, rejects and invalid items at the same message indexes."""
    from tokengov.sinks.clickhouse.encode import Encoded, merge, rejected, summarize

    values = [
        orjson.dumps(CALL | {"event_id": "a"}),
        b"nope",
        orjson.dumps(
            [CALL | {"event_id": "b"}, CALL | {"event_id": "c", "ts": "2150-01-01T00:00:00Z"}]
        ),
        orjson.dumps(CALL | {"event_id": "d"}),
    ]
    whole, _ = summarize([decode(v) for v in values])
    parts = [summarize([decode(v)])[0] for v in values]
    merged = merge(parts)
    assert (merged.rows, merged.ids, merged.ts_ms) == (whole.rows, whole.ids, whole.ts_ms)
    assert merged.rejects == whole.rejects and merged.invalid == whole.invalid
    # "nope" (message 1) is not JSON; "c" (message 2) is outside the time range: refused by
    # the row (a reject) or by the contract (invalid), at its message's index either way.
    assert (1, "not valid JSON: invalid literal, expected 'null': line 1 column 1 (char 0)") in (
        merged.invalid
    )
    refused = [i for i, r in merged.rejects if r.event_id == "c"] + [
        i for i, why in merged.invalid if "ts" in why
    ]
    assert refused == [2]
    assert merged.messages == 4 and merged.invalid_events == whole.invalid_events
    # A table keeps a block only when every part with rows for it has one.
    parts[0].blocks["token_events"] = b"A"
    parts[2].blocks["token_events"] = b"B"
    parts[3].blocks["token_events"] = b"D"
    assert merge(parts).blocks == {"token_events": b"ABD"}
    del parts[2].blocks["token_events"]
    assert merge(parts).blocks == {}
    lost = merge([parts[0], rejected(b"raw", "why")])
    assert lost.rejects[-1][0] == 1 and lost.rejects[-1][1].payload == b"raw"
    assert isinstance(lost, Encoded) and lost.messages == 2
