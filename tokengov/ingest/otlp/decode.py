"""An OTLP/HTTP traces request body → ``ExportTraceServiceRequest`` (the official messages).

The OTLP specification (https://opentelemetry.io/docs/specs/otlp/#otlphttp) allows two
encodings, told apart by ``Content-Type``: ``application/x-protobuf`` (binary protobuf) and
``application/json`` (the protobuf JSON mapping with two exceptions: trace and span ids are
hex, not base64, and enums are integers; keys may be lowerCamelCase or the proto names).
``Content-Encoding: gzip`` is allowed on both. Both are decoded into the messages of the
``opentelemetry-proto`` package; the JSON one through protobuf's ``json_format`` after the
ids are turned back into base64 (unknown fields are ignored, as the specification says).

Errors are :class:`OtlpRequestError` carrying the HTTP status to answer (400, 413, 415).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tokengov.core.errors import TokenGovError

__all__ = [
    "JSON",
    "PROTOBUF",
    "OtlpRequestError",
    "decode_request",
    "media_type",
]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OtlpRequestError(TokenGovError):
    """A request the receiver refuses whole; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing (413) once it grows past ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpRequestError(f"Content-Encoding gzip: the body is not gzip data ({exc})") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise OtlpRequestError(
            f"the body inflates to more than {limit} bytes (the receiver's limit)", status=413
        )
    if not inflater.eof:
        raise OtlpRequestError("Content-Encoding gzip: the gzip data is cut short")
    return out


def _hex_ids_to_base64(doc: Any, where: str) -> None:
    """OTLP/JSON spells trace and span ids in hex; protobuf's JSON mapping wants base64."""
    if not isinstance(doc, dict):
        raise OtlpRequestError(f"{where}: expected a JSON object")
    for key in _ID_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value:
            try:
                doc[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError as exc:
                raise OtlpRequestError(f"{where}.{key}: not a hex id: {value[:64]!r}") from exc


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpRequestError(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise OtlpRequestError("the body must be a JSON object (ExportTraceServiceRequest)")
    for i, rs in enumerate(doc.get("resourceSpans") or doc.get("resource_spans") or []):
        if not isinstance(rs, dict):
            raise OtlpRequestError(f"resourceSpans[{i}]: expected a JSON object")
        for j, ss in enumerate(rs.get("scopeSpans") or rs.get("scope_spans") or []):
            if not isinstance(ss, dict):
                raise OtlpRequestError(f"resourceSpans[{i}].scopeSpans[{j}]: expected an object")
            for k, span in enumerate(ss.get("spans") or []):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                _hex_ids_to_base64(span, where)
                for n, link in enumerate(span.get("links") or []):
                    _hex_ids_to_base64(link, f"{where}.links[{n}]")
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, ValueError, TypeError) as exc:
        raise OtlpRequestError(f"not an OTLP/JSON ExportTraceServiceRequest: {exc}") from exc
    return request


def _from_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpRequestError(f"not a protobuf ExportTraceServiceRequest: {exc}") from exc
    return request


def decode_request(
    body: bytes, *, content_type: str | None, content_encoding: str | None, max_bytes: int
) -> tuple[ExportTraceServiceRequest, str]:
    """The request and its media type (:data:`PROTOBUF` or :data:`JSON`, for the answer)."""
    kind = media_type(content_type)
    if kind not in (PROTOBUF, JSON):
        raise OtlpRequestError(
            f"Content-Type {content_type or '(none)'!r} is not supported: send "
            f"{PROTOBUF} or {JSON}",
            status=415,
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding != "identity":
        raise OtlpRequestError(
            f"Content-Encoding {content_encoding!r} is not supported: send gzip or none",
            status=415,
        )
    if kind == JSON:
        return _from_json(body), kind
    return _from_protobuf(body), kind
