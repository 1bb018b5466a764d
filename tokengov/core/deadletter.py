"""The dead-letter record: one shape on ``tokengov.deadletter`` for every stage that refuses.

A message that cannot be handled is not lost: the stage that gives up on it publishes one
JSON record (value) with the original key (Kafka key) to ``tokengov.deadletter``::

    {"schema_version": 1,
     "reason": "tokens.input: Input should be greater than or equal to 0",
     "stage": "decode",                  # decode | process | skip | sink | router | ingest
     "source_topic": "tokengov.events", "source_partition": 3, "source_offset": 1234,
     "index": 17,                        # the item's position in an envelope; null: whole
     "event_id": "5f0c…",                # when known
     "key_b64": "dC04ODEy",              # the original message key (null: none)
     "raw_is": "item",                   # message | item | notification | span (see RawIs)
     "raw_b64": "eyJraW5kIjog…",         # the original bytes, at most 64 KiB
     "raw_bytes": 83,                    # the full size of the original bytes
     "raw_truncated": false,             # true: raw_b64 holds the first 64 KiB only …
     "raw_sha256": null,                 # … and this is the hex SHA-256 of all of them
     "details": {"table": "token_events"},   # stage-specific: table, receiver, …
     "dead_lettered_at": "2026-11-29T05:00:01.234Z"}

:class:`DeadLetterRecord` is the contract (exported as ``schemas/deadletter.v1.json``);
:func:`encode_dead_letter` builds a record's bytes and never fails, whatever it is given
(a record is at most ~100 KiB: the raw is cut at :data:`MAX_RAW_BYTES`, the reason at
:data:`MAX_REASON_CHARS`, each detail at :data:`MAX_DETAIL_CHARS`).
:func:`read_dead_letter` reads any record on the topic, including the three shapes
written before this one (see docs/streams.md, "Dead letters").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from tokengov.core.contracts import MAX_ID_CHARS, SCHEMA_VERSION, utcnow

__all__ = [
    "MAX_DETAIL_CHARS",
    "MAX_RAW_BYTES",
    "MAX_REASON_CHARS",
    "DeadLetterRecord",
    "RawIs",
    "Shape",
    "Stage",
    "encode_dead_letter",
    "read_dead_letter",
]

#: A record keeps at most this much of the original bytes (and of the key).
MAX_RAW_BYTES: Final = 65_536
#: A reason longer than this is cut, with its full length said.
MAX_REASON_CHARS: Final = 2_000
#: Each value of ``details`` is cut to this many characters; at most 16 details are kept.
MAX_DETAIL_CHARS: Final = 512
_MAX_DETAILS: Final = 16

#: Where the message was given up on: the streams' decoding (``decode``), their processing
#: (``process``: processing raised), a message that failed every attempt (``skip``), the
#: ClickHouse writer (``sink``), the alert router (``router``), the OTLP receiver (``ingest``:
#: a span that could not become an event).
Stage = Literal["decode", "process", "skip", "sink", "router", "ingest"]
#: What ``raw_b64`` holds: ``message``, the message value exactly as received at
#: source_topic/partition/offset; ``item``, one item of it (an envelope's element, or a
#: row's contract JSON) re-encoded as JSON; ``notification``, a notification the router
#: could not deliver (no source message); ``span``, an OTLP span the receiver could not turn
#: into an event, as JSON (its ids, times, name and attributes, content attributes left out).
RawIs = Literal["message", "item", "notification", "span"]


class DeadLetterRecord(BaseModel):
    """A dead letter on ``tokengov.deadletter`` (value: this JSON; key: the original key)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = SCHEMA_VERSION
    reason: str = Field(description="Why the message was refused, naming the field.")
    stage: Stage
    source_topic: str | None = Field(
        default=None, description="The topic the message came from (null: none, router)."
    )
    source_partition: int | None = Field(default=None, ge=0)
    source_offset: int | None = Field(default=None, ge=0)
    index: int | None = Field(
        default=None, ge=0, description="The item's position in an envelope; null: whole."
    )
    event_id: str | None = Field(default=None, description="The item's event_id, when known.")
    key_b64: str | None = Field(default=None, description="The original key, base64.")
    raw_is: RawIs
    raw_b64: str = Field(description="The original bytes, base64, at most 64 KiB of them.")
    raw_bytes: int = Field(ge=0, description="The full size of the original bytes.")
    raw_truncated: bool = Field(
        default=False, description="True: raw_b64 holds the first 64 KiB only."
    )
    raw_sha256: str | None = Field(
        default=None, description="Hex SHA-256 of all the original bytes when truncated."
    )
    details: dict[str, str] = Field(
        default_factory=dict,
        description="Stage-specific: table (sink); receiver, notification_id, attempts (router).",
    )
    dead_lettered_at: AwareDatetime

    def raw(self) -> bytes:
        """The original bytes kept (all of them unless :attr:`raw_truncated`)."""
        return base64.b64decode(self.raw_b64)

    def key(self) -> bytes | None:
        return None if self.key_b64 is None else base64.b64decode(self.key_b64)

    def source(self) -> str:
        """``topic[partition]@offset``, or ``-`` when there is no source message."""
        if self.source_topic is None:
            return "-"
        where = self.source_topic
        if self.source_partition is not None:
            where += f"[{self.source_partition}]"
        if self.source_offset is not None:
            where += f"@{self.source_offset}"
        return where

    def replay_refusal(self) -> str | None:
        """Why this record's bytes cannot be sent back to their source (None: they can)."""
        if self.raw_truncated:
            return (
                f"its original bytes were cut at {MAX_RAW_BYTES} of {self.raw_bytes} bytes "
                "(raw_truncated): they are not whole"
            )
        if self.source_topic is None:
            return f"it has no source topic (raw_is {self.raw_is})"
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def encode_dead_letter(
    *,
    reason: str,
    stage: Stage,
    raw: bytes | None,
    raw_is: RawIs = "message",
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    index: int | None = None,
    event_id: str | None = None,
    key: bytes | None = None,
    details: Mapping[str, str] | None = None,
    at: datetime | None = None,
) -> bytes:
    """One record's JSON bytes. Never fails and stays small, whatever it is given: the raw
    and the key are cut at 64 KiB, the reason and the details are cut, an ``event_id``
    beyond the contract's length is left out."""
    body = raw or b""
    size = len(body)
    truncated = size > MAX_RAW_BYTES
    if event_id is not None and len(event_id) > MAX_ID_CHARS:
        event_id = None
    kept = dict(list((details or {}).items())[:_MAX_DETAILS])
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "reason": _cut(reason, MAX_REASON_CHARS),
        "stage": stage,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "index": index,
        "event_id": event_id,
        "key_b64": None if key is None else _b64(key[:MAX_RAW_BYTES]),
        "raw_is": raw_is,
        "raw_b64": _b64(body[:MAX_RAW_BYTES]),
        "raw_bytes": size,
        "raw_truncated": truncated,
        "raw_sha256": hashlib.sha256(body).hexdigest() if truncated else None,
        "details": {str(k)[:64]: _cut(str(v), MAX_DETAIL_CHARS) for k, v in kept.items()},
        "dead_lettered_at": (at or utcnow())
        .astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):  # text with lone surrogates: escape them
        return orjson.dumps(_escaped(doc))


