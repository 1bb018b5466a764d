"""The fast decoder agrees with the contract's pydantic models on every input (hypothesis),
and keeps envelopes' valid items with their indices."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.streams.builders import call, outcome
from tokengov.core.calls import Call, from_model
from tokengov.core.contracts import CallEvent
from tokengov.core.decoding import (
    _NAMES,
    _NAMES_MAX,
    check_calls,
    check_message,
    decode_call_args,
    decode_events,
    fast_event,
    fast_message,
    parse_event,
)
from tokengov.core.errors import ContractError

BASE_CALL = call(
    task="t-1",
    tool="search",
    parent="planner",
    cached=100,
    cache_write=50,
    cache_write_1h=20,
    reasoning=10,
    context_window=8000,
    service_tier="flex",
).model_dump(mode="json")
#: A call whose response carried no usage (its counts 0): mutations reach usage_missing = true.
MISSING_USAGE_CALL = call(
    task="t-2", input=0, output=0, usage_missing=True, service_tier="default"
).model_dump(mode="json")
BASE_OUTCOME = outcome(task="t-1").model_dump(mode="json")

odd_text = st.sampled_from(
    [
        "",
        " ",
        "  \t",
        "search",
        " search ",
        "a\x00b",
        "a\n",
        "a\x7f",
        "\u2028",
        "é",
        "x" * 129,
        "x" * 257,
        "٣",
        "\u00ad",
    ]
)
text = st.one_of(st.text(max_size=6), odd_text)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from(
        [0, 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30, 1.0, 0.5, -0.0, "5"]
    ),
    text,
)
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    ).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # naive
    st.datetimes(  # any year, any offset: the range is 2000 <= ts < 2100 (UTC)
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]
        )
    ).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2026-11-29T05:00:00Z",
            "2026-11-29T05:00:00.123456Z",
            "2026-11-29T05:00:00.1234567Z",
            "2026-11-29 05:00:00Z",
            "2026-11-29T05:00:00z",
            "2026-13-29T05:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T05:00:00+0000",
            "20261129T050000Z",
            "2026-11-29T05:00:60Z",
            "٢٠٢٦-11-29T05:00:00Z",
            "2026-11-29T05:00:00.5+05:30",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+05:00",
            "1999-12-31T23:59:59.999999Z",
            "2000-01-01T00:00:00Z",
            "2000-01-01T05:00:00+05:00",
            "2099-12-31T23:59:59.999999Z",
            "2100-01-01T00:00:00Z",
            "2099-12-31T20:00:00-04:00",
            "2150-06-01T00:00:00Z",
        ]
    ),
    scalars,
)
small = st.one_of(*[st.integers(min_value=-1, max_value=12)] * 8, scalars)  # mostly counts
token_dicts = st.fixed_dictionaries(
    {},
    optional={
        k: small
        for k in (
            "input",
            "output",
            "cached_input",
            "cache_write",
            "cache_write_1h",
            "reasoning",
            "extra",
        )
    },
)
component_dicts = st.fixed_dictionaries(
    {},
    optional={
        k: small
        for k in (
            "system",
            "tool_definitions",
            "retrieved",
            "history",
            "tool_responses",
            "handoff",
            "memory",
            "extra",
        )
    },
)


def mutate(base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = dict(base)
    keys = st.sampled_from([*sorted(base), "unknown_field", "tokens", "components", "ts"])
    for key in data.draw(st.lists(keys, max_size=4)):
        choice = data.draw(st.integers(0, 4))
        if choice == 0:
            doc.pop(key, None)
        elif choice == 1 and key == "tokens":
            doc[key] = data.draw(st.one_of(token_dicts, token_dicts, scalars))
        elif choice == 1 and key == "components":
            doc["tokens"] = data.draw(token_dicts)
            doc[key] = data.draw(st.one_of(component_dicts, component_dicts, scalars))
        elif choice == 2 and key == "ts":
            doc[key] = data.draw(timestamps)
        elif choice == 3 and isinstance(base.get(key), int):
            doc[key] = data.draw(st.one_of(st.integers(min_value=-3, max_value=10**7), scalars))
        else:
            doc[key] = data.draw(scalars)
    return doc


def wire(doc: Any) -> bytes:
    """``doc`` as a message (integers of any size, as any producer may send them)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc).encode()


