"""The streams' dead letters: the core record (:mod:`tokengov.core.deadletter`) of a message or
of one bad item of an envelope.

Stages ``decode`` (the contract refused it), ``process`` (processing raised) and ``skip``
(the message failed every attempt). With ``item`` (a bad element of an envelope) the raw
is that element re-encoded (``raw_is: item``); otherwise the message bytes exactly as
received (``raw_is: message``). Building one never fails: an item that cannot be
re-encoded (too deep, numbers beyond 64 bits, invalid UTF-8) is re-encoded by the
standard library, or else the whole message is kept instead.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import orjson

from tokengov.core.deadletter import MAX_RAW_BYTES, MAX_REASON_CHARS, RawIs, encode_dead_letter

__all__ = ["MAX_RAW_BYTES", "MAX_REASON_CHARS", "dead_letter", "encode_item"]


def encode_item(item: Any) -> bytes | None:
    """One parsed item back to JSON bytes (None: it cannot be). Invalid UTF-8 that was read
    as lone surrogates goes back out as the bytes it was."""
    try:
        return orjson.dumps(item)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogateescape")
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        return None


def dead_letter(
    *,
    reason: str,
    stage: Literal["decode", "process", "skip"],
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    index: int | None = None,
    event_id: str | None = None,
    item: Any = None,
) -> bytes:
    """One dead-letter record (the core contract's JSON). With ``item`` (a bad element of an
    envelope) the raw is that element re-encoded; otherwise the message as received."""
    body: bytes | None = None
    raw_is: RawIs = "message"
    if item is not None and index is not None:
        body = encode_item(item)
        if body is not None:
            raw_is = "item"
    if body is None:
        body = raw or b""
    return encode_dead_letter(
        reason=reason,
        stage=stage,
        raw=body,
        raw_is=raw_is,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        index=index,
        event_id=event_id,
        key=key,
    )