def _escaped(value: Any) -> Any:
    """``value`` with every string made valid UTF-8 (a lone surrogate becomes ``\\udcff``)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------ reading

#: The shapes :func:`read_dead_letter` recognises: this contract, and the three written
#: before it (streams: JSON with ``topic``/``raw_b64``; sink: the raw value with headers
#: ``stage=sink``/``source_topic``; router: the raw value with header ``source=router``).
Shape = Literal["v1", "streams-v0", "sink-v0", "router-v0", "unknown"]


def _header(headers: Mapping[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("utf-8", "replace")


def _int(text: Any) -> int | None:
    try:
        return int(text) if text is not None else None
    except (TypeError, ValueError):
        return None


def _when(timestamp_ms: int | None) -> datetime:
    if timestamp_ms is None or timestamp_ms <= 0:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _from_raw_value(
    value: bytes, key: bytes | None, headers: Mapping[str, bytes], timestamp_ms: int | None
) -> tuple[DeadLetterRecord, Shape] | None:
    """The sink's and the router's shapes before v1: the raw bytes as the value, headers."""
    if _header(headers, "stage") == "sink":
        full = _int(_header(headers, "raw_bytes"))
        table = _header(headers, "table")
        record = DeadLetterRecord(
            reason=_header(headers, "reason") or "",
            stage="sink",
            source_topic=_header(headers, "source_topic"),
            source_partition=_int(_header(headers, "source_partition")),
            source_offset=_int(_header(headers, "source_offset")),
            event_id=_header(headers, "event_id"),
            key_b64=None if key is None else _b64(key),
            raw_is="item",
            raw_b64=_b64(value),
            raw_bytes=full if full is not None else len(value),
            raw_truncated=full is not None and full > len(value),
            raw_sha256=_header(headers, "raw_sha256"),
            details={"table": table} if table else {},
            dead_lettered_at=_when(timestamp_ms),
        )
        return record, "sink-v0"
    if _header(headers, "source") == "router":
        known = {"source", "reason", "topic", "partition", "offset"}
        topic = _header(headers, "topic")
        record = DeadLetterRecord(
            reason=_header(headers, "reason") or "",
            stage="router",
            source_topic=topic,
            source_partition=_int(_header(headers, "partition")),
            source_offset=_int(_header(headers, "offset")),
            key_b64=None if key is None else _b64(key),
            raw_is="message" if topic else "notification",
            raw_b64=_b64(value),
            raw_bytes=len(value),
            details={k: v.decode("utf-8", "replace") for k, v in headers.items() if k not in known},
            dead_lettered_at=_when(timestamp_ms),
        )
        return record, "router-v0"
    return None


def _from_streams_v0(doc: dict[str, Any]) -> DeadLetterRecord:
    return DeadLetterRecord.model_validate(
        {
            **doc,
            "source_topic": doc.get("topic"),
            "source_partition": doc.get("partition"),
            "source_offset": doc.get("offset"),
            "raw_bytes": doc.get("raw_bytes", len(base64.b64decode(doc.get("raw_b64") or ""))),
        }
    )


def read_dead_letter(
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Mapping[str, bytes] | None = None,
    timestamp_ms: int | None = None,
) -> tuple[DeadLetterRecord, Shape]:
    """Any record on ``tokengov.deadletter`` as a :class:`DeadLetterRecord`, and which shape
    it was written in. Tolerant: what no shape explains is returned as an ``unknown``
    record (stage ``process``) whose raw is the value, never an exception. ``timestamp_ms``
    (the Kafka timestamp) dates the shapes that carried no time."""
    headers = headers or {}
    data = value or b""
    old = _from_raw_value(data, key, headers, timestamp_ms)
    if old is not None:
        return old
    try:
        doc = orjson.loads(data)
        if isinstance(doc, dict) and "raw_b64" in doc:
            if "source_topic" in doc or "schema_version" in doc:
                return DeadLetterRecord.model_validate(doc), "v1"
            if "topic" in doc:
                return _from_streams_v0(doc), "streams-v0"
    except (orjson.JSONDecodeError, ValidationError, binascii.Error, ValueError):
        pass
    record = DeadLetterRecord(
        reason="not a dead-letter record of any known shape (the value is shown as raw)",
        stage="process",
        key_b64=None if key is None else _b64(key),
        raw_is="message",
        raw_b64=_b64(data),
        raw_bytes=len(data),
        dead_lettered_at=_when(timestamp_ms),
    )
    return record, "unknown"