def slow(doc: Any) -> Any:
    try:
        return from_model(parse_event(doc))
    except ContractError:
        return None


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), base=st.sampled_from([BASE_CALL, MISSING_USAGE_CALL, BASE_OUTCOME]))
def test_fast_path_agrees_with_the_models(data: st.DataObject, base: dict[str, Any]) -> None:
    doc = mutate(base, data)
    fast = fast_event(doc)
    expected = slow(doc)
    if fast is not None:  # the fast path may only accept what the models accept, identically
        assert expected is not None, doc
        assert fast == expected, doc
    # and the decoder (fast path + fallback) always ends where the models do
    raw = wire(doc)
    decoded = decode_events(raw)
    if expected is None:
        assert decoded.events == [] and len(decoded.failures) == 1
    else:
        assert decoded.events == [(0, expected)] and decoded.failures == []


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), base=st.sampled_from([BASE_CALL, MISSING_USAGE_CALL, BASE_OUTCOME]))
def test_message_path_agrees_with_the_models(data: st.DataObject, base: dict[str, Any]) -> None:
    doc = mutate(base, data)
    raw = wire(doc)
    expected = slow(doc)
    for message, envelope in ((raw, False), (b"[" + raw + b"," + raw + b"]", True)):
        fast = fast_message(message)
        if fast is not None:  # only what the models accept, identically
            assert expected is not None, doc
            assert fast == (envelope, [expected] * (2 if envelope else 1)), doc
        # the sink's decoding (calls as their constructor's arguments): the same events
        as_args, as_calls = decode_call_args(message), decode_events(message)
        assert all(type(e) is not Call for _i, e in as_args.events), doc
        assert [(i, Call(*e) if type(e) is tuple else e) for i, e in as_args.events] == (
            as_calls.events
        ), doc
        assert (as_args.failures, as_args.envelope) == (as_calls.failures, as_calls.envelope)
    # check_message (the sender's): an item it does not send to a slower path is the models'
    good = orjson.dumps(BASE_OUTCOME)
    for message, size in ((raw, 1), (b"[" + raw + b"," + good + b"]", 2)):
        slow_items = check_message(message)
        if slow_items is not None:
            assert set(slow_items) <= set(range(size)), doc
            assert (0 in slow_items) or expected is not None, doc


def test_ordinary_messages_take_the_message_path() -> None:
    envelope = orjson.dumps([BASE_CALL, BASE_OUTCOME])
    fast = fast_message(envelope)
    assert fast is not None and fast[0] and [e.kind for e in fast[1]] == ["call", "outcome"]
    assert fast[1][0] == from_model(parse_event(BASE_CALL))
    # one item the message path is not sure about sends the whole message to the others
    odd = dict(BASE_CALL, step=1.0)
    assert fast_message(orjson.dumps([BASE_CALL, odd])) is None
    # the sender's check names the items it is not sure about, and takes the others
    assert check_message(envelope) == []
    assert check_message(orjson.dumps([BASE_CALL, odd, BASE_OUTCOME, odd])) == [1, 3]
    decoded = decode_events(orjson.dumps([BASE_CALL, odd, {"kind": "call"}]))
    assert [i for i, _ in decoded.events] == [0, 1] and len(decoded.failures) == 1


