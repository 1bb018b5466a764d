"""The dead-letter record: the raw bytes, the reason, and where the message came from.

Published on ``tokengov.deadletter`` (key: the original message key) as JSON::

    {"reason": "tokens.input: Input should be greater than or equal to 0",
     "stage": "decode",                      # decode | process | skip
     "topic": "tokengov.events", "partition": 3, "offset": 1234,
     "index": 17,                            # position in an envelope; null: the whole message
     "event_id": "5f0c…",                    # when the item had one
     "raw_is": "item",                       # "message": raw_b64 is the whole message as received;
                                             # "item": the one bad item of an envelope, re-encoded
     "raw_b64": "eyJraW5kIjog…",
     "raw_bytes": 83,                        # the full size of the raw (message or item)
     "raw_truncated": false,                 # true: raw_b64 holds its first 64 KiB only …
     "raw_sha256": null,                     # … and this is the hex SHA-256 of all of it
     "key_b64": "dC04ODEy",
     "dead_lettered_at": "2026-11-29T05:00:01.234Z"}

A record is always small (at most ~90 KiB, whatever was received: the raw is cut at
:data:`MAX_RAW_BYTES`, the reason at :data:`MAX_REASON_CHARS`) and building one
never fails: an item that cannot be re-encoded (too deep, numbers beyond 64 bits,
invalid UTF-8) is re-encoded by the standard library, or else the whole message is
kept instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Final, Literal

import orjson

from tokengov.contracts import MAX_ID_CHARS, utcnow

__all__ = ["MAX_RAW_BYTES", "MAX_REASON_CHARS", "dead_letter", "encode_item"]


#: A record keeps at most this much of the raw bytes (the common limit: 64 KiB).
MAX_RAW_BYTES: Final = 65_536
MAX_REASON_CHARS: Final = 2_000


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
    """One dead-letter record. With ``item`` (a bad element of an envelope) ``raw_b64`` holds
    that element re-encoded; otherwise the message bytes exactly as received."""
    body: bytes | None = None
    raw_is = "message"
    if item is not None and index is not None:
        body = encode_item(item)
        if body is not None:
            raw_is = "item"
    if body is None:
        body = raw or b""
    size = len(body)
    truncated = size > MAX_RAW_BYTES
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + f"… ({len(reason)} characters)"
    if event_id is not None and len(event_id) > MAX_ID_CHARS:
        event_id = None
    doc = {
        "reason": reason,
        "stage": stage,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "index": index,
        "event_id": event_id,
        "raw_is": raw_is,
        "raw_b64": base64.b64encode(body[:MAX_RAW_BYTES]).decode("ascii"),
        "raw_bytes": size,
        "raw_truncated": truncated,
        "raw_sha256": hashlib.sha256(body).hexdigest() if truncated else None,
        "key_b64": None if key is None else base64.b64encode(key[:MAX_RAW_BYTES]).decode("ascii"),
        "dead_lettered_at": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):  # a reason or id with lone surrogates
        return json.dumps(doc, ensure_ascii=True).encode("ascii")
