from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokengov.core.calls import from_model
from tokengov.core.contracts import UNATTRIBUTED, CallEvent, Outcome, encode_events
from tokengov.core.decoding import decode_events, parse_event
from tokengov.core.errors import ContractError

BASE = {
    "kind": "call",
    "schema_version": 1,
    "event_id": "5f0c6a1e-3c1e-4a43-9d7e-1f2a3b4c5d6e",
    "ts": "2026-11-29T05:00:00.123Z",
    "team": "search",
    "workflow": "support-triage",
    "task_id": "t-8812",
    "agent": "planner",
    "parent_agent": None,
    "step": 3,
    "provider": "openai",
    "model": "gpt-4.1-mini",
    "tokens": {"input": 1200, "output": 300, "cached_input": 800, "cache_write": 0, "reasoning": 0},
    "components": {
        "system": 400,
        "tool_definitions": 300,
        "retrieved": 200,
        "history": 250,
        "tool_responses": 50,
        "handoff": 0,
        "memory": 0,
    },
    "attempt": 1,
    "tool_calls": 1,
    "tool_name": "search_docs",
    "latency_ms": 850,
    "status": "ok",
    "cost_usd": None,
}


def with_(**changes):
    doc = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        target = doc
        parts = path.split("__")
        for part in parts[:-1]:
            target = target[part]
        if value is ...:
            target.pop(parts[-1], None)
        else:
            target[parts[-1]] = value
    return doc


def reason(doc) -> str:
    with pytest.raises(ContractError) as info:
        parse_event(doc)
    return str(info.value)


def test_design_example_parses_to_utc():
    event = parse_event(BASE)
    assert isinstance(event, CallEvent)
    assert event.ts == datetime(2026, 11, 29, 5, 0, 0, 123000, tzinfo=UTC)
    assert event.tokens.cached_input == 800
    assert event.components.total == 1200


def test_offset_timestamp_is_normalised_to_utc():
    event = parse_event(with_(ts="2026-11-29T07:00:00+02:00"))
    assert event.ts == datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert event.ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tokens__input": -1}, "tokens.input"),
        ({"tokens__output": -5}, "tokens.output"),
        ({"tokens__cached_input": 1000, "tokens__cache_write": 300}, "tokens"),
        ({"tokens__reasoning": 301}, "tokens"),
        ({"components__history": 10_000}, "components"),
        ({"kind": "trace"}, "kind"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": "2026-11-29T05:00:00"}, "ts"),
        ({"agent": "x" * 300}, "agent"),
        ({"tool_name": "search\u0007docs"}, "tool_name"),
        ({"model": "gpt\n4"}, "model"),
        ({"attempt": 0}, "attempt"),
        ({"status": "exploded"}, "status"),
        ({"event_id": ...}, "event_id"),
        ({"cost_usd": -0.5}, "cost_usd"),
    ],
)
def test_untrustworthy_events_name_the_field(changes, field):
    assert reason(with_(**changes)).startswith(field)


def test_cache_parts_message_explains():
    msg = reason(with_(tokens__cached_input=1000, tokens__cache_write=300))
    assert "cached_input (1000) + cache_write (300) exceeds input (1200)" in msg


def test_missing_attribution_is_kept_as_unattributed():
    event = parse_event(with_(team=..., workflow=None))
    assert event.team == UNATTRIBUTED
    assert event.workflow == UNATTRIBUTED


def test_missing_task_id_makes_the_event_its_own_task():
    event = parse_event(with_(task_id=...))
    assert isinstance(event, CallEvent)
    assert event.task_id == event.event_id == event.task


def test_unknown_fields_are_ignored_and_never_kept():
    event = parse_event(with_(prompt="tell me a secret", completion="the secret"))
    dumped = event.model_dump()
    assert "prompt" not in dumped and "completion" not in dumped
    assert "secret" not in encode_events([event]).decode()


def test_outcome_and_quality_bar():
    outcome = parse_event(
        {
            "kind": "outcome",
            "event_id": "o1",
            "ts": "2026-11-29T05:00:00Z",
            "task_id": "t-1",
            "status": "success",
            "quality": 0.92,
            "team": "search",
            "workflow": "support-triage",
        }
    )
    assert isinstance(outcome, Outcome)
    assert outcome.met_quality_bar(0.8)
    assert not outcome.met_quality_bar(0.95)
    failed = outcome.model_copy(update={"status": "failure"})
    assert not failed.met_quality_bar(None)


def test_envelope_keeps_valid_items_and_reports_bad_ones():
    good = with_(event_id="e-good")
    bad = with_(event_id="e-bad", tokens__input=-1)
    raw = json.dumps([good, bad, "not an object", with_(event_id="e-good-2")]).encode()
    result = decode_events(raw)
    assert result.envelope
    assert [(i, e.event_id) for i, e in result.events] == [(0, "e-good"), (3, "e-good-2")]
    assert [(f.index, f.event_id) for f, _ in result.failures] == [(1, "e-bad"), (2, None)]
    assert result.failures[0][0].reason.startswith("tokens.input")


def test_unparseable_message():
    result = decode_events(b"{not json")
    assert not result.events
    assert result.failures[0][0].reason.startswith("not valid JSON")


def test_encode_round_trip_single_and_envelope():
    event = parse_event(BASE)
    assert decode_events(encode_events([event])).events == [(0, from_model(event))]
    other = parse_event(with_(event_id="e2"))
    decoded = decode_events(encode_events([event, other]))
    assert decoded.envelope
    assert decoded.events == [(0, from_model(event)), (1, from_model(other))]


counts = st.integers(min_value=0, max_value=10**9)


@given(inp=counts, out=counts, cached=counts, write=counts, reasoning=counts)
def test_token_invariants_hold_exactly_when_accepted(inp, out, cached, write, reasoning):
    doc = with_(
        tokens__input=inp,
        tokens__output=out,
        tokens__cached_input=cached,
        tokens__cache_write=write,
        tokens__reasoning=reasoning,
        components={},
    )
    consistent = cached + write <= inp and reasoning <= out
    if consistent:
        event = parse_event(doc)
        assert event.tokens.input == inp
    else:
        with pytest.raises(ContractError):
            parse_event(doc)


@given(st.text(min_size=1, max_size=300))
def test_names_accept_printable_text_only(name):
    doc = with_(agent=name)
    printable = all(ord(c) >= 0x20 and ord(c) != 0x7F for c in name)
    if printable and len(name) <= 256:
        assert parse_event(doc).agent == name
    else:
        with pytest.raises(ContractError, match=r"^agent"):
            parse_event(doc)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "system",
                "tool_definitions",
                "retrieved",
                "history",
                "tool_responses",
                "handoff",
                "memory",
            ]
        ),
        st.integers(min_value=0, max_value=5000),
    )
)
def test_components_never_exceed_input(components):
    doc = with_(components=components)
    if sum(components.values()) <= 1200:
        assert parse_event(doc).components.total == sum(components.values())
    else:
        with pytest.raises(ContractError, match=r"^components"):
            parse_event(doc)