def test_ordinary_events_take_the_fast_path() -> None:
    for doc in (
        BASE_CALL,
        MISSING_USAGE_CALL,
        BASE_OUTCOME,
        {"kind": "call", "event_id": "e", "ts": "2026-11-29T05:00:00Z", "model": "m"},
    ):
        assert fast_event(doc) is not None, doc
    assert decode_events(orjson.dumps([BASE_CALL, BASE_OUTCOME])).slow == 0
    fast = fast_message(orjson.dumps([BASE_CALL, MISSING_USAGE_CALL]))
    assert fast is not None
    full, missing = fast[1]
    assert isinstance(full, Call) and isinstance(missing, Call)
    assert (full.cache_write, full.cache_write_1h, full.service_tier) == (50, 20, "flex")
    assert not full.usage_missing
    assert missing.usage_missing and (missing.input, missing.output) == (0, 0)


def test_new_fields_are_checked_and_named() -> None:
    for doc, field in (
        ({**BASE_CALL, "tokens": {"input": 10, "cache_write": 2, "cache_write_1h": 3}}, "1h"),
        ({**MISSING_USAGE_CALL, "tokens": {"input": 5}}, "usage_missing"),
        ({**BASE_CALL, "service_tier": "a\x00b"}, "service_tier"),
        ({**BASE_CALL, "usage_missing": "maybe"}, "usage_missing"),
    ):
        decoded = decode_events(orjson.dumps(doc))
        assert decoded.events == [], doc
        assert field in decoded.failures[0][0].reason, decoded.failures[0][0].reason


def test_envelope_keeps_good_items_with_their_index() -> None:
    bad = {**BASE_CALL, "event_id": "bad", "tokens": {"input": -1}}
    odd = {**BASE_CALL, "event_id": "odd", "cost_usd": "0.5"}  # reported cost: models decide
    decoded = decode_events(orjson.dumps([BASE_CALL, bad, odd, BASE_OUTCOME]))
    assert [i for i, _ in decoded.events] == [0, 2, 3]
    assert decoded.events[1][1].cost_femto == 5 * 10**14
    ((failure, item),) = decoded.failures
    assert failure.index == 1 and failure.event_id == "bad" and "tokens.input" in failure.reason
    assert item == bad and decoded.envelope and decoded.slow == 2


def test_whole_message_failures() -> None:
    assert "not valid JSON" in decode_events(b"{nope").failures[0][0].reason
    assert "empty message" in decode_events(None).failures[0][0].reason
    assert "unknown kind" in decode_events(b'{"kind": "x"}').failures[0][0].reason
    assert decode_events(b"{nope").failures[0][0].index is None


TOKEN_KEYS = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning")
COMPONENT_KEYS = (
    "system",
    "tool_definitions",
    "retrieved",
    "history",
    "tool_responses",
    "handoff",
    "memory",
)


def agree(doc: dict[str, Any]) -> None:
    fast, expected = fast_event(doc), slow(doc)
    if fast is not None:
        assert expected is not None and fast == expected, doc
    if check_message(wire(doc)) == []:  # the sender's check: "valid" only if the models agree
        assert expected is not None, doc


@settings(max_examples=800, deadline=None)
@given(
    tokens=st.fixed_dictionaries({k: st.integers(min_value=-1, max_value=12) for k in TOKEN_KEYS}),
    comps=st.fixed_dictionaries(
        {k: st.integers(min_value=-1, max_value=4) for k in COMPONENT_KEYS}
    ),
    drop=st.sets(st.sampled_from(TOKEN_KEYS + COMPONENT_KEYS)),
    counts=st.tuples(*(st.integers(min_value=-1, max_value=3),) * 5),
)
def test_counts_and_their_constraints_agree(tokens, comps, drop, counts) -> None:
    doc = dict(BASE_CALL)
    doc["tokens"] = {k: v for k, v in tokens.items() if k not in drop}
    doc["components"] = {k: v for k, v in comps.items() if k not in drop}
    for key, value in zip(
        ("step", "attempt", "tool_calls", "latency_ms", "context_window"), counts, strict=True
    ):
        doc[key] = value
    agree(doc)


