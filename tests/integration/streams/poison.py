"""The poison corpus: messages for ``tokengov.events`` that have stopped workers, or could.

Each :class:`Poison` is one Kafka message value with what must become of it,
written by hand from the limits of the wire (docs/streams.md, "Limits"), never
from the code under test: how many of its calls are governed (counted into
the 1-minute usage windows), how many dead-letter records it yields, and a
word every one of their reasons contains. :func:`corpus` lists the classes of
issue 12 and more; :func:`mutations` draws more of them with hypothesis.

Every call here is team ``poison``, model ``gpt-4.1-mini``, stamped now unless
the case is about time, so the tests can count what was governed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

__all__ = ["Poison", "corpus", "good_call", "mutations"]

TEAM = "poison"
MIB = 1_048_576


@dataclass(frozen=True)
class Poison:
    name: str
    value: bytes | None
    governed: int  # calls that must reach the usage windows
    dead: int  # dead-letter records it must produce
    reason: str = ""  # a word every one of its dead letters' reasons contains
    late: int = 0  # calls kept but counted late (far behind the clock): not in the windows
    skew: bool = False  # it must raise a clock_skew alert
    key: bytes = b"poison"


def _ts(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def good_call(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "call",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": _ts(),
        "team": TEAM,
        "workflow": "poison-flow",
        "task_id": f"poison-{uuid.uuid4().hex[:8]}",
        "agent": "fuzzer",
        "step": 1,
        "model": "gpt-4.1-mini",
        "tokens": {"input": 1000, "output": 100},
    }
    doc.update(fields)
    return doc


def _nested(levels: int) -> Any:
    """``levels`` arrays, one inside the other (inside an event: levels 2 to levels + 1)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _raw(doc: Any) -> bytes:
    """JSON by the standard library: any depth, integers of any size."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _bad_utf8(doc: dict[str, Any], field: str) -> bytes:
    """``doc`` with the value of ``field`` made of an invalid UTF-8 byte sequence."""
    marker = "@@BAD@@"
    return _raw({**doc, field: marker}).replace(marker.encode(), b"caf\xc3\x28\xff")


def _envelope(*parts: bytes) -> bytes:
    return b"[" + b",".join(parts) + b"]"


def corpus() -> list[Poison]:
    """Every class of issue 12, and more, each beside good events where it can be."""
    now = datetime.now(UTC)
    cases: list[Poison] = [
        # -- nesting
        Poison(
            "nested 300 deep in an invalid event",
            _raw({"kind": "call", "event_id": "deep-1", "x": _nested(300)}),
            0,
            1,
            "nested",
        ),
        Poison(
            "nested 300 deep in an unknown field",
            _raw(good_call(extra=_nested(300))),
            0,
            1,
            "nested",
        ),
        Poison(
            "nested 2000 deep (cannot be parsed)",
            b'{"kind":"call","x":' + b"[" * 2000 + b"]" * 2000 + b"}",
            0,
            1,
            "nested",
        ),
        Poison(
            "nested 65 deep beside two good events",
            _envelope(_raw(good_call()), _raw(good_call(extra=_nested(64))), _raw(good_call())),
            2,
            1,
            "nested",
        ),
        Poison("nested 64 deep: at the limit", _raw(good_call(extra=_nested(63))), 1, 0),
        # -- size
        Poison(
            "an unknown field of ~1 MB next to a large step",
            _raw(good_call(step=2**40, blob="x" * 1_000_000)),
            1,
            0,
        ),
        Poison(
            "an unknown field of ~1 MB next to a step beyond 64 bits",
            _raw(good_call(step=2**64, blob="x" * 1_000_000)),
            0,
            1,
            "step",
        ),
        Poison(
            "a message over 1 MiB",
            _envelope(*[_raw(good_call(blob="y" * 100_000)) for _ in range(11)]),
            0,
            1,
            "too large",
        ),
        # -- text encoding
        Poison("invalid UTF-8 in team", _bad_utf8(good_call(), "team"), 0, 1, "UTF-8"),
        Poison(
            "invalid UTF-8 in an unknown field",
            _bad_utf8(good_call(), "note"),
            0,
            1,
            "UTF-8",
        ),
        Poison(
            "invalid UTF-8 in one item of an envelope",
            _envelope(_raw(good_call()), _bad_utf8(good_call(), "team"), _raw(good_call())),
            2,
            1,
            "UTF-8",
        ),
        Poison(
            "a lone surrogate escape",
            b'{"kind":"call","event_id":"s","team":"\\ud800","model":"m","ts":"2026-01-01T00:00:00Z"}',
            0,
            1,
            "JSON",
        ),
        Poison("a control character in team", _raw(good_call(team="a\x07b")), 0, 1, "team"),
        # -- integers
        Poison("step 2**40", _raw(good_call(step=2**40)), 1, 0),
        Poison(
            "tokens.input 2**64-1",
            _raw(good_call(tokens={"input": 2**64 - 1, "output": 0})),
            0,
            1,
            "tokens.input",
        ),
        Poison(
            "tokens.input 2**63",
            _raw(good_call(tokens={"input": 2**63, "output": 0})),
            0,
            1,
            "tokens.input",
        ),
        Poison(
            "tokens.input 2**63-1 (the largest count)",
            _raw(good_call(tokens={"input": 2**63 - 1, "output": 0})),
            1,
            0,
        ),
        Poison(
            "tokens beyond 64 bits in an envelope",
            _envelope(
                _raw(good_call()),
                b'{"kind":"call","event_id":"big","ts":"' + _ts().encode() + b'","model":"m",'
                b'"tokens":{"input":123456789012345678901234567890}}',
            ),
            1,
            1,
            "tokens.input",
        ),
        Poison("latency_ms 2**63", _raw(good_call(latency_ms=2**63)), 0, 1, "latency_ms"),
        Poison("attempt 0", _raw(good_call(attempt=0)), 0, 1, "attempt"),
        Poison("negative tokens", _raw(good_call(tokens={"input": -1})), 0, 1, "tokens.input"),
        # -- time
        Poison("ts 9999-12-31", _raw(good_call(ts="9999-12-31T23:59:59-05:00")), 0, 1, "ts"),
        Poison("ts 0001-01-01", _raw(good_call(ts="0001-01-01T00:00:00+05:00")), 0, 1, "ts"),
        Poison("ts 2150-06-01", _raw(good_call(ts="2150-06-01T00:00:00Z")), 0, 1, "ts"),
        Poison("ts 1999-12-31", _raw(good_call(ts="1999-12-31T23:59:59Z")), 0, 1, "ts"),
        Poison("ts without offset", _raw(good_call(ts="2026-12-06T00:00:00")), 0, 1, "ts"),
        Poison(
            "ts 2099-12-31 (in range, far ahead)",
            _raw(good_call(ts="2099-12-31T23:59:59Z", agent="clock-2099")),
            1,
            0,
            skew=True,
        ),
        Poison(
            "ts 2000-01-01 (in range, far behind)",
            _raw(good_call(ts="2000-01-01T00:00:00Z", agent="clock-2000")),
            0,
            0,
            late=1,
            skew=True,
        ),
        Poison(
            "ts a day ahead",
            _raw(good_call(ts=_ts(now + timedelta(days=1)), agent="clock-tomorrow")),
            1,
            0,
            skew=True,
        ),
        # -- JSON itself
        Poison("NaN", b'{"kind":"outcome","task_id":"t","quality":NaN}', 0, 1, "JSON"),
        Poison("Infinity", b'{"kind":"call","x":Infinity}', 0, 1, "JSON"),
        Poison("a number too large for a double", b'{"kind":"call","x":1e400}', 0, 1, "JSON"),
        Poison(
            "quality 1e308",
            _raw(
                {
                    "kind": "outcome",
                    "event_id": str(uuid.uuid4()),
                    "ts": _ts(),
                    "team": TEAM,
                    "task_id": "poison-q",
                    "status": "success",
                    "quality": 1e308,
                }
            ),
            0,
            1,
            "quality",
        ),
        Poison(
            "duplicate keys (the last one wins)",
            _raw(good_call(model="nope"))[:-1] + b',"model":"gpt-4.1-mini"}',
            1,
            0,
        ),
        Poison("a byte-order mark", b"\xef\xbb\xbf" + _raw(good_call()), 0, 1, "JSON"),
        Poison("empty", b"", 0, 1, "JSON"),
        Poison("whitespace", b" \n\t ", 0, 1, "JSON"),
        Poison("no value (a tombstone)", None, 0, 1, "empty"),
        Poison("a bare number", b"42", 0, 1, "object"),
        Poison("null", b"null", 0, 1, "object"),
        Poison(
            "arrays of arrays",
            _envelope(_envelope(_raw(good_call())), _raw(good_call())),
            1,
            1,
            "object",
        ),
        Poison("an envelope of 0 items", b"[]", 0, 0),
        Poison("truncated JSON", _raw(good_call())[:-5], 0, 1, "JSON"),
        Poison(
            "components beyond input",
            _raw(good_call(components={"history": 2000})),
            0,
            1,
            "components",
        ),
    ]
    return cases


# -- hypothesis: more of the same, each with its ending decided by the limits ---------------

INT_FIELDS = ("step", "tool_calls", "latency_ms", "context_window")


def _int_case(field: str, value: int) -> Poison:
    fits = 0 <= value <= 2**63 - 1
    return Poison(
        f"{field}={value}", _raw(good_call(**{field: value})), int(fits), int(not fits), field
    )


def _token_case(value: int) -> Poison:
    fits = 0 <= value <= 2**63 - 1
    doc = good_call(tokens={"input": value, "output": 0})
    return Poison(f"tokens.input={value}", _raw(doc), int(fits), int(not fits), "tokens.input")


def _depth_case(depth: int) -> Poison:
    # the event is level 1, its unknown field's value starts at level 2
    fits = depth + 1 <= 64  # beyond 1024 levels the whole message: the same ending here
    doc = b'{"kind":"call","event_id":"' + uuid.uuid4().hex.encode() + b'","ts":"'
    doc += _ts().encode() + b'","team":"poison","workflow":"poison-flow","model":"gpt-4.1-mini",'
    doc += b'"tokens":{"input":1000,"output":100},"x":' + b"[" * depth + b"]" * depth + b"}"
    return Poison(f"depth {depth}", doc, int(fits), int(not fits), "nested")


def _bytes_case(junk: bytes) -> Poison:
    """Any bytes inside an unknown string field of one item of an envelope, beside a good one:
    a control byte breaks the JSON of the whole message; invalid UTF-8 only its item."""
    junk = junk.replace(b"\\", b"/").replace(b'"', b"'")
    marker = b"@@JUNK@@"
    item = _raw(good_call(note=marker.decode())).replace(marker, junk)
    message = _envelope(_raw(good_call()), item)
    if any(b < 0x20 for b in junk):
        return Poison(f"control bytes {junk!r}", message, 0, 1, "JSON")
    try:
        junk.decode("utf-8")
    except UnicodeDecodeError:
        return Poison(f"bytes {junk!r}", message, 1, 1, "UTF-8")
    return Poison(f"text {junk!r}", message, 2, 0)


def mutations() -> st.SearchStrategy[Poison]:
    """Poison drawn by hypothesis: integers around every boundary, any depth, any bytes."""
    edges = st.sampled_from([-(2**64), -(2**63), -1, 0, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30])
    ints = st.one_of(edges, st.integers(min_value=-(2**70), max_value=2**70))
    return st.one_of(
        st.builds(_int_case, st.sampled_from(INT_FIELDS), ints),
        st.builds(_token_case, ints),
        st.builds(_depth_case, st.integers(min_value=1, max_value=1500)),
        st.builds(_bytes_case, st.binary(min_size=1, max_size=8)),
    )
