"""The OTLP/HTTP receiver: OpenTelemetry GenAI spans → call events on ``tokengov.events``.

* ``decode`` — a request body (protobuf or JSON, gzip or not) → the official
  ``ExportTraceServiceRequest`` (``opentelemetry-proto``);
* ``spans`` — model-call spans → :class:`~tokengov.core.contracts.CallEvent`, attributed by
  the policy's ``otlp:`` section; content attributes are never read;
* ``publish`` — envelopes keyed by task, dead letters, delivery awaited per request;
* ``server`` — ``POST /v1/traces`` and the OTLP specification's answers (200, partial
  success, 400, 401, 413, 415, 503);
* ``runtime`` / ``role`` — ``tokengov otlp`` and the worker role ``otlp`` (imports Faust).

docs/otlp.md describes it for users.
"""

from tokengov.ingest.otlp.decode import OtlpRequestError, decode_request
from tokengov.ingest.otlp.server import TRACES_PATH, OtlpReceiver, ReceiverStats
from tokengov.ingest.otlp.spans import Conversion, SpanConverter, is_content

__all__ = [
    "TRACES_PATH",
    "Conversion",
    "OtlpReceiver",
    "OtlpRequestError",
    "ReceiverStats",
    "SpanConverter",
    "decode_request",
    "is_content",
]