@settings(max_examples=800, deadline=None)
@given(
    field=st.sampled_from(
        [
            "event_id",
            "task_id",
            "team",
            "workflow",
            "agent",
            "parent_agent",
            "provider",
            "model",
            "tool_name",
            "status",
            "ts",
        ]
    ),
    value=st.one_of(text, timestamps),
    kind=st.sampled_from([BASE_CALL, BASE_OUTCOME]),
)
def test_names_and_timestamps_agree(field, value, kind) -> None:
    agree({**kind, field: value})


#: Times near the contract's edges: its range, the calendar's, the shapes of the offset.
edge_timestamps = st.one_of(
    timestamps,
    st.datetimes(
        min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:00:00Z".format,
        st.sampled_from([1999, 2000, 2024, 2026, 2099, 2100]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from([0, 23, 24]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    tokens=st.fixed_dictionaries(
        {}, optional={k: st.integers(min_value=0, max_value=4) for k in TOKEN_KEYS}
    ),
    comps=st.dictionaries(
        st.sampled_from(COMPONENT_KEYS), st.integers(min_value=0, max_value=3), max_size=2
    ),
    ts=st.one_of(st.just(BASE_CALL["ts"]), edge_timestamps),
    name=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from(
                ["event_id", "task_id", "team", "workflow", "agent", "provider", "model"]
            ),
            text,
        ),
    ),
    missing=st.booleans(),
    kind=st.sampled_from(["call", "outcome"]),
)
def test_the_senders_check_agrees_with_the_models(tokens, comps, ts, name, missing, kind) -> None:
    """An envelope item that check_message takes is one the models take; an ordinary item
    next to it is taken whatever the other is."""
    if kind == "call":
        doc = {**BASE_CALL, "tokens": tokens, "components": comps, "usage_missing": missing}
    else:
        doc = dict(BASE_OUTCOME)
    doc["ts"] = ts
    if name is not None:
        doc[name[0]] = name[1]
    slow_items = check_message(wire([BASE_OUTCOME, doc]))
    assert slow_items is not None and 0 not in slow_items, doc
    if 1 not in slow_items:
        assert slow(doc) is not None, doc


def test_the_senders_check_on_the_calendar_and_the_counts() -> None:
    """Every day of the years at the contract's edges, hours and seconds past their ends, and
    the counts' rules one by one: check_message takes exactly what the models take."""

    def taken(doc: dict[str, Any]) -> bool:
        slow_items = check_message(orjson.dumps([BASE_OUTCOME, doc]))
        assert slow_items is not None and 0 not in slow_items, doc
        return 1 not in slow_items

    for year in (1999, 2000, 2024, 2026, 2099, 2100):
        for month in range(14):
            for day in range(33):
                for clock in ("00:00:00", "23:59:59.999999", "24:00:00", "12:60:00", "12:00:60"):
                    doc = {**BASE_CALL, "ts": f"{year:04d}-{month:02d}-{day:02d}T{clock}Z"}
                    assert taken(doc) == (slow(doc) is not None), doc
    for ts in ("2026-11-29T05:00:00+00:00", "2000-01-01T05:00:00+05:00", "2026-11-29T05:00:00"):
        doc = {**BASE_CALL, "ts": ts}
        assert taken(doc) == (slow(doc) is not None), doc
    for tokens, missing in (
        ({"input": 3, "output": 1, "reasoning": 2}, False),
        ({"input": 3, "cached_input": 2, "cache_write": 2}, False),
        ({"input": 3, "cache_write": 1, "cache_write_1h": 2}, False),
        ({"output": 1}, True),
        ({"input": 1}, True),
    ):
        doc = {**BASE_CALL, "tokens": tokens, "usage_missing": missing}
        assert slow(doc) is None and not taken(doc), doc
    assert slow(BASE_CALL) is not None and taken(BASE_CALL)
    doc = {**BASE_CALL, "tokens": {"input": 3}, "components": {"system": 2, "memory": 2}}
    assert slow(doc) is None and not taken(doc)


#: The models' call fields in their order, ``kind`` left out: the values check_calls takes.
CALL_FIELDS = [name for name in CallEvent.model_fields if name != "kind"]
#: Python values as a sender holds them: the wire's scalars, NaN, timestamps as datetimes.
values = st.one_of(scalars, st.just(float("nan")))
value_timestamps = st.one_of(
    st.just(datetime(2026, 11, 29, 5, tzinfo=UTC)),
    st.datetimes(
        min_value=datetime(1999, 12, 31),
        max_value=datetime(2100, 1, 2),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    ),
    st.datetimes(),  # naive
    values,
)


@settings(max_examples=600, deadline=None)
@given(data=st.data(), base=st.sampled_from([BASE_CALL, MISSING_USAGE_CALL]))
def test_the_senders_check_of_values_agrees_with_the_models(
    data: st.DataObject, base: dict[str, Any]
) -> None:
    """check_calls judges a call's Python values and the message msgspec writes of them: what
    it takes, the models take from those bytes and check_message takes too; and it takes what
    check_message takes, but for a NaN (which JSON writes as null)."""
    doc = {**base, "ts": datetime.fromisoformat(base["ts"])}
    for key in data.draw(st.lists(st.sampled_from(CALL_FIELDS), max_size=3)):
        if key == "ts":
            doc[key] = data.draw(value_timestamps)
        elif key == "tokens":
            doc[key] = data.draw(st.one_of(token_dicts, values))
        elif key == "components":
            doc["tokens"] = data.draw(token_dicts)
            doc[key] = data.draw(st.one_of(component_dicts, values))
        else:
            doc[key] = data.draw(values)
    call_values = tuple(doc.get(name) for name in CALL_FIELDS)
    try:
        raw = msgspec.json.encode(
            {"kind": "call", **dict(zip(CALL_FIELDS, call_values, strict=True))}
        )
    except (TypeError, ValueError, OverflowError):
        return  # not written: the sender asks the models
    taken = check_calls([call_values], raw) == []
    twice = b"[" + raw + b"," + raw + b"]"
    assert check_calls([call_values] * 2, twice) == ([] if taken else [0, 1]), doc
    if taken:
        assert slow(orjson.loads(raw)) is not None, doc
        assert check_message(raw) == [], doc
    elif not any(type(v) is float and v != v for v in call_values):
        assert check_message(raw) != [], doc


#: UTC times in the shapes path 1 reads a whole message's times in at once (``Z`` or
#: ``+00:00``, 0-6 decimals), across the contract's range and just outside it.
utc_times = st.datetimes(
    min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2), timezones=st.just(UTC)
).flatmap(
    lambda d: st.sampled_from(
        [
            d.isoformat(),
            d.isoformat().replace("+00:00", "Z"),
            d.isoformat(timespec="seconds"),
            d.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        ]
    )
) | st.sampled_from(  # the range's ends, in both shapes
    [
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00.000+00:00",
        "2099-12-31T23:59:59.999+00:00",
        "2100-01-01T00:00:00Z",
        "2100-01-01T00:00:00.000000+00:00",
    ]
)
#: Nearly those shapes (as long as one of them, or nearly): datetime.fromisoformat reads
#: some of them, the contract's models some, path 1 none.
odd_utc_times = st.sampled_from(
    [
        "2026-11-29T05:00:00.1234567Z",
        "2026-11-29T05:00:00.1234567+00:00",
        "2026-11-29T05:00:00.Z",
        "2026-11-29T05:00:00.+00:00",
        "2026-11-29 05:00:00Z",
        "2026-11-29t05:00:00.123Z",
        "2026-11-29T05:00:00z",
        "2026-11-29T05:00:00-00:00",
        "2026-11-29T05:00:00.5+0000",
        "2026-11-29T05:00:00+00:30",
        "2026-11-29T05:00:00Z ",
        "2026-11-29T05:00Z",
        "2026-W48-7T05:00:00Z",
    ]
)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_envelopes_agree_with_the_models(data: st.DataObject) -> None:
    """Path 1 reads the times of a message together when they all have a UTC shape, and one
    by one when not: each event of an envelope it takes is the models' answer for that item,
    whatever the times of the others (of one shape, of several, some refused), and an item
    path 2's rules (:func:`fast_event`, item by item) would send to the models."""
    bases = data.draw(
        st.lists(st.sampled_from([BASE_CALL, MISSING_USAGE_CALL, BASE_OUTCOME]), max_size=5)
    )
    docs = []
    for base in bases:
        doc = dict(base)
        if data.draw(st.booleans()):
            doc["ts"] = data.draw(st.one_of(utc_times, utc_times, odd_utc_times, edge_timestamps))
        if data.draw(st.integers(0, 4)) == 0:
            doc = mutate(doc, data)
        docs.append(doc)
    raw = wire(docs)
    expected = [slow(doc) for doc in docs]
    fast = fast_message(raw)
    if fast is not None:
        assert None not in expected, docs
        assert fast == (True, expected), docs
        # and no time of a shape the item by item rules refuse (their other rules may leave
        # to the models what path 1 takes with the models' answer, e.g. a quality of int 0)
        assert all(fast_event({**BASE_OUTCOME, "ts": doc["ts"]}) is not None for doc in docs), docs
    decoded = decode_events(raw)
    assert decoded.events == [(i, e) for i, e in enumerate(expected) if e is not None], docs
    assert [f.index for f, _item in decoded.failures] == [
        i for i, e in enumerate(expected) if e is None
    ], docs


