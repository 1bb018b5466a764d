"""The dead-letter record: the raw bytes, the reason, and where the message came from.

Published on ``tokengov.deadletter`` (key: the original message key) as JSON::

    {"reason": "tokens.input: Input should be greater than or equal to 0",
     "stage": "decode",                      # decode | process
     "topic": "tokengov.events", "partition": 3, "offset": 1234,
     "index": 17,                            # position in an envelope; null: the whole message
     "event_id": "5f0c…",                    # when the item had one
     "raw_is": "item",                       # "message": raw_b64 is the whole message as received;
                                             # "item": the one bad item of an envelope, re-encoded
     "raw_b64": "eyJraW5kIjog…",
     "key_b64": "dC04ODEy",
     "dead_lettered_at": "2026-11-29T05:00:01.234Z"}
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import orjson

from tokengov.contracts import utcnow

__all__ = ["dead_letter"]


def dead_letter(
    *,
    reason: str,
    stage: Literal["decode", "process"],
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
    if item is not None:
        body, raw_is = orjson.dumps(item), "item"
    else:
        body, raw_is = raw or b"", "message"
    return orjson.dumps(
        {
            "reason": reason,
            "stage": stage,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "index": index,
            "event_id": event_id,
            "raw_is": raw_is,
            "raw_b64": base64.b64encode(body).decode("ascii"),
            "key_b64": None if key is None else base64.b64encode(key).decode("ascii"),
            "dead_lettered_at": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
    )
