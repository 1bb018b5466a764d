"""Decoding messages of ``tokengov.events`` with each event's index in its envelope.

Same rules as :func:`tokengov.contracts.decode_message` (a single event or a
batch envelope; valid items of an envelope are kept), plus the index that
gives every event its position in the partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tokengov.contracts import CallEvent, DecodeFailure, Outcome, parse_event
from tokengov.errors import ContractError

__all__ = ["Decoded", "decode_events"]


@dataclass(slots=True)
class Decoded:
    events: list[tuple[int, CallEvent | Outcome]] = field(default_factory=list)
    failures: list[tuple[DecodeFailure, Any]] = field(default_factory=list)  # (why, the item)
    envelope: bool = False


def decode_events(raw: bytes | None) -> Decoded:
    result = Decoded()
    if raw is None:
        result.failures.append((DecodeFailure("empty message (no value)"), None))
        return result
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        result.failures.append((DecodeFailure(f"not valid JSON: {exc}"), None))
        return result
    items: list[Any]
    if isinstance(doc, list):
        result.envelope = True
        items = doc
    else:
        items = [doc]
    append = result.events.append
    for index, item in enumerate(items):
        try:
            append((index, parse_event(item)))
        except ContractError as exc:
            event_id = item.get("event_id") if isinstance(item, dict) else None
            failure = DecodeFailure(
                str(exc),
                index if result.envelope else None,
                event_id if isinstance(event_id, str) else None,
            )
            result.failures.append((failure, item))
    return result