#: A name as producers may write it (a call's team, workflow, agent, model, provider; an
#: outcome's team and workflow): the usual ones, with a space, blank, not ``str.isprintable``
#: (a soft hyphen: printable as the contract means it), with a control character, too long,
#: absent.
names = st.sampled_from(
    ["support", "planner", " support", " ", "", "\u00ad", "a\x00b", "é", "x" * 257, None]
)
NAME_FIELDS = {
    "call": ("team", "workflow", "agent", "model", "provider"),
    "outcome": ("team", "workflow"),
}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_names_kept_once_checked_agree_with_the_models(data: st.DataObject) -> None:
    """Path 1 checks an event's usual names once and keeps the answer (``_NAMES``): over
    messages that repeat names — of plain text or not, the names printable or not, blank,
    absent — each event, its names checked or kept, is the models' answer; and a plainly
    printable name path 1 gives is one object in every event that has it."""
    if data.draw(st.booleans()):
        _NAMES.clear()
    messages = []
    for _message in range(data.draw(st.integers(1, 3))):
        docs = []
        for _item in range(data.draw(st.integers(1, 3))):
            doc = dict(data.draw(st.sampled_from([BASE_CALL, BASE_OUTCOME])))
            for key in NAME_FIELDS[doc["kind"]]:
                if data.draw(st.booleans()):
                    value = data.draw(names)
                    if value is None and data.draw(st.booleans()):
                        doc.pop(key, None)
                    else:
                        doc[key] = value
            if data.draw(st.integers(0, 3)) == 0:
                doc["event_id"] = "e\\1"  # a backslash: the message is not of plain text
            docs.append(doc)
        messages.append(docs)
    seen: dict[str, str] = {}
    for docs in messages * 2:  # each twice: its names kept the second time, if not the first
        expected = [slow(doc) for doc in docs]
        raw = wire(docs)
        decoded = decode_events(raw)
        assert decoded.events == [(i, e) for i, e in enumerate(expected) if e is not None], docs
        fast = fast_message(raw)
        if fast is None:
            continue
        assert fast == (True, expected), docs
        for event in fast[1]:
            given_names = [getattr(event, key) for key in NAME_FIELDS[event.kind]]
            if all(name.isprintable() for name in given_names):
                for name in given_names:
                    assert seen.setdefault(name, name) is name, docs


def test_names_kept_are_bounded() -> None:
    for i in range(_NAMES_MAX + 10):
        assert decode_events(wire(dict(BASE_CALL, team=f"team-{i}"))).events != []
    assert 0 < len(_NAMES) <= _NAMES_MAX
